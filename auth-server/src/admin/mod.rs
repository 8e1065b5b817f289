//! The admin API (port 8081, never behind the Ingress): client and user registries, the
//! audit trail and metrics. Every route but `/metrics` needs the bearer token from the internal Secret.

pub mod audit;
pub mod clients;
pub mod users;

use crate::error::OAuthError;
use crate::state::AppState;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

/// Whether `header` carries exactly `Bearer <token>`, compared in constant time.
pub fn bearer_matches(header: Option<&str>, token: &str) -> bool {
    let presented = header.and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("");
    presented.len() == token.len() && bool::from(presented.as_bytes().ct_eq(token.as_bytes()))
}

/// The `{client_id}` or `{username}` of an admin path. A segment that is not UTF-8 is
/// `invalid_request` in the RFC error shape, not axum's plain-text rejection.
pub fn path_param(path: Result<Path<String>, PathRejection>) -> Result<String, OAuthError> {
    path.map(|Path(v)| v)
        .map_err(|e| OAuthError::InvalidRequest(e.body_text()))
}

/// Middleware refusing requests without the admin token.
pub async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, OAuthError> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !bearer_matches(header, &state.admin_token) {
        return Err(OAuthError::Unauthorized);
    }
    Ok(next.run(req).await)
}

/// `/metrics` in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "admin",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus metrics (OpenMetrics text)", content_type = "application/openmetrics-text", body = String)),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut body, &state.registry);
    Response::builder()
        .header(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
        .body(body.into())
        .expect("static response")
}

/// `/openapi.json`: this API's description (the same document as `palisade-auth-server openapi`).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "admin",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3 description of the public and admin ports", content_type = "application/json", body = Object)),
)]
pub async fn openapi() -> Response {
    Response::builder()
        .header("content-type", "application/json")
        .body(crate::openapi::json().into())
        .expect("static response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        assert!(bearer_matches(Some("Bearer abc"), "abc"));
        assert!(!bearer_matches(Some("Bearer abd"), "abc"));
        assert!(!bearer_matches(Some("Bearer abcd"), "abc"));
        assert!(!bearer_matches(Some("abc"), "abc"));
        assert!(!bearer_matches(None, "abc"));
    }
}
