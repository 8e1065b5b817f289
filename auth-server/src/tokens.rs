//! Access tokens: JWTs per RFC 9068 (`typ: at+jwt`), signed by the key the clock makes
//! active, and their verification for introspection.

use crate::keys::LoadedKeys;
use chrono::{DateTime, Utc};
use jsonwebtoken::Validation;
use palisade_wire::registration::random_token;
use serde::{Deserialize, Serialize};

/// JOSE `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

impl AccessClaims {
    /// Claims for `client_id` acting as itself (client_credentials), valid for `ttl_secs`.
    pub fn for_client(
        issuer: &str,
        client_id: &str,
        audience: &str,
        scope: String,
        now: DateTime<Utc>,
        ttl_secs: u64,
    ) -> Self {
        AccessClaims {
            iss: issuer.to_string(),
            sub: client_id.to_string(),
            aud: audience.to_string(),
            exp: now.timestamp() + ttl_secs as i64,
            iat: now.timestamp(),
            jti: random_token(16),
            client_id: client_id.to_string(),
            scope,
        }
    }
}

/// Why a token did not verify.
#[derive(Debug, PartialEq, Eq)]
pub enum Invalid {
    Malformed,
    UnknownKey,
    BadSignatureOrClaims,
}

/// Verifies an access token issued by `issuer` with the keys published at `now`.
pub fn verify(
    keys: &LoadedKeys,
    issuer: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Result<AccessClaims, Invalid> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| Invalid::Malformed)?;
    if header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
        return Err(Invalid::Malformed);
    }
    let kid = header.kid.ok_or(Invalid::UnknownKey)?;
    let (key, alg) = keys.decoder(&kid, now).ok_or(Invalid::UnknownKey)?;
    if header.alg != *alg {
        return Err(Invalid::BadSignatureOrClaims);
    }
    let mut validation = Validation::new(*alg);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let data = jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
        .map_err(|_| Invalid::BadSignatureOrClaims)?;
    if data.claims.exp <= now.timestamp() {
        return Err(Invalid::BadSignatureOrClaims);
    }
    Ok(data.claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_wire::keyset::{Algorithm, GeneratedKey, KeySet};

    fn keys() -> LoadedKeys {
        let now = Utc::now();
        let k = GeneratedKey::generate(Algorithm::ES256).unwrap().schedule(
            now,
            now,
            now + chrono::Duration::hours(1),
            now + chrono::Duration::hours(2),
        );
        LoadedKeys::new(KeySet { keys: vec![k] }).unwrap()
    }

    #[test]
    fn issued_token_verifies_and_tampering_or_expiry_fails() {
        let keys = keys();
        let now = Utc::now();
        let claims = AccessClaims::for_client(
            "https://id.example",
            "app",
            "https://id.example",
            "api.read".into(),
            now,
            60,
        );
        let token = keys.sign(&claims, ACCESS_TOKEN_TYP, now).unwrap();
        assert_eq!(
            verify(&keys, "https://id.example", &token, now).unwrap(),
            claims
        );
        assert_eq!(
            verify(&keys, "https://other.example", &token, now),
            Err(Invalid::BadSignatureOrClaims)
        );
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(verify(&keys, "https://id.example", &tampered, now).is_err());
        assert!(verify(
            &keys,
            "https://id.example",
            &token,
            now + chrono::Duration::seconds(61)
        )
        .is_err());
        assert_eq!(
            verify(&keys, "https://id.example", "not-a-jwt", now),
            Err(Invalid::Malformed)
        );
    }
}
