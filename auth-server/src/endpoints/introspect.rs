//! `/introspect` (RFC 7662): a client-authenticated check of a token. Palisade's own JWT
//! access tokens are verified with the published keys and checked against revocations.

use super::{form, required, FormPairs};
use crate::client_auth::authenticate_form;
use crate::error::OAuthError;
use crate::state::AppState;
use crate::tokens::verify;
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Serialize;

/// The answer for a live token (RFC 7662 §2.2), serialized straight from the claims.
#[derive(Serialize)]
struct Active<'a> {
    active: bool,
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    jti: &'a str,
    client_id: &'a str,
    scope: &'a str,
    token_type: &'static str,
}

/// The introspection endpoint: `{"active": false}` for anything not a live token of ours.
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
    let inactive = || Json(serde_json::json!({ "active": false })).into_response();
    let Ok(claims) = verify(
        &state.keys.get(),
        &state.config.issuer,
        token,
        chrono::Utc::now(),
    ) else {
        return Ok(inactive());
    };
    if state.store.is_revoked(&claims.jti).await? {
        return Ok(inactive());
    }
    Ok(Json(Active {
        active: true,
        iss: &claims.iss,
        sub: &claims.sub,
        aud: &claims.aud,
        exp: claims.exp,
        iat: claims.iat,
        jti: &claims.jti,
        client_id: &claims.client_id,
        scope: &claims.scope,
        token_type: "Bearer",
    })
    .into_response())
}
