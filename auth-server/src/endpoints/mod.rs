//! Public endpoints (port 8080), one file each.

pub mod authorize;
pub mod discovery;
pub mod end_session;
pub mod health;
pub mod html;
pub mod introspect;
pub mod jwks;
pub mod login;
pub mod mfa;
pub mod revoke;
pub mod token;
pub mod upstream;
pub mod userinfo;

use crate::error::OAuthError;
use axum::extract::rejection::FormRejection;
use axum::Form;
use std::collections::HashMap;

/// The form of `/introspect` (RFC 7662 §2.1) and `/revoke` (RFC 7009 §2.1). Documentation
/// only: the handlers read the raw pairs so that they can refuse repeated ones.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct TokenForm {
    /// The access token (a JWT of this issuer) or, at `/revoke`, a refresh token.
    #[schema(min_length = 1)]
    pub token: String,
    /// `access_token` or `refresh_token`; a hint only, the token is recognised either way.
    #[schema(nullable = false)]
    pub token_type_hint: Option<String>,
    /// With `client_secret_post`, or alone for a public client (revocation only).
    #[schema(nullable = false)]
    pub client_id: Option<String>,
    /// With `client_secret_post`.
    #[schema(nullable = false)]
    pub client_secret: Option<String>,
}

/// A form body as name → value; a body that is not a form is `invalid_request`.
pub type Params = HashMap<String, String>;

/// A form body as received: pairs in order, repeats kept so that they can be refused.
pub type FormPairs = Vec<(String, String)>;

/// Longest value accepted for any token-endpoint-style parameter (JWTs are well below it).
pub const MAX_FORM_VALUE_LEN: usize = 8 * 1024;

/// Whether a received value may go to storage. PostgreSQL text cannot hold a NUL character
/// (such a query fails as if the database were down), and no OAuth parameter, client or user
/// field legitimately contains one, so values with NUL are refused where they arrive.
pub fn storable(value: &str) -> bool {
    !value.contains('\0')
}

/// Unwraps a form, mapping a bad body, a repeated parameter (RFC 6749 §3.2), an oversized
/// value or one with a NUL character to `invalid_request`.
pub fn form(f: Result<Form<FormPairs>, FormRejection>) -> Result<Params, OAuthError> {
    let pairs = f.map(|Form(p)| p).map_err(|e| {
        OAuthError::InvalidRequest(format!(
            "the body must be application/x-www-form-urlencoded ({})",
            e.body_text()
        ))
    })?;
    let mut p = Params::with_capacity(pairs.len());
    for (k, v) in pairs {
        let name = || k.chars().take(64).collect::<String>();
        if v.len() > MAX_FORM_VALUE_LEN {
            return Err(OAuthError::InvalidRequest(format!(
                "parameter {} is too long",
                name()
            )));
        }
        if !storable(&v) {
            return Err(OAuthError::InvalidRequest(format!(
                "parameter {} contains a NUL character",
                name()
            )));
        }
        if p.contains_key(&k) {
            return Err(OAuthError::InvalidRequest(format!(
                "parameter {} is repeated",
                name()
            )));
        }
        p.insert(k, v);
    }
    Ok(p)
}

/// A required parameter.
pub fn required<'a>(p: &'a Params, name: &str) -> Result<&'a str, OAuthError> {
    p.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::InvalidRequest(format!("missing parameter {name}")))
}
