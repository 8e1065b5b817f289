//! The key set: loaded from the file the operator mounts, reloaded when it changes (no
//! restart), with the signer chosen by the clock at every signature — never by when the file
//! was read — so replicas agree without talking to each other.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use palisade_wire::keyset::{self, GeneratedKey, KeySet, PublicJwk};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A key set with its keys parsed once.
pub struct LoadedKeys {
    pub set: KeySet,
    encoders: HashMap<String, (EncodingKey, Algorithm)>,
    decoders: HashMap<String, (DecodingKey, Algorithm)>,
}

fn jwt_alg(alg: keyset::Algorithm) -> Algorithm {
    match alg {
        keyset::Algorithm::ES256 => Algorithm::ES256,
        keyset::Algorithm::RS256 => Algorithm::RS256,
        keyset::Algorithm::EdDSA => Algorithm::EdDSA,
    }
}

fn decoding_key(jwk: &PublicJwk) -> Option<DecodingKey> {
    match jwk.kty.as_str() {
        "EC" => DecodingKey::from_ec_components(jwk.x.as_deref()?, jwk.y.as_deref()?).ok(),
        "RSA" => DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok(),
        "OKP" => DecodingKey::from_ed_components(jwk.x.as_deref()?).ok(),
        _ => None,
    }
}

impl LoadedKeys {
    /// Parses every key; a key that cannot be parsed makes the whole set invalid.
    pub fn new(set: KeySet) -> anyhow::Result<Self> {
        let mut encoders = HashMap::new();
        let mut decoders = HashMap::new();
        for k in &set.keys {
            let alg = jwt_alg(k.alg);
            let pem = k.private_key_pem.as_bytes();
            let enc = match k.alg {
                keyset::Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
                keyset::Algorithm::RS256 => EncodingKey::from_rsa_pem(pem),
                keyset::Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            }
            .map_err(|e| anyhow::anyhow!("key {}: {e}", k.kid))?;
            let dec = decoding_key(&k.public_jwk)
                .ok_or_else(|| anyhow::anyhow!("key {}: bad public JWK", k.kid))?;
            encoders.insert(k.kid.clone(), (enc, alg));
            decoders.insert(k.kid.clone(), (dec, alg));
        }
        Ok(LoadedKeys {
            set,
            encoders,
            decoders,
        })
    }

    /// Signs `claims` with the key active at `now`, with JOSE header type `typ`.
    pub fn sign<T: Serialize>(&self, claims: &T, typ: &str, now: DateTime<Utc>) -> Option<String> {
        let key = self.set.signing_key(now)?;
        let (enc, alg) = self.encoders.get(&key.kid)?;
        let mut header = Header::new(*alg);
        header.kid = Some(key.kid.clone());
        header.typ = Some(typ.to_string());
        jsonwebtoken::encode(&header, claims, enc).ok()
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
                        *store.current.write().expect("lock") = Arc::new(keys);
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
    }
}
