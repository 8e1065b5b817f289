//! `/token` (RFC 6749 §3.2): authenticates the client as it registered, then dispatches on
//! `grant_type` to a handler in `grants/`.

use super::{form, required, FormPairs, Params};
use crate::client_auth::authenticate_form;
use crate::error::OAuthError;
use crate::grants;
use crate::state::AppState;
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Form;

/// A token request as the grants read it: the form's parameters, each present once and
/// within [`MAX_FORM_VALUE_LEN`](super::MAX_FORM_VALUE_LEN), with a non-empty `grant_type`.
#[derive(Debug, PartialEq, Eq)]
pub struct TokenRequest {
    pub grant_type: String,
    pub params: Params,
}

/// Parses the body of a token request. Pure: the grant type is checked by the dispatcher,
/// after client authentication (an unauthenticated client learns nothing about grants).
pub fn parse(body: Result<Form<FormPairs>, FormRejection>) -> Result<TokenRequest, OAuthError> {
    let params = form(body)?;
    let grant_type = required(&params, "grant_type")?.to_string();
    Ok(TokenRequest { grant_type, params })
}

/// The token endpoint.
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Form<FormPairs>, FormRejection>,
) -> Result<Response, OAuthError> {
    let TokenRequest {
        grant_type,
        params: p,
    } = parse(body)?;
    let client = authenticate_form(state.store.as_ref(), &headers, &p).await?;
    match grant_type.as_str() {
        "authorization_code" => grants::authorization_code::grant(&state, &client, &p).await,
        "refresh_token" => grants::refresh_token::grant(&state, &client, &p).await,
        "client_credentials" => grants::client_credentials::grant(&state, &client, &p).await,
        other => Err(OAuthError::UnsupportedGrantType(format!(
            "unknown grant_type {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(pairs: &[(&str, &str)]) -> Result<Form<FormPairs>, FormRejection> {
        Ok(Form(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
    }

    #[test]
    fn a_token_request_needs_one_grant_type_and_no_repeats() {
        let req = parse(body(&[
            ("grant_type", "client_credentials"),
            ("scope", "a"),
        ]))
        .unwrap();
        assert_eq!(req.grant_type, "client_credentials");
        assert_eq!(req.params.get("scope").map(String::as_str), Some("a"));
        for bad in [
            body(&[("scope", "a")]),
            body(&[("grant_type", "")]),
            body(&[("grant_type", "x"), ("grant_type", "y")]),
        ] {
            assert!(matches!(parse(bad), Err(OAuthError::InvalidRequest(_))));
        }
        let long = "a".repeat(super::super::MAX_FORM_VALUE_LEN + 1);
        assert!(matches!(
            parse(body(&[("grant_type", "x"), ("code", &long)])),
            Err(OAuthError::InvalidRequest(_))
        ));
    }
}
