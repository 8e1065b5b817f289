//! Moves queued audit records into the store in batches, off the request path, and purges
//! records older than the retention.

use super::AuditRecord;
use crate::store::Store;
use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Records waiting for the store; beyond this (storage down for long) they are only logged.
pub const QUEUE_CAPACITY: usize = 65_536;
/// Most records written in one statement.
pub const BATCH: usize = 500;
/// How often records past the retention are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Pause before retrying a batch the store refused.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The queue between handlers and the writer.
pub fn queue() -> (mpsc::Sender<AuditRecord>, mpsc::Receiver<AuditRecord>) {
    mpsc::channel(QUEUE_CAPACITY)
}

/// The oldest time a record may have at `now` to be kept for `retention`.
pub fn retention_cutoff(now: DateTime<Utc>, retention: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(retention)
        .ok()
        .and_then(|r| now.checked_sub_signed(r))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Writes what arrives on `rx` until every sender is gone (then returns, having written
/// everything). A batch the store refuses is retried, keeping the order; meanwhile new
/// records wait in the queue.
pub async fn run(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<AuditRecord>,
    retention: Duration,
    write_errors: Counter,
) {
    let mut purge = tokio::time::interval(PURGE_EVERY);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
                while let Err(e) = store.put_audit(&batch).await {
                    write_errors.inc();
                    tracing::warn!(error = %e, records = batch.len(), "could not store audit records; retrying");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
                batch.clear();
            }
            _ = purge.tick() => {
                match store.purge_audit(retention_cutoff(Utc::now(), retention)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(records = n, "purged audit records past the retention"),
                    Err(e) => tracing::warn!(error = %e, "could not purge audit records"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, AuditQuery, Outcome};
    use crate::store::memory::MemoryStore;

    #[test]
    fn the_cutoff_is_the_retention_before_now() {
        let now = Utc::now();
        let cut = retention_cutoff(now, Duration::from_secs(86_400));
        assert_eq!(now - cut, chrono::Duration::days(1));
        // An absurd retention keeps everything rather than overflowing.
        assert!(retention_cutoff(now, Duration::MAX) < now - chrono::Duration::days(365_000));
    }

    #[tokio::test]
    async fn writes_everything_queued_then_stops_with_the_senders_and_purges_old_records() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let (tx, rx) = queue();
        let now = Utc::now();
        let old = now - chrono::Duration::days(40);
        tx.send(AuditRecord::new(AuditEvent::Login, Outcome::Success, old))
            .await
            .unwrap();
        for i in 0..(BATCH + 7) {
            let r = AuditRecord::new(AuditEvent::TokenIssued, Outcome::Success, now)
                .client(format!("c{i}"));
            tx.send(r).await.unwrap();
        }
        drop(tx);
        // The first purge runs at once: the 40-day-old record goes, with a 30-day retention.
        let writer = run(
            store.clone(),
            rx,
            Duration::from_secs(30 * 86_400),
            Counter::default(),
        );
        tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .expect("the writer stops when the senders are gone");
        let q = AuditQuery {
            limit: 1000,
            ..Default::default()
        };
        let all = store.audit(&q).await.unwrap();
        let logins = all.iter().filter(|r| r.event == AuditEvent::Login).count();
        let tokens = all.len() - logins;
        assert_eq!(tokens, BATCH + 7, "every queued record was written");
        assert!(logins <= 1);
        let ids: Vec<i64> = all.iter().map(|r| r.id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] > w[1]),
            "newest first, ids increase"
        );
        store
            .purge_audit(retention_cutoff(now, Duration::from_secs(30 * 86_400)))
            .await
            .unwrap();
        assert!(store
            .audit(&q)
            .await
            .unwrap()
            .iter()
            .all(|r| r.event != AuditEvent::Login));
    }
}
