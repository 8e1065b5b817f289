//! Audit records for signing-key rotations: the key set is scheduled, so the key that signs
//! changes with the clock (or with a reloaded file); a watcher notices and records it.

use super::{AuditEvent, AuditRecord, Outcome, WeakAuditLog};
use crate::keys::KeyStore;
use std::time::Duration;

/// How often the signing key is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The detail of a rotation record when the signing key went from `before` to `now`;
/// `None` when nothing changed. No key at all is written `none` (the set ran out).
pub fn rotation(before: Option<&str>, now: Option<&str>) -> Option<String> {
    (before != now).then(|| format!("{} -> {}", before.unwrap_or("none"), now.unwrap_or("none")))
}

/// Records every change of the signing key from now on (the key at start is not a change),
/// until the server's state is gone.
pub fn watch(keys: KeyStore, audit: WeakAuditLog) -> tokio::task::JoinHandle<()> {
    let current = move || {
        let now = chrono::Utc::now();
        keys.get().set.signing_key(now).map(|k| k.kid.clone())
    };
    tokio::spawn(async move {
        let mut last = current();
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let kid = current();
            let Some(audit) = audit.upgrade() else {
                return;
            };
            if let Some(detail) = rotation(last.as_deref(), kid.as_deref()) {
                let outcome = if kid.is_some() {
                    Outcome::Success
                } else {
                    Outcome::Failure
                };
                audit.record(
                    AuditRecord::new(AuditEvent::KeyRotation, outcome, chrono::Utc::now())
                        .detail(detail),
                );
                last = kid;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_change_is_a_rotation() {
        assert_eq!(rotation(Some("a"), Some("a")), None);
        assert_eq!(rotation(None, None), None);
        assert_eq!(rotation(Some("a"), Some("b")).as_deref(), Some("a -> b"));
        assert_eq!(rotation(Some("a"), None).as_deref(), Some("a -> none"));
        assert_eq!(rotation(None, Some("b")).as_deref(), Some("none -> b"));
    }
}
