//! The key set: loaded from the file the operator mounts, reloaded when it changes (no
//! restart), with the signer chosen by the clock at every signature — never by when the file
//! was read — so replicas agree without talking to each other.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, ParsedPublicKey, RsaKeyPair, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use palisade_wire::keyset::{self, GeneratedKey, KeySet, PublicJwk};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A private key parsed once per key-set load (jsonwebtoken re-parses the PKCS#8 document on
/// every signature, which costs about as much as the signature itself).
enum Signer {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

impl Signer {
    fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        match self {
            Signer::Ecdsa(k) => k
                .sign(&SystemRandom::new(), message)
                .ok()
                .map(|s| s.as_ref().to_vec()),
            Signer::Ed25519(k) => Some(k.sign(message).as_ref().to_vec()),
            Signer::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
                    .ok()?;
                Some(sig)
            }
        }
    }
}

/// A public key parsed once; RSA keys verify through jsonwebtoken.
enum Verifier {
    Parsed(ParsedPublicKey),
    Jwt(DecodingKey),
}

impl Verifier {
    /// Whether `signature_b64` (base64url) signs `message` with this key and `alg`.
    fn verify(&self, alg: Algorithm, message: &[u8], signature_b64: &str) -> bool {
        match self {
            Verifier::Parsed(public) => URL_SAFE_NO_PAD
                .decode(signature_b64)
                .is_ok_and(|sig| public.verify_sig(message, &sig).is_ok()),
            Verifier::Jwt(key) => {
                jsonwebtoken::crypto::verify(signature_b64, message, key, alg).unwrap_or(false)
            }
        }
    }
}

/// Why a compact JWS did not verify against the key set.
#[derive(Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// No key with that `kid` is published now.
    UnknownKey,
    /// The algorithm is not the key's, or the signature is wrong.
    BadSignature,
}

/// The JOSE header Palisade writes.
#[derive(Serialize)]
struct JoseHeader<'a> {
    typ: &'a str,
    alg: Algorithm,
    kid: &'a str,
}

/// A key set with its keys parsed once.
pub struct LoadedKeys {
    pub set: KeySet,
    signers: HashMap<String, (Signer, Algorithm)>,
    verifiers: HashMap<String, (Verifier, Algorithm)>,
    decoders: HashMap<String, (DecodingKey, Algorithm)>,
    jwks_cache: RwLock<Option<(u64, axum::body::Bytes)>>,
    /// SHA-256 of signed messages and signatures that verified with this key set: the same
    /// token introspected again skips the signature check (the result cannot differ while the
    /// key is published; a reload starts a new cache).
    verified: moka::sync::Cache<[u8; 32], ()>,
}

/// Verified signatures remembered per key set, and for how long.
const VERIFIED_CAPACITY: u64 = 50_000;
const VERIFIED_TTL: Duration = Duration::from_secs(600);

