//! Retry delays after failed reconciles: 5 s after an object's first failure, doubling while it
//! keeps failing, up to 5 minutes; a successful reconcile starts over. A lasting error (missing
//! RBAC, a request the API server refuses) then costs a request every few minutes instead of
//! every few seconds forever, while a passing hiccup is retried after 5 s. Conditions that need
//! a person (a missing Secret, a refused namespace) are not errors: the reconcile reports them
//! in status and chooses its own requeue.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The delay after the first failure.
pub const FIRST: Duration = Duration::from_secs(5);
/// The longest delay.
pub const MAX: Duration = Duration::from_secs(300);
/// How long after its last failure an object's count is kept when nothing else clears it. An
/// object that keeps failing fails again within [`MAX`]; one that went quiet for longer was
/// deleted (a deleted object is never reconciled again, so no success clears it) or stopped
/// failing without a reconcile of its own, and starts over.
pub const FORGET_AFTER: Duration = Duration::from_secs(2 * 300);

/// The delay after `failures` failures in a row (at least one).
pub fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST.saturating_mul(1 << doublings).min(MAX)
}

/// Failures in a row and the instant of the last one, by object.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Backoff {
    /// Counts a failure of `key` at `now` and returns how long to wait before trying again.
    /// Entries of objects that have not failed for [`FORGET_AFTER`] are dropped on the way, so
    /// the map holds only objects that are failing now.
    pub fn failed(&self, key: String, now: Instant) -> Duration {
        let mut failures = self.failures.lock().expect("backoff lock");
        failures.retain(|_, (_, last)| now.saturating_duration_since(*last) < FORGET_AFTER);
        let (n, last) = failures.entry(key).or_insert((0, now));
        *n = n.saturating_add(1);
        *last = now;
        delay(*n)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().expect("backoff lock");
        if !failures.is_empty() {
            failures.remove(key);
        }
    }

    /// How many objects have a failure count.
    pub fn len(&self) -> usize {
        self.failures.lock().expect("backoff lock").len()
    }

    /// Whether no object has a failure count.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The backoff key of an object: its kind and uid, so that an object deleted and created again
/// under the same name starts over (the name only when the object has no uid yet).
pub fn key<K: kube::Resource<DynamicType = ()>>(obj: &K) -> String {
    let meta = obj.meta();
    match &meta.uid {
        Some(uid) => format!("{}/{uid}", K::kind(&())),
        None => format!(
            "{}/{}/{}",
            K::kind(&()),
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::OAuthClient;

    #[test]
    fn delays_double_up_to_the_cap() {
        let secs: Vec<u64> = (1..=9).map(|n| delay(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(delay(u32::MAX), MAX);
    }

    #[test]
    fn a_success_starts_over_for_that_object_only() {
        let b = Backoff::default();
        let now = Instant::now();
        assert_eq!(b.failed("a".into(), now), FIRST);
        assert_eq!(b.failed("a".into(), now), FIRST * 2);
        assert_eq!(b.failed("b".into(), now), FIRST);
        b.succeeded("a");
        assert_eq!(b.failed("a".into(), now), FIRST);
        assert_eq!(b.failed("b".into(), now), FIRST * 2);
    }

    #[test]
    fn an_object_that_stopped_failing_is_forgotten() {
        let b = Backoff::default();
        let start = Instant::now();
        // "gone" fails twice and is then deleted: no reconcile of it ever succeeds.
        b.failed("gone".into(), start);
        b.failed("gone".into(), start);
        // "failing" keeps failing, each time after the longest delay, which never lets it be
        // forgotten.
        let mut now = start;
        for _ in 0..4 {
            b.failed("failing".into(), now);
            now += MAX;
        }
        assert_eq!(b.len(), 1, "only the object still failing is kept");
        assert_eq!(
            b.failed("failing".into(), now),
            delay(5),
            "its count goes on"
        );
        assert_eq!(
            b.failed("gone".into(), now),
            FIRST,
            "a count older than FORGET_AFTER starts over"
        );
        b.succeeded("gone");
        b.succeeded("failing");
        assert!(b.is_empty());
    }

    #[test]
    fn a_recreated_object_has_its_own_key() {
        let mut first: OAuthClient = serde_json::from_value(serde_json::json!({
            "apiVersion": "auth.palisade.dev/v1alpha1", "kind": "OAuthClient",
            "metadata": {"name": "app", "namespace": "team", "uid": "uid-1"},
            "spec": {"providerRef": {"name": "p"}, "redirectUris": ["https://app.example/cb"]}
        }))
        .unwrap();
        let key_1 = key(&first);
        first.metadata.uid = Some("uid-2".into());
        assert_ne!(key(&first), key_1);
        assert_eq!(key_1, "OAuthClient/uid-1");
        first.metadata.uid = None;
        assert_eq!(key(&first), "OAuthClient/team/app");
    }
}
