//! `/token` (RFC 6749 §3.2): authenticates the client as it registered, then dispatches on
//! `grant_type` to a handler in `grants/`.

use super::{form, required, FormPairs};
use crate::client_auth::authenticate_form;
use crate::error::OAuthError;
use crate::grants;
use crate::state::AppState;
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Form;

/// The token endpoint.
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Form<FormPairs>, FormRejection>,
) -> Result<Response, OAuthError> {
    let p = form(body)?;
    let grant = required(&p, "grant_type")?;
    let client = authenticate_form(state.store.as_ref(), &headers, &p).await?;
    match grant {
        "authorization_code" => grants::authorization_code::grant(&state, &client, &p).await,
        "refresh_token" => grants::refresh_token::grant(&state, &client, &p).await,
        "client_credentials" => grants::client_credentials::grant(&state, &client, &p).await,
        other => Err(OAuthError::UnsupportedGrantType(format!(
            "unknown grant_type {other}"
        ))),
    }
}