fn jwt_alg(alg: keyset::Algorithm) -> Algorithm {
    match alg {
        keyset::Algorithm::ES256 => Algorithm::ES256,
        keyset::Algorithm::RS256 => Algorithm::RS256,
        keyset::Algorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// The verification key of a public JWK (`EC` P-256, `RSA` or `OKP` Ed25519 members), or
/// `None` when its members are missing or malformed.
pub fn decoding_key(jwk: &PublicJwk) -> Option<DecodingKey> {
    match jwk.kty.as_str() {
        "EC" => DecodingKey::from_ec_components(jwk.x.as_deref()?, jwk.y.as_deref()?).ok(),
        "RSA" => DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok(),
        "OKP" => DecodingKey::from_ed_components(jwk.x.as_deref()?).ok(),
        _ => None,
    }
}

fn parse_key(k: &keyset::SigningKey) -> anyhow::Result<(Signer, Verifier, DecodingKey)> {
    let bad = |what: &str| anyhow::anyhow!("key {}: {what}", k.kid);
    let pem = k.private_key_pem.as_bytes();
    // The JWK must be of the algorithm's key type: a decoding key of another type has no raw
    // public key to parse (jsonwebtoken panics on `as_bytes` of RSA components).
    let kty = match k.alg {
        keyset::Algorithm::ES256 => "EC",
        keyset::Algorithm::EdDSA => "OKP",
        keyset::Algorithm::RS256 => "RSA",
    };
    if k.public_jwk.kty != kty {
        return Err(bad(&format!(
            "a {} key needs a public JWK of type {kty}, not {}",
            k.alg, k.public_jwk.kty
        )));
    }
    let dec = decoding_key(&k.public_jwk).ok_or_else(|| bad("bad public JWK"))?;
    let (signer, verifier) = match k.alg {
        keyset::Algorithm::ES256 => {
            let der = EncodingKey::from_ec_pem(pem).map_err(|e| bad(&e.to_string()))?;
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.inner())
                .map_err(|e| bad(&e.to_string()))?;
            let public = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, dec.as_bytes())
                .map_err(|e| bad(&e.to_string()))?;
            (Signer::Ecdsa(pair), Verifier::Parsed(public))
        }
        keyset::Algorithm::EdDSA => {
            let der = EncodingKey::from_ed_pem(pem).map_err(|e| bad(&e.to_string()))?;
            let pair = Ed25519KeyPair::from_pkcs8(der.inner()).map_err(|e| bad(&e.to_string()))?;
            let public =
                ParsedPublicKey::new(&ED25519, dec.as_bytes()).map_err(|e| bad(&e.to_string()))?;
            (Signer::Ed25519(pair), Verifier::Parsed(public))
        }
        keyset::Algorithm::RS256 => {
            let der = EncodingKey::from_rsa_pem(pem).map_err(|e| bad(&e.to_string()))?;
            let pair = RsaKeyPair::from_der(der.inner()).map_err(|e| bad(&e.to_string()))?;
            (Signer::Rsa(pair), Verifier::Jwt(dec.clone()))
        }
    };
    // The private key must match the published public key, or tokens would never verify: a
    // probe signed with one must verify with the other (any algorithm, RSA included).
    const PROBE: &[u8] = b"palisade: the private key matches the published JWK";
    let matches = signer
        .sign(PROBE)
        .is_some_and(|sig| verifier.verify(jwt_alg(k.alg), PROBE, &URL_SAFE_NO_PAD.encode(sig)));
    if !matches {
        return Err(bad("the private key does not match the public JWK"));
    }
    Ok((signer, verifier, dec))
}

fn b64_json<T: Serialize>(value: &T, out: &mut String) -> Option<()> {
    let json = serde_json::to_vec(value).ok()?;
    URL_SAFE_NO_PAD.encode_string(json, out);
    Some(())
}

impl LoadedKeys {
    /// Parses every key; a key that cannot be parsed makes the whole set invalid.
    pub fn new(set: KeySet) -> anyhow::Result<Self> {
        let mut signers = HashMap::new();
        let mut verifiers = HashMap::new();
        let mut decoders = HashMap::new();
        for k in &set.keys {
            let alg = jwt_alg(k.alg);
            let (signer, verifier, dec) = parse_key(k)?;
            signers.insert(k.kid.clone(), (signer, alg));
            verifiers.insert(k.kid.clone(), (verifier, alg));
            decoders.insert(k.kid.clone(), (dec, alg));
        }
        Ok(LoadedKeys {
            set,
            signers,
            verifiers,
            decoders,
            jwks_cache: RwLock::new(None),
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_live(VERIFIED_TTL)
                .build(),
        })
    }

    /// Signs `claims` with the key active at `now`, with JOSE header type `typ`: a compact
    /// JWS (RFC 7515) with `alg`, `kid` and `typ` in its header.
    pub fn sign<T: Serialize>(&self, claims: &T, typ: &str, now: DateTime<Utc>) -> Option<String> {
        let key = self.set.signing_key(now)?;
        let (signer, alg) = self.signers.get(&key.kid)?;
        let header = JoseHeader {
            typ,
            alg: *alg,
            kid: &key.kid,
        };
        let mut out = String::with_capacity(640);
        b64_json(&header, &mut out)?;
        out.push('.');
        b64_json(claims, &mut out)?;
        let signature = signer.sign(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut out);
        Some(out)
    }

    /// Checks the signature of a compact JWS: `message` is `header.payload` as sent,
    /// `signature_b64` the third part. The key must be published at `now` and its algorithm
    /// must be `alg`.
    pub fn verify_signature(
        &self,
        kid: &str,
        alg: Algorithm,
        message: &[u8],
        signature_b64: &str,
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        if !self
            .set
            .keys
            .iter()
            .any(|k| k.kid == kid && k.is_published(now))
        {
            return Err(SignatureError::UnknownKey);
        }
        let (verifier, key_alg) = self.verifiers.get(kid).ok_or(SignatureError::UnknownKey)?;
        if *key_alg != alg {
            return Err(SignatureError::BadSignature);
        }
        let digest: [u8; 32] = Sha256::new()
            .chain_update(kid)
            .chain_update([0])
            .chain_update(message)
            .chain_update(b".")
            .chain_update(signature_b64)
            .finalize()
            .into();
        if self.verified.contains_key(&digest) {
            return Ok(());
        }
        if verifier.verify(alg, message, signature_b64) {
            self.verified.insert(digest, ());
            Ok(())
        } else {
            Err(SignatureError::BadSignature)
        }
    }

