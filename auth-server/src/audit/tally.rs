//! Tokens machine clients issue to themselves (client_credentials), counted per client and
//! written as one audit record per client and minute (`spec.audit.machineTokens: PerMinute`):
//! a busy client issues thousands a minute, and a row per token would cost the token endpoint
//! and the database more than the tokens themselves.

use super::{AuditEvent, AuditRecord, Outcome, WeakAuditLog};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How often the counts are written.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Tokens issued per client since the last summary.
#[derive(Default)]
pub struct TokenTally(Mutex<HashMap<String, u64>>);

impl TokenTally {
    /// Counts one token of `client_id`.
    pub fn add(&self, client_id: &str) {
        let mut counts = self.0.lock().expect("tally lock");
        match counts.get_mut(client_id) {
            Some(n) => *n += 1,
            None => {
                counts.insert(client_id.to_string(), 1);
            }
        }
    }

    /// The summary records of the counts so far (one per client, sorted by client), which
    /// start again from zero.
    pub fn drain(&self, now: DateTime<Utc>) -> Vec<AuditRecord> {
        let counts = std::mem::take(&mut *self.0.lock().expect("tally lock"));
        let mut records: Vec<AuditRecord> = counts
            .into_iter()
            .map(|(client, n)| summary(&client, n, now))
            .collect();
        records.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        records
    }
}

/// The record of `n` client_credentials tokens issued by `client_id` (who is also the
/// subject: the client acts as itself).
pub fn summary(client_id: &str, n: u64, now: DateTime<Utc>) -> AuditRecord {
    let mut r = AuditRecord::new(AuditEvent::TokenIssued, Outcome::Success, now)
        .subject(client_id)
        .client(client_id)
        .detail(format!("client_credentials x{n} (summary)"));
    // A summary spans many requests: no single address.
    r.address = None;
    r
}

/// Writes the counts every [`SUMMARY_EVERY`] until the server's state is gone.
pub fn summarize(audit: WeakAuditLog) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SUMMARY_EVERY).await;
            let Some(log) = audit.upgrade() else {
                return;
            };
            log.flush_tally(Utc::now());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_client_then_starts_again() {
        let tally = TokenTally::default();
        let now = Utc::now();
        for _ in 0..3 {
            tally.add("b");
        }
        tally.add("a");
        let records = tally.drain(now);
        let got: Vec<(Option<&str>, Option<&str>)> = records
            .iter()
            .map(|r| (r.client_id.as_deref(), r.detail.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("a"), Some("client_credentials x1 (summary)")),
                (Some("b"), Some("client_credentials x3 (summary)")),
            ]
        );
        assert!(records.iter().all(|r| r.subject == r.client_id));
        assert!(tally.drain(now).is_empty(), "counts start again");
    }
}
