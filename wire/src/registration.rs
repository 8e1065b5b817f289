//! The client registration payload of the admin API:
//! `PUT /admin/clients/{client_id}` (body: [`ClientRegistration`]), idempotent.
//!
//! The client secret itself never crosses this API: the operator sends only
//! [`hash_client_secret`] of it, and the auth-server compares hashes in constant time.
//! Client secrets are 256-bit random values, so a fast hash is as strong as a slow one here
//! and keeps the token endpoint fast.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// An OAuth 2.0 grant type a client may use.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// Authorization code with PKCE: users sign in through the browser.
    AuthorizationCode,
    /// Refresh tokens, rotated on every use.
    RefreshToken,
    /// Machine-to-machine tokens for confidential clients; no user involved.
    ClientCredentials,
}

impl GrantType {
    /// The grant type as written in token requests and discovery.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }
}

/// How a client authenticates at the token, introspection and revocation endpoints.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuthMethod {
    /// HTTP Basic authentication with client_id and client_secret (the default).
    #[default]
    ClientSecretBasic,
    /// client_id and client_secret in the form body.
    ClientSecretPost,
    /// No secret: public clients (SPAs, native apps), which must use PKCE.
    None,
}

impl TokenEndpointAuthMethod {
    /// The method as written in discovery metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenEndpointAuthMethod::ClientSecretBasic => "client_secret_basic",
            TokenEndpointAuthMethod::ClientSecretPost => "client_secret_post",
            TokenEndpointAuthMethod::None => "none",
        }
    }
}

/// A client as registered with the auth-server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "clientId": "my-app",
    "clientName": "My App",
    "redirectUris": ["https://app.example/callback"],
    "postLogoutRedirectUris": ["https://app.example/"],
    "grantTypes": ["authorization_code", "refresh_token"],
    "scopes": ["openid", "profile", "email"],
    "tokenEndpointAuthMethod": "client_secret_basic",
    "public": false,
    "clientSecretHash": "sha256:n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg",
})))]
#[serde(rename_all = "camelCase")]
pub struct ClientRegistration {
    /// The client's identifier; must equal the `{client_id}` of the path (1 to 255 characters).
    pub client_id: String,
    /// Name shown on the sign-in page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Redirect URIs, matched exactly; no fragments.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Where `/end_session` may return to, matched exactly.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Grants the client may use.
    pub grant_types: Vec<GrantType>,
    /// Scopes the client may request (`openid` included when it signs users in).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// How the client authenticates at `/token`, `/introspect` and `/revoke`.
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    /// `true` for clients without a secret; PKCE is then required.
    #[serde(default)]
    pub public: bool,
    /// [`hash_client_secret`] of the secret (`sha256:<base64url>`); absent for public clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_hash: Option<String>,
}

const HASH_PREFIX: &str = "sha256:";

/// Hashes a client secret for storage and transport: `sha256:<base64url>`.
pub fn hash_client_secret(secret: &str) -> String {
    format!(
        "{HASH_PREFIX}{}",
        B64.encode(Sha256::digest(secret.as_bytes()))
    )
}

/// Checks a presented secret against a stored hash, in constant time.
pub fn verify_client_secret(presented: &str, stored_hash: &str) -> bool {
    let computed = hash_client_secret(presented);
    computed.len() == stored_hash.len()
        && bool::from(computed.as_bytes().ct_eq(stored_hash.as_bytes()))
}

/// Generates a high-entropy secret or identifier: `bytes` random bytes, base64url.
pub fn random_token(bytes: usize) -> String {
    use rand_core::{OsRng, RngCore};
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    B64.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_hash_verifies_only_the_same_secret() {
        let secret = random_token(32);
        let hash = hash_client_secret(&secret);
        assert!(hash.starts_with("sha256:"));
        assert!(!hash.contains(&secret));
        assert!(verify_client_secret(&secret, &hash));
        assert!(!verify_client_secret("wrong", &hash));
        assert!(!verify_client_secret(&secret, "sha256:short"));
    }

    #[test]
    fn registration_json_uses_camel_case_and_oauth_names() {
        let reg = ClientRegistration {
            client_id: "app".into(),
            client_name: None,
            redirect_uris: vec!["https://app.example/cb".into()],
            post_logout_redirect_uris: vec![],
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            scopes: vec!["openid".into()],
            token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
            public: false,
            client_secret_hash: Some(hash_client_secret("s")),
        };
        let json = serde_json::to_value(&reg).unwrap();
        assert_eq!(json["grantTypes"][0], "authorization_code");
        assert_eq!(json["tokenEndpointAuthMethod"], "client_secret_basic");
        let back: ClientRegistration = serde_json::from_value(json).unwrap();
        assert_eq!(back, reg);
    }

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let a = random_token(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token(32));
    }
}
