//! The audit trail: one structured record for every sign-in, second factor, token issued,
//! refresh-token reuse, client registration change and signing-key rotation.
//!
//! A record is written twice: at once to the log stream under the target
//! [`LOG_TARGET`], and (through a bounded queue and a batching writer, [`writer`]) to the
//! store, where the admin API lists it (`GET /admin/audit`) and a retention setting purges
//! it. Records name who, what, which client, from which address, the outcome and the time;
//! they never hold a secret (no password, code, token or client secret).

pub mod key_rotation;
pub mod query;
pub mod tally;
pub mod writer;

use chrono::{DateTime, Utc};
use palisade_wire::contract::MachineTokenAudit;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::mpsc;

pub use query::AuditQuery;

/// The tracing target of audit log lines (filter on it to ship them apart).
pub const LOG_TARGET: &str = "palisade::audit";

/// The log filter for `level` with audit lines kept at every level: the audit trail is not
/// verbosity. A filter that names the audit target itself is left as it is.
pub fn log_directives(level: &str) -> String {
    if level.contains(LOG_TARGET) {
        level.to_string()
    } else {
        format!("{level},{LOG_TARGET}=info")
    }
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditEvent {
    /// A sign-in with a password (`detail`: why it failed).
    Login,
    /// A second-factor step: verification, enrolment, recovery code or reset (`detail`).
    Mfa,
    /// A sign-in through an upstream identity provider (`detail`: the upstream).
    FederatedLogin,
    /// Tokens issued (`detail`: the grant type).
    TokenIssued,
    /// A used refresh token presented again; its family was revoked.
    RefreshReuse,
    /// A client registered, changed or removed (`detail`: created, updated or deleted).
    ClientRegistration,
    /// The key that signs tokens changed (`detail`: the old and new key ids).
    KeyRotation,
}

impl AuditEvent {
    /// The wire name (`login`, `token_issued`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::Login => "login",
            AuditEvent::Mfa => "mfa",
            AuditEvent::FederatedLogin => "federated_login",
            AuditEvent::TokenIssued => "token_issued",
            AuditEvent::RefreshReuse => "refresh_reuse",
            AuditEvent::ClientRegistration => "client_registration",
            AuditEvent::KeyRotation => "key_rotation",
        }
    }

    /// The event of a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            AuditEvent::Login,
            AuditEvent::Mfa,
            AuditEvent::FederatedLogin,
            AuditEvent::TokenIssued,
            AuditEvent::RefreshReuse,
            AuditEvent::ClientRegistration,
            AuditEvent::KeyRotation,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
    }
}

/// Whether it worked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }

    /// The outcome of a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            _ => None,
        }
    }
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Increasing id, assigned when stored (0 before); pages are cut by it.
    pub id: i64,
    /// When it happened (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub time: DateTime<Utc>,
    pub event: AuditEvent,
    pub outcome: Outcome,
    /// Who: the user's `sub`, or the client's id for a client acting as itself. Absent for
    /// a sign-in attempt with an unknown username (the typed name is not kept: it is often a
    /// password typed in the wrong field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The username, when the user exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The client the event concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The client address (as the rate limits see it, through trusted proxies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Event-specific detail: a grant type, a failure reason, a key id. Never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The replica that wrote it (the pod name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl AuditRecord {
    /// A record of `event` with `outcome` at `time`, from the address of the request being
    /// served (if any); the other fields are set with the builder methods.
    pub fn new(event: AuditEvent, outcome: Outcome, time: DateTime<Utc>) -> Self {
        AuditRecord {
            id: 0,
            time,
            event,
            outcome,
            subject: None,
            username: None,
            client_id: None,
            address: crate::client_addr::current().map(|a| a.to_string()),
            detail: None,
            instance: None,
        }
    }

    /// Sets who.
    pub fn subject(mut self, sub: impl Into<String>) -> Self {
        self.subject = Some(sub.into());
        self
    }

    /// Sets the username.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Sets the client.
    pub fn client(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Sets the detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// Where handlers send records: the log line at once, the store through the writer's queue.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<AuditRecord>,
    instance: Option<String>,
    dropped: prometheus_client::metrics::counter::Counter,
    /// Machine-client token counts, when they are summarized per minute.
    tally: Option<Arc<tally::TokenTally>>,
}

