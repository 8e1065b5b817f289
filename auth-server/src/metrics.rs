//! Prometheus metrics served on the admin port's `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: String,
    pub status: u16,
}

/// Labels of an issued token.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabels {
    pub grant_type: &'static str,
}

/// Labels naming an endpoint.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: String,
}

/// Labels of a federated sign-in's end.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FederatedLoginLabels {
    /// The upstream's name.
    pub upstream: String,
    /// `success` or the failure (see `FederationError::outcome`).
    pub outcome: &'static str,
}

/// The server's metrics.
#[derive(Clone)]
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<EndpointLabels, Histogram>,
    pub token_issued: Family<GrantLabels, Counter>,
    pub login_success: Counter,
    pub login_failure: Counter,
    pub refresh_reuse_detected: Counter,
    pub rate_limit_block: Counter,
    /// Rate-limit checks that could not reach Redis and were admitted (fail open).
    pub rate_limiter_errors: Counter,
    /// Audit records only logged, not stored, because the queue to the store was full.
    pub audit_dropped: Counter,
    /// Batches of audit records the store refused (retried).
    pub audit_write_errors: Counter,
    /// Second-factor checks passed (TOTP or recovery code, enrolment confirmations included).
    pub mfa_success: Counter,
    /// Wrong, replayed or malformed second-factor codes.
    pub mfa_failure: Counter,
    /// Authenticators enrolled.
    pub mfa_enrolled: Counter,
    /// Recovery codes used.
    pub mfa_recovery_code_used: Counter,
    /// Federated sign-ins by upstream and outcome.
    pub federated_login: Family<FederatedLoginLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new([
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ])
            }),
            token_issued: Family::default(),
            login_success: Counter::default(),
            login_failure: Counter::default(),
            refresh_reuse_detected: Counter::default(),
            rate_limit_block: Counter::default(),
            rate_limiter_errors: Counter::default(),
            audit_dropped: Counter::default(),
            audit_write_errors: Counter::default(),
            mfa_success: Counter::default(),
            mfa_failure: Counter::default(),
            mfa_enrolled: Counter::default(),
            mfa_recovery_code_used: Counter::default(),
            federated_login: Family::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric (no prefix: the names are the documented ones).
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "http_requests",
            "HTTP requests by endpoint and status",
            self.requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "HTTP request latency by endpoint",
            self.latency.clone(),
        );
        r.register(
            "token_issued",
            "Tokens issued by grant type",
            self.token_issued.clone(),
        );
        r.register(
            "login_success",
            "Successful logins",
            self.login_success.clone(),
        );
        r.register("login_failure", "Failed logins", self.login_failure.clone());
        r.register(
            "refresh_reuse_detected",
            "Reused refresh tokens (family revoked)",
            self.refresh_reuse_detected.clone(),
        );
        r.register(
            "rate_limit_block",
            "Requests refused by a rate limit",
            self.rate_limit_block.clone(),
        );
        r.register(
            "rate_limiter_errors",
            "Rate-limit checks admitted because Redis was unavailable (fail open)",
            self.rate_limiter_errors.clone(),
        );
        r.register(
            "audit_records_dropped",
            "Audit records only logged because the queue to the store was full",
            self.audit_dropped.clone(),
        );
        r.register(
            "audit_write_errors",
            "Batches of audit records the store refused (retried)",
            self.audit_write_errors.clone(),
        );
        r.register(
            "mfa_success",
            "Second-factor checks passed (TOTP or recovery code)",
            self.mfa_success.clone(),
        );
        r.register(
            "mfa_failure",
            "Second-factor codes refused (wrong, replayed or malformed)",
            self.mfa_failure.clone(),
        );
        r.register(
            "mfa_enrolled",
            "TOTP authenticators enrolled",
            self.mfa_enrolled.clone(),
        );
        r.register(
            "mfa_recovery_code_used",
            "Recovery codes used to sign in",
            self.mfa_recovery_code_used.clone(),
        );
        r.register(
            "federated_login",
            "Sign-ins through an upstream OpenID provider, by upstream and outcome",
            self.federated_login.clone(),
        );
    }
}
