//! `/introspect` (RFC 7662): a client-authenticated check of a token. Palisade's own JWT
//! access tokens are verified with the published keys and checked against revocations.

use super::{form, required, FormPairs};
use crate::client_auth::authenticate_form;
use crate::error::{ErrorBody, OAuthError};
use crate::revocation::access_token_revoked;
use crate::state::AppState;
use crate::tokens::verify;
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Serialize;

/// The introspection answer (RFC 7662 §2.2): `{"active": false}` for anything that is not a
/// live token of this issuer; the token's claims when it is.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Introspection {
    /// Whether the token is a live access token of this issuer.
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The user's subject, or the client's id for client_credentials tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Expiry, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issue time, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Space-separated scopes (absent when the token has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `Bearer` for active tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub token_type: Option<&'static str>,
}

/// The introspection endpoint: `{"active": false}` for anything not a live token of ours.
/// Confidential clients only.
#[utoipa::path(
    post,
    path = "/introspect",
    tag = "public",
    operation_id = "introspect",
    request_body(content = super::TokenForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = []), ()),
    responses(
        (status = 200, description = "The token's state", body = Introspection),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_client`: client authentication failed, or a public client", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Basic realm=\"palisade\"`"))),
    ),
)]
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Form<FormPairs>, FormRejection>,
) -> Result<Response, OAuthError> {
    let p = form(body)?;
    let client = authenticate_form(state.store.as_ref(), &headers, &p).await?;
    if client.public {
        return Err(OAuthError::InvalidClient);
    }
    let token = required(&p, "token")?;
    let inactive = || Json(Introspection::default()).into_response();
    let Ok(claims) = verify(
        &state.keys.get(),
        &state.config.issuer,
        token,
        chrono::Utc::now(),
    ) else {
        return Ok(inactive());
    };
    if access_token_revoked(state.store.as_ref(), &claims).await? {
        return Ok(inactive());
    }
    Ok(Json(Introspection {
        active: true,
        iss: Some(claims.iss),
        sub: Some(claims.sub),
        aud: Some(claims.aud),
        exp: Some(claims.exp),
        iat: Some(claims.iat),
        jti: Some(claims.jti),
        client_id: Some(claims.client_id),
        scope: (!claims.scope.is_empty()).then_some(claims.scope),
        token_type: Some("Bearer"),
    })
    .into_response())
}