impl AuditLog {
    /// An audit log feeding `queue`; `instance` names this replica in every record;
    /// client_credentials tokens are recorded as `machine_tokens` says.
    pub fn new(
        queue: mpsc::Sender<AuditRecord>,
        instance: Option<String>,
        dropped: prometheus_client::metrics::counter::Counter,
        machine_tokens: MachineTokenAudit,
    ) -> Self {
        AuditLog {
            queue,
            instance,
            dropped,
            tally: (machine_tokens == MachineTokenAudit::PerMinute)
                .then(|| Arc::new(tally::TokenTally::default())),
        }
    }

    /// A client_credentials token issued by `client_id` at `now`: a record of its own, or
    /// one more in the client's per-minute summary.
    pub fn machine_token(&self, client_id: &str, now: DateTime<Utc>) {
        match &self.tally {
            Some(t) => t.add(client_id),
            None => self.record(
                AuditRecord::new(AuditEvent::TokenIssued, Outcome::Success, now)
                    .subject(client_id)
                    .client(client_id)
                    .detail("client_credentials"),
            ),
        }
    }

    /// Records the per-minute summaries counted so far (also at shutdown).
    pub fn flush_tally(&self, now: DateTime<Utc>) {
        if let Some(t) = &self.tally {
            for rec in t.drain(now) {
                self.record(rec);
            }
        }
    }

    /// Logs the record and queues it for the store. Never blocks: when the queue is full
    /// (storage down for long), the record is only logged and counted as dropped.
    pub fn record(&self, mut rec: AuditRecord) {
        rec.instance = self.instance.clone();
        tracing::info!(
            target: LOG_TARGET,
            event = rec.event.as_str(),
            outcome = rec.outcome.as_str(),
            subject = rec.subject.as_deref(),
            username = rec.username.as_deref(),
            client_id = rec.client_id.as_deref(),
            address = rec.address.as_deref(),
            detail = rec.detail.as_deref(),
            "audit"
        );
        if self.queue.try_send(rec).is_err() {
            self.dropped.inc();
        }
    }

    /// A handle that does not keep the writer running (for background watchers).
    pub fn downgrade(&self) -> WeakAuditLog {
        WeakAuditLog {
            queue: self.queue.downgrade(),
            instance: self.instance.clone(),
            dropped: self.dropped.clone(),
            tally: self.tally.clone(),
        }
    }
}

/// An [`AuditLog`] that lets the writer stop once the server's state is gone.
pub struct WeakAuditLog {
    queue: mpsc::WeakSender<AuditRecord>,
    instance: Option<String>,
    dropped: prometheus_client::metrics::counter::Counter,
    tally: Option<Arc<tally::TokenTally>>,
}

impl WeakAuditLog {
    /// The log, while the server runs.
    pub fn upgrade(&self) -> Option<AuditLog> {
        Some(AuditLog {
            queue: self.queue.upgrade()?,
            instance: self.instance.clone(),
            dropped: self.dropped.clone(),
            tally: self.tally.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(machine_tokens: MachineTokenAudit) -> (AuditLog, mpsc::Receiver<AuditRecord>) {
        let (tx, rx) = mpsc::channel(16);
        (
            AuditLog::new(tx, None, Default::default(), machine_tokens),
            rx,
        )
    }

    #[test]
    fn machine_tokens_are_recorded_each_or_summed_up_as_configured() {
        let now = Utc::now();
        let (each, mut rx) = log(MachineTokenAudit::PerToken);
        each.machine_token("m", now);
        each.machine_token("m", now);
        assert_eq!(
            rx.try_recv().unwrap().detail.as_deref(),
            Some("client_credentials")
        );
        assert!(rx.try_recv().is_ok(), "one record per token");
        each.flush_tally(now);
        assert!(rx.try_recv().is_err(), "nothing to summarize");

        let (summed, mut rx) = log(MachineTokenAudit::PerMinute);
        summed.machine_token("m", now);
        summed.machine_token("m", now);
        assert!(rx.try_recv().is_err(), "nothing before the summary");
        summed.flush_tally(now);
        let r = rx.try_recv().unwrap();
        assert_eq!(r.detail.as_deref(), Some("client_credentials x2 (summary)"));
        assert_eq!(r.subject.as_deref(), Some("m"));
        assert!(rx.try_recv().is_err(), "one summary per client");
    }

    #[test]
    fn audit_lines_survive_any_log_level_unless_named() {
        assert_eq!(log_directives("error"), "error,palisade::audit=info");
        assert_eq!(
            log_directives("warn,palisade::audit=off"),
            "warn,palisade::audit=off"
        );
    }
}
