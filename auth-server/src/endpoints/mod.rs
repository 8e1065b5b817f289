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

/// Longest value accepted for any token-endpoint-style parameter (JWTs are well below it).
pub const MAX_FORM_VALUE_LEN: usize = 8 * 1024;

/// Unwraps a form, mapping a bad body or an oversized value to the RFC error.
pub fn form(f: Result<Form<Params>, FormRejection>) -> Result<Params, OAuthError> {
    let p = f.map(|Form(p)| p).map_err(|e| {
        OAuthError::InvalidRequest(format!(
            "the body must be application/x-www-form-urlencoded ({})",
            e.body_text()
        ))
    })?;
    if let Some(name) = p
        .iter()
        .find(|(_, v)| v.len() > MAX_FORM_VALUE_LEN)
        .map(|(k, _)| k.chars().take(64).collect::<String>())
    {
        return Err(OAuthError::InvalidRequest(format!(
            "parameter {name} is too long"
        )));
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
