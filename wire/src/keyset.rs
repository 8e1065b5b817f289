//! The signing key set: JSON stored in Secret `<provider>-signing-keys` under
//! [`KEYSET_SECRET_KEY`](crate::contract::KEYSET_SECRET_KEY).
//!
//! Every key carries four instants. A key is *published* (listed in JWKS) while
//! `publishAt <= now < deleteAt` and *signs* while `activateAt <= now < retireAt`; when
//! several keys could sign, the one activated most recently wins. Every replica therefore
//! decides from the clock alone, with no coordination, which key signs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A JWS signing algorithm Palisade supports.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema, Default,
)]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256 (small keys, fast signing).
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit key (the default: the algorithm OpenID
    /// Connect requires of every provider, and the one client libraries accept unconfigured).
    #[default]
    RS256,
    /// Ed25519 signatures.
    EdDSA,
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
            Algorithm::EdDSA => "EdDSA",
        })
    }
}

/// The public half of a key as a JSON Web Key (RFC 7517), ready to publish in JWKS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

/// One signing key and its schedule.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningKey {
    /// Key ID, published as `kid` in JWKS and token headers.
    pub kid: String,
    pub alg: Algorithm,
    /// PKCS#8 PEM of the private key.
    pub private_key_pem: String,
    /// Public half, as published in JWKS.
    pub public_jwk: PublicJwk,
    /// From this instant the key appears in JWKS.
    pub publish_at: DateTime<Utc>,
    /// From this instant the key may sign.
    pub activate_at: DateTime<Utc>,
    /// From this instant the key no longer signs.
    pub retire_at: DateTime<Utc>,
    /// From this instant the key leaves JWKS.
    pub delete_at: DateTime<Utc>,
}

// Never print private keys, even in debug logs.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("publish_at", &self.publish_at)
            .field("activate_at", &self.activate_at)
            .field("retire_at", &self.retire_at)
            .field("delete_at", &self.delete_at)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Whether the key belongs in JWKS at `now`.
    pub fn is_published(&self, now: DateTime<Utc>) -> bool {
        self.publish_at <= now && now < self.delete_at
    }

    /// Whether the key may sign at `now`.
    pub fn can_sign(&self, now: DateTime<Utc>) -> bool {
        self.activate_at <= now && now < self.retire_at && self.is_published(now)
    }
}

/// The whole key set as stored in the Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySet {
    pub keys: Vec<SigningKey>,
}

/// A key set that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    #[error("key set is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "key {kid}: instants out of order (need publishAt <= activateAt <= retireAt <= deleteAt)"
    )]
    BadSchedule { kid: String },
    #[error("duplicate key id {0}")]
    DuplicateKid(String),
    #[error("could not generate a {0} key: {1}")]
    Generate(Algorithm, String),
}

impl KeySet {
    /// Parses and checks a key set file.
    pub fn from_json(bytes: &[u8]) -> Result<Self, KeySetError> {
        let set: KeySet = serde_json::from_slice(bytes)?;
        let mut seen = std::collections::HashSet::new();
        for k in &set.keys {
            if !(k.publish_at <= k.activate_at
                && k.activate_at <= k.retire_at
                && k.retire_at <= k.delete_at)
            {
                return Err(KeySetError::BadSchedule { kid: k.kid.clone() });
            }
            if !seen.insert(k.kid.as_str()) {
                return Err(KeySetError::DuplicateKid(k.kid.clone()));
            }
        }
        Ok(set)
    }