    /// The verification key for `kid`, if it is published at `now`.
    pub fn decoder(&self, kid: &str, now: DateTime<Utc>) -> Option<&(DecodingKey, Algorithm)> {
        self.set
            .keys
            .iter()
            .find(|k| k.kid == kid && k.is_published(now))?;
        self.decoders.get(kid)
    }

    /// The JWKS document at `now`.
    pub fn jwks(&self, now: DateTime<Utc>) -> serde_json::Value {
        let keys: Vec<_> = self
            .set
            .published(now)
            .map(|k| {
                let mut jwk = serde_json::to_value(&k.public_jwk).expect("jwk serializes");
                jwk["kid"] = k.kid.clone().into();
                jwk["alg"] = k.alg.to_string().into();
                jwk["use"] = "sig".into();
                jwk
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// [`Self::jwks`] serialized, rendered once per set of published keys.
    pub fn jwks_json(&self, now: DateTime<Utc>) -> axum::body::Bytes {
        if self.set.keys.len() > 64 {
            return serde_json::to_vec(&self.jwks(now))
                .expect("jwks serializes")
                .into();
        }
        // Which keys are published, as a bit set: the document changes only when it does.
        let published = self
            .set
            .keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.is_published(now))
            .fold(0u64, |acc, (i, _)| acc | (1u64 << i));
        if let Some((mask, body)) = self.jwks_cache.read().expect("lock").as_ref() {
            if *mask == published {
                return body.clone();
            }
        }
        let body =
            axum::body::Bytes::from(serde_json::to_vec(&self.jwks(now)).expect("jwks serializes"));
        *self.jwks_cache.write().expect("lock") = Some((published, body.clone()));
        body
    }
}

/// The current key set, swapped atomically on reload.
#[derive(Clone)]
pub struct KeyStore {
    current: Arc<RwLock<Arc<LoadedKeys>>>,
}

impl KeyStore {
    /// A store holding `keys`.
    pub fn new(keys: LoadedKeys) -> Self {
        KeyStore {
            current: Arc::new(RwLock::new(Arc::new(keys))),
        }
    }

    /// A development key set: one ES256 key valid for a year, generated in memory.
    pub fn development() -> anyhow::Result<Self> {
        let now = Utc::now();
        let year = chrono::Duration::days(365);
        let key = GeneratedKey::generate(keyset::Algorithm::ES256)?.schedule(
            now,
            now,
            now + year,
            now + year,
        );
        Ok(Self::new(LoadedKeys::new(KeySet { keys: vec![key] })?))
    }

    /// Loads the key-set file.
    pub fn load(path: &PathBuf) -> anyhow::Result<Self> {
        let bytes =
            std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        Ok(Self::new(LoadedKeys::new(KeySet::from_json(&bytes)?)?))
    }

    /// The key set as of now (cheap: an `Arc` clone).
    pub fn get(&self) -> Arc<LoadedKeys> {
        self.current.read().expect("lock").clone()
    }

    /// Swaps in a new key set.
    pub fn replace(&self, keys: LoadedKeys) {
        *self.current.write().expect("lock") = Arc::new(keys);
    }

    /// Watches the file and swaps in each valid new version; a broken file is logged and the
    /// previous set kept (requests are never dropped for it).
    pub fn watch(&self, path: PathBuf, every: Duration) {
        let store = self.clone();
        tokio::spawn(async move {
            let mut last = std::fs::read(&path).ok();
            loop {
                tokio::time::sleep(every).await;
                let Ok(bytes) = tokio::fs::read(&path).await else {
                    continue;
                };
                if last.as_ref() == Some(&bytes) {
                    continue;
                }
                match KeySet::from_json(&bytes)
                    .map_err(anyhow::Error::from)
                    .and_then(LoadedKeys::new)
                {
                    Ok(keys) => {
                        let kids: Vec<_> = keys.set.keys.iter().map(|k| k.kid.clone()).collect();
                        store.replace(keys);
                        tracing::info!(?kids, "reloaded the key set");
                        last = Some(bytes);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "ignoring an unreadable key set; keeping the previous one")
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_key_that_does_not_match_its_jwk_is_refused() {
        let now = Utc::now();
        let later = now + chrono::Duration::hours(1);
        for alg in [
            keyset::Algorithm::ES256,
            keyset::Algorithm::RS256,
            keyset::Algorithm::EdDSA,
        ] {
            let key = |g: keyset::GeneratedKey| g.schedule(now, now, later, later);
            let good = key(keyset::GeneratedKey::generate(alg).unwrap());
            let other = key(keyset::GeneratedKey::generate(alg).unwrap());
            assert!(parse_key(&good).is_ok(), "{alg:?}");
            let swapped = keyset::SigningKey {
                public_jwk: other.public_jwk,
                ..good
            };
            let err = parse_key(&swapped).err().expect("refused").to_string();
            assert!(err.contains("does not match"), "{alg:?}: {err}");
        }
    }

    #[test]
    fn a_public_jwk_of_another_key_type_is_refused_without_a_panic() {
        // Found by the `keyset` fuzz target: an EdDSA key with an RSA JWK panicked in
        // jsonwebtoken (`DecodingKey::as_bytes` of RSA components), killing the reload task.
        let now = Utc::now();
        let later = now + chrono::Duration::hours(1);
        let algs = [
            keyset::Algorithm::ES256,
            keyset::Algorithm::RS256,
            keyset::Algorithm::EdDSA,
        ];
        let keys: Vec<_> = algs
            .iter()
            .map(|&alg| {
                keyset::GeneratedKey::generate(alg)
                    .unwrap()
                    .schedule(now, now, later, later)
            })
            .collect();
        for key in &keys {
            for other in keys.iter().filter(|o| o.alg != key.alg) {
                let mixed = keyset::SigningKey {
                    public_jwk: other.public_jwk.clone(),
                    ..key.clone()
                };
                let err = parse_key(&mixed).err().expect("refused").to_string();
                assert!(err.contains("needs a public JWK of type"), "{err}");
                assert!(LoadedKeys::new(KeySet { keys: vec![mixed] }).is_err());
            }
        }
    }

    #[test]
    fn signs_with_the_key_active_now_and_verifies_with_published_keys() {
        let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let a = GeneratedKey::generate(keyset::Algorithm::ES256)
            .unwrap()
            .schedule(t(0), t(0), t(100), t(200));
        let b = GeneratedKey::generate(keyset::Algorithm::EdDSA)
            .unwrap()
            .schedule(t(50), t(100), t(300), t(400));
        let keys = LoadedKeys::new(KeySet {
            keys: vec![a.clone(), b.clone()],
        })
        .unwrap();
        let claims = serde_json::json!({"sub": "x"});
        let early = keys.sign(&claims, "at+jwt", t(10)).unwrap();
        let late = keys.sign(&claims, "at+jwt", t(150)).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&early).unwrap().kid.unwrap(),
            a.kid
        );
        assert_eq!(
            jsonwebtoken::decode_header(&late).unwrap().kid.unwrap(),
            b.kid
        );
        assert_eq!(
            jsonwebtoken::decode_header(&late).unwrap().typ.as_deref(),
            Some("at+jwt")
        );
        assert_eq!(keys.jwks(t(10))["keys"].as_array().unwrap().len(), 1);
        assert_eq!(keys.jwks(t(60))["keys"].as_array().unwrap().len(), 2);
        assert!(
            keys.decoder(&a.kid, t(250)).is_none(),
            "deleted keys no longer verify"
        );
        assert!(
            keys.sign(&claims, "at+jwt", t(350)).is_none(),
            "no signer outside every window"
        );
        // A verified signature is remembered, but never past its key's publish window.
        let (message, signature) = early.rsplit_once('.').unwrap();
        let check = |at| {
            keys.verify_signature(
                &a.kid,
                Algorithm::ES256,
                message.as_bytes(),
                signature,
                t(at),
            )
        };
        assert_eq!(check(20), Ok(()));
        assert_eq!(check(20), Ok(()), "again, from the cache");
        assert_eq!(check(250), Err(SignatureError::UnknownKey));
        let wrong_alg = keys.verify_signature(
            &a.kid,
            Algorithm::EdDSA,
            message.as_bytes(),
            signature,
            t(20),
        );
        assert_eq!(wrong_alg, Err(SignatureError::BadSignature));
        let other = format!("{message}x");
        assert_eq!(
            keys.verify_signature(&a.kid, Algorithm::ES256, other.as_bytes(), signature, t(20)),
            Err(SignatureError::BadSignature),
            "another message with a remembered signature still fails"
        );
    }
}
