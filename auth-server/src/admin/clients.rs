//! `PUT/GET/DELETE /admin/clients/{client_id}`: the client registry (idempotent). The body is
//! the shared wire `ClientRegistration`; only a hash of the secret is ever stored or returned.

use crate::error::OAuthError;
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use palisade_wire::registration::{ClientRegistration, GrantType};

/// Checks a registration beyond its JSON shape.
pub fn validate(path_id: &str, reg: &ClientRegistration) -> Result<(), OAuthError> {
    let bad = |m: &str| Err(OAuthError::InvalidRequest(m.into()));
    if reg.client_id != path_id {
        return bad("clientId in the body must match the path");
    }
    if reg.client_id.is_empty() || reg.client_id.len() > 255 {
        return bad("clientId must be 1 to 255 characters");
    }
    if reg.public != reg.client_secret_hash.is_none() {
        return bad("a public client has no secret hash and a confidential client must have one");
    }
    if reg.public && reg.grant_types.contains(&GrantType::ClientCredentials) {
        return bad("a public client cannot use client_credentials");
    }
    if reg.redirect_uris.iter().any(|u| u.contains('#')) {
        return bad("redirect URIs must not contain a fragment");
    }
    Ok(())
}

/// Registers or replaces a client.
pub async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<ClientRegistration>, JsonRejection>,
) -> Result<StatusCode, OAuthError> {
    let Json(reg) = body.map_err(|e| OAuthError::InvalidRequest(e.body_text()))?;
    validate(&id, &reg)?;
    state.store.put_client(&reg).await?;
    tracing::info!(client_id = %id, "client registered");
    Ok(StatusCode::NO_CONTENT)
}

/// Reads a client's registration.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ClientRegistration>, OAuthError> {
    state
        .store
        .client(&id)
        .await?
        .map(Json)
        .ok_or(OAuthError::NotFound)
}

/// Removes a client; an unknown client is a 404 (callers treat it as done).
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, OAuthError> {
    if state.store.delete_client(&id).await? {
        tracing::info!(client_id = %id, "client deregistered");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(OAuthError::NotFound)
    }
}
