//! `PUT/GET/DELETE /admin/clients/{client_id}`: the client registry (idempotent). The body is
//! the shared wire `ClientRegistration`; only a hash of the secret is ever stored or returned.

use crate::audit::{AuditEvent, AuditRecord, Outcome};
use crate::endpoints::storable;
use crate::error::{ErrorBody, OAuthError};
use crate::state::AppState;
use axum::extract::rejection::{JsonRejection, PathRejection};
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
    let strings = [&reg.client_id]
        .into_iter()
        .chain(reg.client_name.as_ref())
        .chain(&reg.redirect_uris)
        .chain(&reg.post_logout_redirect_uris)
        .chain(&reg.scopes)
        .chain(reg.client_secret_hash.as_ref());
    if strings.into_iter().any(|s| !storable(s)) {
        return bad("values must not contain NUL characters");
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

/// Audits a registration change (made with the admin token, so by the operator or an
/// administrator).
fn audit_change(state: &AppState, client_id: &str, change: &str) {
    state.audit.record(
        AuditRecord::new(
            AuditEvent::ClientRegistration,
            Outcome::Success,
            chrono::Utc::now(),
        )
        .client(client_id)
        .detail(change),
    );
}

/// Registers or replaces a client.
#[utoipa::path(
    put,
    path = "/admin/clients/{client_id}",
    tag = "admin",
    operation_id = "put_client",
    params(("client_id" = String, Path, description = "The client's id (1 to 255 characters)", min_length = 1, example = "my-app")),
    request_body(content = ClientRegistration, description = "The registration; `clientId` must equal the path's"),
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Registered (created or replaced)"),
        (status = 400, description = "`invalid_request`: malformed JSON, a registration the server refuses, or a path that is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "`invalid_token`: the admin token is missing or wrong", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`"))),
    ),
)]
pub async fn put(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<ClientRegistration>, JsonRejection>,
) -> Result<StatusCode, OAuthError> {
    let id = super::path_param(path)?;
    let Json(reg) = body.map_err(|e| OAuthError::InvalidRequest(e.body_text()))?;
    validate(&id, &reg)?;
    let before = state.store.client(&id).await?;
    state.store.put_client(&reg).await?;
    tracing::info!(client_id = %id, "client registered");
    // The operator repeats unchanged registrations on every resync: only changes are audited.
    let change = match before {
        None => Some("created"),
        Some(b) if *b != reg => Some("updated"),
        Some(_) => None,
    };
    if let Some(change) = change {
        audit_change(&state, &id, change);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Reads a client's registration.
#[utoipa::path(
    get,
    path = "/admin/clients/{client_id}",
    tag = "admin",
    operation_id = "get_client",
    params(("client_id" = String, Path, description = "The client's id", min_length = 1, example = "my-app")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The registration (with the secret's hash, never the secret)", body = ClientRegistration),
        (status = 401, description = "`invalid_token`: the admin token is missing or wrong", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`"))),
        (status = 400, description = "`invalid_request`: the path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "`not_found`: no such client", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ClientRegistration>, OAuthError> {
    let id = super::path_param(path)?;
    if !storable(&id) {
        return Err(OAuthError::NotFound);
    }
    state
        .store
        .client(&id)
        .await?
        .map(|reg| Json(reg.as_ref().clone()))
        .ok_or(OAuthError::NotFound)
}

/// Removes a client; an unknown client is a 404 (callers treat it as done).
#[utoipa::path(
    delete,
    path = "/admin/clients/{client_id}",
    tag = "admin",
    operation_id = "delete_client",
    params(("client_id" = String, Path, description = "The client's id", min_length = 1, example = "my-app")),
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Deregistered"),
        (status = 401, description = "`invalid_token`: the admin token is missing or wrong", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`"))),
        (status = 400, description = "`invalid_request`: the path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "`not_found`: no such client", body = ErrorBody),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, OAuthError> {
    let id = super::path_param(path)?;
    if storable(&id) && state.store.delete_client(&id).await? {
        tracing::info!(client_id = %id, "client deregistered");
        audit_change(&state, &id, "deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(OAuthError::NotFound)
    }
}
