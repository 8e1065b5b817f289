//! Access tokens (JWTs per RFC 9068, `typ: at+jwt`) and ID tokens (OpenID Connect Core §2),
//! signed by the key the clock makes active, and their verification.

use crate::keys::{LoadedKeys, SignatureError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use palisade_wire::keyset::Algorithm;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

/// JOSE `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// JOSE `typ` of ID tokens.
pub const ID_TOKEN_TYP: &str = "JWT";

/// Claims of an ID token. Profile claims are included by scope, as at `/userinfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub azp: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    /// How the user authenticated (`amr`, RFC 8176), e.g. `["pwd"]` or `["pwd", "otp", "mfa"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// Authentication context class (`acr`), derived from `amr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    pub sid: String,
    #[serde(flatten)]
    pub profile: serde_json::Map<String, serde_json::Value>,
}

/// `at_hash` (OpenID Connect Core §3.1.3.6): the left half of the hash of the access token,
/// base64url. The hash is the one of the signing algorithm: SHA-256 for ES256 and RS256,
/// SHA-512 for EdDSA with Ed25519 (as the OpenID errata and common RPs read it).
pub fn at_hash(access_token: &str, alg: Algorithm) -> String {
    let digest: Vec<u8> = match alg {
        Algorithm::ES256 | Algorithm::RS256 => Sha256::digest(access_token.as_bytes()).to_vec(),
        Algorithm::EdDSA => Sha512::digest(access_token.as_bytes()).to_vec(),
    };
    B64.encode(&digest[..digest.len() / 2])
}

/// Verifies an ID token we issued, as sent back in `id_token_hint`: signature and issuer
/// must hold, expiry does not matter (a logout often comes after the token expired).
pub fn verify_id_token_hint(
    keys: &LoadedKeys,
    issuer: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Result<IdClaims, Invalid> {
    let claims: IdClaims = verified_claims(keys, ID_TOKEN_TYP, token, now)?;
    if claims.iss != issuer {
        return Err(Invalid::BadSignatureOrClaims);
    }
    Ok(claims)
}

/// A new access token id (`jti`): 128 random bits, base64url, from the thread's CSPRNG
/// (ChaCha12, seeded and reseeded from the operating system), which costs no system call per
/// token as reading the operating system's generator each time did.
pub fn new_jti() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    B64.encode(bytes)
}

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
    /// A user's token: the grant (refresh-token family) it was issued under, so that revoking
    /// the grant revokes it too ([`crate::revocation`]). Absent for client_credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
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
            jti: new_jti(),
            client_id: client_id.to_string(),
            scope,
            grant_id: None,
        }
    }
}

impl AccessClaims {
    /// Claims for a user's token obtained by `client_id` (audience: this issuer, whose
    /// `/userinfo` accepts it), with a `jti` chosen by the caller; add the grant with
    /// [`AccessClaims::under_grant`].
    pub fn for_user(
        issuer: &str,
        client_id: &str,
        sub: &str,
        scope: String,
        jti: String,
        now: DateTime<Utc>,
        ttl_secs: u64,
    ) -> Self {
        AccessClaims {
            iss: issuer.to_string(),
            sub: sub.to_string(),
            aud: issuer.to_string(),
            exp: now.timestamp() + ttl_secs as i64,
            iat: now.timestamp(),
            jti,
            client_id: client_id.to_string(),
            scope,
            grant_id: None,
        }
    }

    /// These claims, issued under the grant (refresh-token family) `grant_id`.
    pub fn under_grant(self, grant_id: &str) -> Self {
        AccessClaims {
            grant_id: Some(grant_id.to_string()),
            ..self
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

/// The claims of a compact JWS of JOSE type `typ` whose signature verifies with the key its
/// `kid` names, published at `now`. Claims are not checked here.
fn verified_claims<T: DeserializeOwned>(
    keys: &LoadedKeys,
    typ: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Result<T, Invalid> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Invalid::Malformed);
    };
    let header: Header = B64
        .decode(header_b64)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or(Invalid::Malformed)?;
    if header.typ.as_deref() != Some(typ) {
        return Err(Invalid::Malformed);
    }
    let kid = header.kid.ok_or(Invalid::UnknownKey)?;
    let message = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
    keys.verify_signature(&kid, header.alg, message, signature_b64, now)
        .map_err(|e| match e {
            SignatureError::UnknownKey => Invalid::UnknownKey,
            SignatureError::BadSignature => Invalid::BadSignatureOrClaims,
        })?;
    B64.decode(payload_b64)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or(Invalid::BadSignatureOrClaims)
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
    let claims: AccessClaims = verified_claims(keys, ACCESS_TOKEN_TYP, token, now)?;
    if claims.iss != issuer || claims.exp <= now.timestamp() {
        return Err(Invalid::BadSignatureOrClaims);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_wire::keyset::{GeneratedKey, KeySet};

    #[test]
    fn token_ids_are_128_bits_base64url_and_do_not_repeat() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_jti()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            assert_eq!(B64.decode(id).unwrap().len(), 16, "{id}");
        }
    }

    #[test]
    fn at_hash_matches_the_openid_example() {
        // OpenID Connect Core, Appendix A.3: the access token and at_hash of the RS256 example.
        assert_eq!(
            at_hash(
                "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y",
                Algorithm::RS256
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(at_hash("x", Algorithm::ES256).len(), 22, "16 bytes");
        assert_eq!(
            at_hash("x", Algorithm::EdDSA).len(),
            43,
            "32 bytes of SHA-512"
        );
    }

    #[test]
    fn id_token_hints_verify_after_expiry_but_not_when_forged() {
        let keys = keys();
        let now = Utc::now();
        let claims = IdClaims {
            iss: "https://id.example".into(),
            sub: "u1".into(),
            aud: "app".into(),
            azp: "app".into(),
            exp: now.timestamp() - 10,
            iat: now.timestamp() - 100,
            auth_time: now.timestamp() - 100,
            amr: vec!["pwd".into()],
            acr: None,
            nonce: None,
            at_hash: None,
            sid: "s1".into(),
            profile: Default::default(),
        };
        let token = keys.sign(&claims, ID_TOKEN_TYP, now).unwrap();
        assert_eq!(
            verify_id_token_hint(&keys, "https://id.example", &token, now).unwrap(),
            claims
        );
        assert!(verify_id_token_hint(&keys, "https://other.example", &token, now).is_err());
        assert!(verify_id_token_hint(&keys, "https://id.example", "a.b.c", now).is_err());
    }

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
