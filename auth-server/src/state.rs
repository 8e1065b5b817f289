//! Shared server state handed to every handler.

use crate::audit::{key_rotation, tally, writer, AuditLog};
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

/// Cheap to clone: one `Arc` (a clone per request and layer; a struct of `Arc`s cost a dozen
/// atomic increments and decrements shared between cores per request, 12 % of the token
/// endpoint's CPU).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
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
    /// The audit trail.
    pub audit: AuditLog,
    /// Encryption of TOTP secrets at rest (key derived from the pepper).
    pub totp_secrets: Arc<crate::mfa::seal::SecretBox>,
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

/// The audit log of this replica, named by its pod name.
fn queue_log(
    queue: &tokio::sync::mpsc::Sender<crate::audit::AuditRecord>,
    metrics: &Metrics,
    config: &Config,
) -> AuditLog {
    let instance = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty());
    AuditLog::new(
        queue.clone(),
        instance,
        metrics.audit_dropped.clone(),
        config.audit_machine_tokens,
    )
}

impl AppState {
    /// Assembles the state (metrics registered, rate limiter built from the configuration)
    /// and starts the audit writer, which ends once every clone of the state is dropped
    /// (await the returned handle to know every audit record is stored).
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        keys: KeyStore,
        secrets: Secrets,
    ) -> anyhow::Result<(Self, tokio::task::JoinHandle<()>)> {
        let metrics = Metrics::default();
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let (queue, rx) = writer::queue();
        let audit_writer = tokio::spawn(writer::run(
            store.clone(),
            rx,
            config.audit_retention,
            metrics.audit_write_errors.clone(),
        ));
        let audit = queue_log(&queue, &metrics, &config);
        key_rotation::watch(keys.clone(), audit.downgrade());
        tally::summarize(audit.downgrade());
        let state = AppState(Arc::new(Shared {
            audit,
            cookies: Arc::new(Cookies::new(&secrets.cookie_key, &config.issuer)?),
            totp_secrets: Arc::new(crate::mfa::seal::SecretBox::new(&secrets.password_pepper)?),
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
        }));
        Ok((state, audit_writer))
    }
}
