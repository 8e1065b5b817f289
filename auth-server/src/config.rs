//! Configuration from the environment (the pod contract of `palisade_wire::contract`) and flags.

use palisade_wire::contract::{self, env, RateLimits, TotpPolicy};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Token lifetimes in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ttls {
    pub access: u64,
    pub id: u64,
    pub refresh: u64,
    pub authorization_code: u64,
    /// Browser sessions (the login cookie).
    pub session: u64,
}

/// Everything the server reads at start-up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Issuer URL exactly as published (no trailing slash added or removed).
    pub issuer: String,
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    /// Key-set file; `None` in development (a key is generated in memory).
    pub keyset_file: Option<PathBuf>,
    /// Directory of the internal Secret (admin token, cookie key, pepper).
    pub internal_dir: Option<PathBuf>,
    pub ttls: Ttls,
    pub rate_limits: RateLimits,
    /// How long audit records are kept.
    pub audit_retention: std::time::Duration,
    /// Whether client_credentials tokens are audited one by one or summed per minute.
    pub audit_machine_tokens: palisade_wire::contract::MachineTokenAudit,
    /// When the TOTP second factor is asked for (default `Optional`).
    pub totp_policy: TotpPolicy,
    pub log_level: String,
    pub json_logs: bool,
    /// Upstream OpenID providers users may sign in with (federation); empty for none.
    pub upstreams: Vec<crate::federation::config::UpstreamConfig>,
}

/// Audit records are kept 30 days unless configured otherwise.
pub const DEFAULT_AUDIT_RETENTION_SECS: u64 = 30 * 86_400;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn secs(name: &str, default: u64) -> anyhow::Result<u64> {
    match var(name) {
        Some(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("{name} must be a number of seconds, got {v:?}")),
        None => Ok(default),
    }
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> anyhow::Result<Config> {
        let keyset_file = var(env::KEYSET_FILE).map(PathBuf::from).or_else(|| {
            let default =
                PathBuf::from(contract::KEYSET_MOUNT_DIR).join(contract::KEYSET_SECRET_KEY);
            default.exists().then_some(default)
        });
        let internal_dir = var(env::INTERNAL_DIR).map(PathBuf::from).or_else(|| {
            let default = PathBuf::from(contract::INTERNAL_MOUNT_DIR);
            default.exists().then_some(default)
        });
        let rate_limits = match var(env::RATE_LIMITS) {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| anyhow::anyhow!("{}: {e}", env::RATE_LIMITS))?,
            None => RateLimits::default(),
        };
        crate::client_addr::parse_trusted(&rate_limits.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("{} trustedProxies: {e}", env::RATE_LIMITS))?;
        let issuer = var(env::ISSUER).unwrap_or_else(|| "http://127.0.0.1:8080".into());
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            anyhow::bail!("{} must be an http(s) URL, got {issuer:?}", env::ISSUER);
        }
        let audit_machine_tokens = match var(env::AUDIT_MACHINE_TOKENS) {
            Some(v) => palisade_wire::contract::MachineTokenAudit::parse(&v).ok_or_else(|| {
                anyhow::anyhow!(
                    "{} must be PerMinute or PerToken, got {v:?}",
                    env::AUDIT_MACHINE_TOKENS
                )
            })?,
            None => Default::default(),
        };
        let totp_policy = match var(env::TOTP_POLICY) {
            Some(v) => TotpPolicy::parse(&v).ok_or_else(|| {
                anyhow::anyhow!(
                    "{} must be Disabled, Optional or Required, got {v:?}",
                    env::TOTP_POLICY
                )
            })?,
            None => TotpPolicy::default(),
        };
        let upstreams = crate::federation::config::parse(var(env::UPSTREAMS).as_deref(), var)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Config {
            issuer,
            public_addr: var(env::PUBLIC_ADDR)
                .unwrap_or_else(|| "127.0.0.1:8080".into())
                .parse()?,
            admin_addr: var(env::ADMIN_ADDR)
                .unwrap_or_else(|| "127.0.0.1:8081".into())
                .parse()?,
            database_url: var(env::DATABASE_URL),
            redis_url: var(env::REDIS_URL),
            keyset_file,
            internal_dir,
            ttls: Ttls {
                access: secs(env::ACCESS_TOKEN_TTL, 900)?,
                id: secs(env::ID_TOKEN_TTL, 3600)?,
                refresh: secs(env::REFRESH_TOKEN_TTL, 30 * 86400)?,
                authorization_code: secs(env::AUTHORIZATION_CODE_TTL, 60)?,
                session: secs(env::SESSION_TTL, 8 * 3600)?,
            },
            rate_limits,
            audit_retention: std::time::Duration::from_secs(secs(
                env::AUDIT_RETENTION,
                DEFAULT_AUDIT_RETENTION_SECS,
            )?),
            audit_machine_tokens,
            totp_policy,
            log_level: var(env::LOG_LEVEL).unwrap_or_else(|| "info".into()),
            json_logs: var(env::LOG_FORMAT).as_deref() == Some("json"),
            upstreams,
        })
    }

    /// An endpoint URL under the issuer (the issuer may carry a path).
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer.trim_end_matches('/'))
    }
}
