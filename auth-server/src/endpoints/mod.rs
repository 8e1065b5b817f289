//! Public endpoints (port 8080), one file each.

pub mod discovery;
pub mod health;
pub mod introspect;
pub mod jwks;
pub mod revoke;
pub mod token;

use crate::error::OAuthError;
use axum::extract::rejection::FormRejection;
use axum::Form;
use std::collections::HashMap;

/// A form body as name → value; a body that is not a form is `invalid_request`.
pub type Params = HashMap<String, String>;

/// Unwraps a form, mapping a bad body to the RFC error.
pub fn form(f: Result<Form<Params>, FormRejection>) -> Result<Params, OAuthError> {
    f.map(|Form(p)| p).map_err(|e| {
        OAuthError::InvalidRequest(format!(
            "the body must be application/x-www-form-urlencoded ({})",
            e.body_text()
        ))
    })
}

/// A required parameter.
pub fn required<'a>(p: &'a Params, name: &str) -> Result<&'a str, OAuthError> {
    p.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::InvalidRequest(format!("missing parameter {name}")))
}
