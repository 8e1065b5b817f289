//! `/token` (RFC 6749 §3.2): authenticates the client as it registered, then dispatches on
//! `grant_type` to a handler in `grants/`.

use super::{form, required, FormPairs, Params};
use crate::client_auth::authenticate_form;
use crate::error::{ErrorBody, OAuthError};
use crate::grants::{self, TokenResponse};
use crate::state::AppState;
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Form;

/// A token request (`application/x-www-form-urlencoded`), one shape per grant. A client using
/// `client_secret_post` adds `client_id` and `client_secret`; a public client adds `client_id`.
/// Documentation only: the handler reads the raw pairs so that it can refuse repeated ones.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "grant_type", rename_all = "snake_case")]
pub enum TokenRequest {
    /// Exchange an authorization code (RFC 6749 §4.1.3, PKCE RFC 7636 §4.5).
    AuthorizationCode {
        #[schema(min_length = 1)]
        code: String,
        /// Exactly the `redirect_uri` of the authorization request.
        #[schema(min_length = 1, example = "http://127.0.0.1:8765/callback")]
        redirect_uri: String,
        /// Required when the authorization request carried a `code_challenge`.
        #[schema(nullable = false)]
        code_verifier: Option<String>,
        #[schema(nullable = false)]
        client_id: Option<String>,
        #[schema(nullable = false)]
        client_secret: Option<String>,
    },
    /// Rotate a refresh token (RFC 6749 §6); `scope` may narrow the access token's scopes.
    RefreshToken {
        #[schema(min_length = 1)]
        refresh_token: String,
        #[schema(nullable = false)]
        scope: Option<String>,
        #[schema(nullable = false)]
        client_id: Option<String>,
        #[schema(nullable = false)]
        client_secret: Option<String>,
    },
    /// A confidential client acting as itself (RFC 6749 §4.4).
    ClientCredentials {
        /// Space-separated scopes; absent means every scope the client may use.
        #[schema(nullable = false, example = "api")]
        scope: Option<String>,
        /// The access token's audience (RFC 8707); default: the issuer.
        #[schema(nullable = false)]
        resource: Option<String>,
        #[schema(nullable = false)]
        client_id: Option<String>,
        #[schema(nullable = false)]
        client_secret: Option<String>,
    },
}

/// A token request as the grants read it: the form's parameters, each present once and
/// within [`MAX_FORM_VALUE_LEN`](super::MAX_FORM_VALUE_LEN), with a non-empty `grant_type`.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedTokenRequest {
    pub grant_type: String,
    pub params: Params,
}

/// Parses the body of a token request. Pure: the grant type is checked by the dispatcher,
/// after client authentication (an unauthenticated client learns nothing about grants).
pub fn parse(
    body: Result<Form<FormPairs>, FormRejection>,
) -> Result<ParsedTokenRequest, OAuthError> {
    let params = form(body)?;
    let grant_type = required(&params, "grant_type")?.to_string();
    Ok(ParsedTokenRequest { grant_type, params })
}

/// The token endpoint.
#[utoipa::path(
    post,
    path = "/token",
    tag = "public",
    operation_id = "token",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = []), ()),
    responses(
        (status = 200, description = "Tokens issued", body = TokenResponse,
         headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, description = "`invalid_request`, `invalid_grant`, `unauthorized_client`, `unsupported_grant_type` or `invalid_scope`", body = ErrorBody),
        (status = 401, description = "`invalid_client`: client authentication failed", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Basic realm=\"palisade\"`"))),
    ),
)]
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Form<FormPairs>, FormRejection>,
) -> Result<Response, OAuthError> {
    let ParsedTokenRequest {
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
