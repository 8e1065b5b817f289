//! Public endpoints (port 8080), one file each.

pub mod authorize;
pub mod discovery;
pub mod end_session;
pub mod health;
pub mod html;
pub mod introspect;
pub mod jwks;
pub mod login;
pub mod revoke;
pub mod token;
pub mod userinfo;

use crate::error::OAuthError;
use axum::extract::rejection::FormRejection;
use axum::Form;
use std::collections::HashMap;

/// A form body as name → value; a body that is not a form is `invalid_request`.
pub type Params = HashMap<String, String>;

/// A form body as received: pairs in order, repeats kept so that they can be refused.
pub type FormPairs = Vec<(String, String)>;

/// Longest value accepted for any token-endpoint-style parameter (JWTs are well below it).
pub const MAX_FORM_VALUE_LEN: usize = 8 * 1024;

/// Unwraps a form, mapping a bad body, a repeated parameter (RFC 6749 §3.2) or an oversized
/// value to `invalid_request`.
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
