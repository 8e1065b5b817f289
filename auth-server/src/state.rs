//! Shared server state handed to every handler.

use crate::config::Config;
use crate::keys::KeyStore;
use crate::metrics::Metrics;
use crate::store::Store;
use std::sync::Arc;

/// Cheap to clone: everything is behind an `Arc`.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub keys: KeyStore,
    pub metrics: Metrics,
    pub registry: Arc<prometheus_client::registry::Registry>,
    /// Per-endpoint, per-address rate limits.
    pub limiter: Arc<crate::ratelimit::RateLimiter>,
    /// Bearer token of the admin API.
    pub admin_token: Arc<String>,
}