    /// Serializes the key set as stored in the Secret (stable key order).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("key set serializes")
    }

    /// The key that signs at `now`: the most recently activated key whose window holds now.
    pub fn signing_key(&self, now: DateTime<Utc>) -> Option<&SigningKey> {
        self.keys
            .iter()
            .filter(|k| k.can_sign(now))
            .max_by_key(|k| (k.activate_at, k.kid.as_str()))
    }

    /// The keys that belong in JWKS at `now`.
    pub fn published(&self, now: DateTime<Utc>) -> impl Iterator<Item = &SigningKey> {
        self.keys.iter().filter(move |k| k.is_published(now))
    }

    /// The earliest instant after `now` at which the signing key or the JWKS contents change.
    pub fn next_change_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.keys
            .iter()
            .flat_map(|k| [k.publish_at, k.activate_at, k.retire_at, k.delete_at])
            .filter(|t| *t > now)
            .min()
    }
}

/// A freshly generated key pair, not yet scheduled.
pub struct GeneratedKey {
    pub alg: Algorithm,
    pub private_key_pem: String,
    pub public_jwk: PublicJwk,
}

impl GeneratedKey {
    /// Generates a new key pair with the operating system's random source.
    pub fn generate(alg: Algorithm) -> Result<Self, KeySetError> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        use base64::Engine;
        use rand_core::OsRng;
        let err = |e: &dyn fmt::Display| KeySetError::Generate(alg, e.to_string());
        match alg {
            Algorithm::ES256 => {
                use p256::elliptic_curve::sec1::ToEncodedPoint;
                use p256::pkcs8::{EncodePrivateKey, LineEnding};
                let secret = p256::SecretKey::random(&mut OsRng);
                let pem = secret.to_pkcs8_pem(LineEnding::LF).map_err(|e| err(&e))?;
                let point = secret.public_key().to_encoded_point(false);
                Ok(GeneratedKey {
                    alg,
                    private_key_pem: pem.to_string(),
                    public_jwk: PublicJwk {
                        kty: "EC".into(),
                        crv: Some("P-256".into()),
                        x: point.x().map(|x| B64.encode(x)),
                        y: point.y().map(|y| B64.encode(y)),
                        n: None,
                        e: None,
                    },
                })
            }
            Algorithm::EdDSA => {
                use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey};
                let signing = ed25519_dalek::SigningKey::generate(&mut OsRng);
                let pem = signing.to_pkcs8_pem(LineEnding::LF).map_err(|e| err(&e))?;
                Ok(GeneratedKey {
                    alg,
                    private_key_pem: pem.to_string(),
                    public_jwk: PublicJwk {
                        kty: "OKP".into(),
                        crv: Some("Ed25519".into()),
                        x: Some(B64.encode(signing.verifying_key().as_bytes())),
                        y: None,
                        n: None,
                        e: None,
                    },
                })
            }
            Algorithm::RS256 => {
                use rsa::pkcs8::{EncodePrivateKey, LineEnding};
                use rsa::traits::PublicKeyParts;
                let private = rsa::RsaPrivateKey::new(&mut OsRng, 2048).map_err(|e| err(&e))?;
                let pem = private.to_pkcs8_pem(LineEnding::LF).map_err(|e| err(&e))?;
                Ok(GeneratedKey {
                    alg,
                    private_key_pem: pem.to_string(),
                    public_jwk: PublicJwk {
                        kty: "RSA".into(),
                        crv: None,
                        x: None,
                        y: None,
                        n: Some(B64.encode(private.n().to_bytes_be())),
                        e: Some(B64.encode(private.e().to_bytes_be())),
                    },
                })
            }
        }
    }

    /// A key ID derived from the public key (RFC 7638-style thumbprint, truncated), so that
    /// the same key always gets the same `kid`.
    pub fn thumbprint_kid(&self) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        use base64::Engine;
        use sha2::{Digest, Sha256};
        let j = &self.public_jwk;
        // Members in lexicographic order, as RFC 7638 requires.
        let canonical = match j.kty.as_str() {
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                j.crv.as_deref().unwrap_or_default(),
                j.x.as_deref().unwrap_or_default(),
                j.y.as_deref().unwrap_or_default()
            ),
            "OKP" => format!(
                r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
                j.crv.as_deref().unwrap_or_default(),
                j.x.as_deref().unwrap_or_default()
            ),
            _ => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                j.e.as_deref().unwrap_or_default(),
                j.n.as_deref().unwrap_or_default()
            ),
        };
        let digest = Sha256::digest(canonical.as_bytes());
        B64.encode(&digest[..12])
    }

    /// Schedules the key, producing a [`SigningKey`].
    pub fn schedule(
        self,
        publish_at: DateTime<Utc>,
        activate_at: DateTime<Utc>,
        retire_at: DateTime<Utc>,
        delete_at: DateTime<Utc>,
    ) -> SigningKey {
        let kid = self.thumbprint_kid();
        SigningKey {
            kid,
            alg: self.alg,
            private_key_pem: self.private_key_pem,
            public_jwk: self.public_jwk,
            publish_at,
            activate_at,
            retire_at,
            delete_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn key(alg: Algorithm, p: i64, a: i64, r: i64, d: i64) -> SigningKey {
        GeneratedKey::generate(alg)
            .unwrap()
            .schedule(at(p), at(a), at(r), at(d))
    }

    #[test]
    fn newest_active_key_signs_and_published_window_is_half_open() {
        let old = key(Algorithm::ES256, 0, 0, 200, 300);
        let new = key(Algorithm::ES256, 50, 100, 400, 500);
        let set = KeySet {
            keys: vec![old.clone(), new.clone()],
        };
        assert_eq!(set.signing_key(at(10)).unwrap().kid, old.kid);
        assert_eq!(set.published(at(10)).count(), 1);
        assert_eq!(set.published(at(60)).count(), 2);
        // Both could sign in [100, 200): the newer activation wins.
        assert_eq!(set.signing_key(at(150)).unwrap().kid, new.kid);
        assert_eq!(set.published(at(300)).count(), 1);
        assert!(set.signing_key(at(400)).is_none());
        assert_eq!(set.next_change_after(at(60)), Some(at(100)));
    }

    #[test]
    fn round_trips_through_json_and_rejects_bad_schedules() {
        let k = key(Algorithm::EdDSA, 0, 10, 20, 30);
        let set = KeySet { keys: vec![k] };
        let parsed = KeySet::from_json(set.to_json().as_bytes()).unwrap();
        assert_eq!(parsed, set);

        let mut bad = set.clone();
        bad.keys[0].retire_at = bad.keys[0].activate_at - Duration::seconds(1);
        let err = KeySet::from_json(bad.to_json().as_bytes()).unwrap_err();
        assert!(matches!(err, KeySetError::BadSchedule { .. }), "{err}");

        let mut dup = set.clone();
        dup.keys.push(dup.keys[0].clone());
        assert!(matches!(
            KeySet::from_json(dup.to_json().as_bytes()),
            Err(KeySetError::DuplicateKid(_))
        ));
    }

    #[test]
    fn generated_keys_have_the_right_jwk_shape() {
        let es = GeneratedKey::generate(Algorithm::ES256).unwrap();
        assert_eq!(es.public_jwk.kty, "EC");
        assert_eq!(es.public_jwk.x.as_ref().unwrap().len(), 43);
        assert!(es
            .private_key_pem
            .starts_with("-----BEGIN PRIVATE KEY-----"));
        let ed = GeneratedKey::generate(Algorithm::EdDSA).unwrap();
        assert_eq!(ed.public_jwk.crv.as_deref(), Some("Ed25519"));
        let rs = GeneratedKey::generate(Algorithm::RS256).unwrap();
        assert_eq!(rs.public_jwk.e.as_deref(), Some("AQAB"));
        assert_ne!(es.thumbprint_kid(), ed.thumbprint_kid());
    }

    #[test]
    fn debug_output_never_contains_the_private_key() {
        let k = key(Algorithm::ES256, 0, 0, 1, 2);
        let shown = format!("{k:?}");
        assert!(!shown.contains("PRIVATE KEY"));
        assert!(shown.contains(&k.kid));
    }
}
