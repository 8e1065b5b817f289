//! `/jwks`: every key in its publish window, from memory (no storage needed).

use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

/// A JSON Web Key Set (RFC 7517 §5), as rendered by [`crate::keys`]. Documentation only.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct JwkSet {
    /// Every key in its publish window: the signing key, the next one and retired ones.
    pub keys: Vec<Jwk>,
}

/// A public signing key (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Jwk {
    /// `EC`, `RSA` or `OKP`.
    pub kty: String,
    /// The key ID tokens name in their header.
    pub kid: String,
    /// `ES256`, `RS256` or `EdDSA`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// Curve (`P-256`, `Ed25519`), for EC and OKP keys.
    pub crv: Option<String>,
    /// Public coordinate / key (base64url), for EC and OKP keys.
    pub x: Option<String>,
    /// Second coordinate (base64url), for EC keys.
    pub y: Option<String>,
    /// Modulus (base64url), for RSA keys.
    pub n: Option<String>,
    /// Exponent (base64url), for RSA keys.
    pub e: Option<String>,
}

/// The JSON Web Key Set. Short caching: keys are published ahead, so relying parties that
/// cache briefly and refetch on an unknown `kid` never miss one.
#[utoipa::path(
    get,
    path = "/jwks",
    tag = "public",
    operation_id = "jwks",
    responses((status = 200, description = "The published keys", body = JwkSet,
               headers(("Cache-Control" = String, description = "`public, max-age=60`")))),
)]
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
