//! Upstream OpenID Connect federation ("Sign in with Google / Microsoft Entra ID"): this
//! provider acts as a relying party of the configured upstreams.
//!
//! - [`config`]: the upstream list and client secrets from the environment;
//! - [`upstream`]: discovery, the authorization URL and the ID token's validation;
//! - [`linking`]: claim mapping and which local user a sign-in becomes (pure);
//! - the browser endpoints are in `endpoints/upstream.rs`.

pub mod config;
pub mod linking;
pub mod upstream;

use config::UpstreamConfig;
use upstream::Upstream;

/// Why a federated sign-in failed. The detail strings go to the log (never tokens, codes or
/// secrets) and the [`outcome`](FederationError::outcome) to the metric; the user sees one
/// generic page.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// Discovery or the JWKS could not be fetched or was invalid.
    #[error("discovery failed: {0}")]
    Discovery(String),
    /// The upstream redirected back with an `error` (e.g. `access_denied`).
    #[error("the upstream returned error {0}")]
    Upstream(String),
    /// The `state` is missing, unknown, used, expired, for another upstream or another browser.
    #[error("bad state: {0}")]
    BadState(&'static str),
    /// The callback has no code.
    #[error("the callback has no code")]
    MissingCode,
    /// The code exchange failed.
    #[error("code exchange failed: {0}")]
    Exchange(String),
    /// The ID token is missing or does not validate.
    #[error("invalid ID token: {0}")]
    InvalidIdToken(String),
    /// The ID token lacks a usable subject.
    #[error("unusable claims: {0}")]
    Claims(String),
    /// The local user is disabled.
    #[error("the local user is disabled")]
    Disabled,
    /// The username a new federated user would get belongs to a password user.
    #[error("the username for this upstream account is taken by a password user")]
    UsernameTaken,
    /// The parked authorization request lapsed or was finished meanwhile.
    #[error("the authorization request is unknown or has expired")]
    RequestExpired,
    /// Storage failed.
    #[error("storage: {0}")]
    Storage(String),
}

impl FederationError {
    /// The `outcome` label of `federated_login_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            FederationError::Discovery(_) => "discovery_failed",
            FederationError::Upstream(_) => "upstream_error",
            FederationError::BadState(_) => "bad_state",
            FederationError::MissingCode => "bad_callback",
            FederationError::UsernameTaken => "username_taken",
            FederationError::Exchange(_) => "exchange_failed",
            FederationError::InvalidIdToken(_) => "invalid_id_token",
            FederationError::Claims(_) => "invalid_claims",
            FederationError::Disabled => "account_disabled",
            FederationError::RequestExpired => "request_expired",
            FederationError::Storage(_) => "unavailable",
        }
    }
}

impl From<crate::store::StoreError> for FederationError {
    fn from(e: crate::store::StoreError) -> Self {
        FederationError::Storage(e.0)
    }
}

/// The configured upstreams and the HTTP client used to reach them.
pub struct Federation {
    upstreams: Vec<Upstream>,
    /// Requests to upstreams (no redirects followed, short timeouts).
    pub http: openidconnect::reqwest::Client,
}

impl Federation {
    /// The upstreams, in configuration order (the order of the buttons).
    pub fn new(configs: Vec<UpstreamConfig>) -> anyhow::Result<Self> {
        Ok(Federation {
            upstreams: configs.into_iter().map(Upstream::new).collect(),
            http: upstream::http_client()?,
        })
    }

    /// The upstream named `name`.
    pub fn get(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name() == name)
    }

    /// Every upstream, in configuration order.
    pub fn all(&self) -> &[Upstream] {
        &self.upstreams
    }
}
