//! Access tokens: JWTs per RFC 9068 (`typ: at+jwt`), signed by the key the clock makes
//! active, and their verification for introspection.

use crate::keys::{LoadedKeys, SignatureError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
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

/// The JOSE header fields verification reads.
#[derive(Deserialize)]
struct Header {
    alg: jsonwebtoken::Algorithm,
    kid: Option<String>,
    typ: Option<String>,
}

/// Verifies an access token issued by `issuer` with the keys published at `now`: a compact
/// JWS of type `at+jwt` whose signature verifies with the published key `kid` names, whose
/// `iss` is `issuer` and whose `exp` is after `now`.
pub fn verify(
    keys: &LoadedKeys,
    issuer: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Result<AccessClaims, Invalid> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Invalid::Malformed);
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(header_b64)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or(Invalid::Malformed)?;
    if header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
        return Err(Invalid::Malformed);
    }
    let kid = header.kid.ok_or(Invalid::UnknownKey)?;
    let message = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
    keys.verify_signature(&kid, header.alg, message, signature_b64, now)
        .map_err(|e| match e {
            SignatureError::UnknownKey => Invalid::UnknownKey,
            SignatureError::BadSignature => Invalid::BadSignatureOrClaims,
        })?;
    let claims: AccessClaims = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or(Invalid::BadSignatureOrClaims)?;
    if claims.iss != issuer || claims.exp <= now.timestamp() {
        return Err(Invalid::BadSignatureOrClaims);
    }
    Ok(claims)
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
