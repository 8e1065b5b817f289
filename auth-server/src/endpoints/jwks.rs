//! `/jwks`: every key in its publish window, from memory (no storage needed).

use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

/// The JSON Web Key Set. Short caching: keys are published ahead, so relying parties that
/// cache briefly and refetch on an unknown `kid` never miss one.
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.keys.get().jwks_json(chrono::Utc::now());
    (
        [
            (header::CACHE_CONTROL, "public, max-age=60"),
            (header::CONTENT_TYPE, "application/json"),
        ],
        body,
    )
}
