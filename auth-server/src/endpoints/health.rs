//! `/healthz` (liveness: the process answers) and `/readyz` (storage and, when configured,
//! Redis reachable; a key can sign).

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;

/// Liveness only: never depends on storage, so an outage does not restart pods.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "public",
    operation_id = "healthz",
    responses((status = 200, description = "The process answers", content_type = "text/plain", body = String, example = "ok")),
)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: storage answers within a bound and a key can sign now.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "public",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready to serve", content_type = "text/plain", body = String, example = "ready"),
        (status = 503, description = "Not ready: storage or Redis unreachable, or no signing key active; the body says which", content_type = "text/plain", body = String),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    let storage = tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await;
    if !matches!(storage, Ok(Ok(()))) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "storage unreachable".into(),
        );
    }
    if let Some(Err(e)) = state
        .limiter
        .ping_shared(std::time::Duration::from_secs(1))
        .await
    {
        tracing::debug!(error = %e, "readiness: Redis unreachable");
        return (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable".into());
    }
    if state
        .keys
        .get()
        .set
        .signing_key(chrono::Utc::now())
        .is_none()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no signing key is active".into(),
        );
    }
    (StatusCode::OK, "ready".into())
}
