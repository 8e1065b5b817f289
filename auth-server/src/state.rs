//! Shared server state handed to every handler.

use crate::config::Config;
use crate::cookies::Cookies;
use crate::keys::KeyStore;
use crate::metrics::Metrics;
use crate::passwords::Passwords;
use crate::ratelimit::{redis::RedisLimiter, RateLimiter};
use crate::store::Store;
use palisade_wire::contract::{
    INTERNAL_ADMIN_TOKEN_KEY, INTERNAL_COOKIE_KEY, INTERNAL_PASSWORD_PEPPER_KEY,
};
use palisade_wire::registration::random_token;
use std::path::Path;
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
    pub limiter: Arc<RateLimiter>,
    /// Bearer token of the admin API.
    pub admin_token: Arc<String>,
    /// Session and CSRF cookies.
    pub cookies: Arc<Cookies>,
    /// Password hashing with the pepper.
    pub passwords: Arc<Passwords>,
    /// Upstream OpenID providers (federation).
    pub federation: Arc<crate::federation::Federation>,
}

/// The internal Secret's values (files in the internal directory).
pub struct Secrets {
    pub admin_token: String,
    pub cookie_key: Vec<u8>,
    pub password_pepper: Vec<u8>,
}

impl Secrets {
    /// Reads the internal directory, or generates random values in development (`None`).
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Self> {
        let Some(dir) = dir else {
            return Ok(Secrets {
                admin_token: random_token(32),
                cookie_key: random_token(32).into_bytes(),
                password_pepper: random_token(32).into_bytes(),
            });
        };
        let read = |key: &str| {
            std::fs::read_to_string(dir.join(key))
                .map(|s| s.trim().to_string())
                .map_err(|e| anyhow::anyhow!("reading {key} from {}: {e}", dir.display()))
        };
        Ok(Secrets {
            admin_token: read(INTERNAL_ADMIN_TOKEN_KEY)?,
            cookie_key: read(INTERNAL_COOKIE_KEY)?.into_bytes(),
            password_pepper: read(INTERNAL_PASSWORD_PEPPER_KEY)?.into_bytes(),
        })
    }
}

/// Shared buckets through Redis when `REDIS_URL` is set, buckets in this process otherwise.
fn rate_limiter(config: &Config, metrics: &Metrics) -> anyhow::Result<RateLimiter> {
    Ok(match &config.redis_url {
        Some(url) => RateLimiter::shared(
            config.rate_limits.clone(),
            RedisLimiter::new(
                url,
                format!("palisade:{}:", config.issuer),
                metrics.rate_limiter_errors.clone(),
            )?,
        ),
        None => RateLimiter::new(config.rate_limits.clone()),
    })
}

impl AppState {
    /// Assembles the state (metrics registered, rate limiter built from the configuration).
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        keys: KeyStore,
        secrets: Secrets,
    ) -> anyhow::Result<Self> {
        let metrics = Metrics::default();
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        Ok(AppState {
            cookies: Arc::new(Cookies::new(&secrets.cookie_key, &config.issuer)?),
            passwords: Arc::new(Passwords::new(secrets.password_pepper)?),
            limiter: Arc::new(rate_limiter(&config, &metrics)?),
            federation: Arc::new(crate::federation::Federation::new(
                config.upstreams.clone(),
            )?),
            config: Arc::new(config),
            store,
            keys,
            metrics,
            registry: Arc::new(registry),
            admin_token: Arc::new(secrets.admin_token),
        })
    }
}
