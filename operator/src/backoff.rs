//! Retry delays after failed reconciles: 5 s after an object's first failure, doubling while it
//! keeps failing, up to 5 minutes; a successful reconcile starts over. A lasting error (missing
//! RBAC, a request the API server refuses) then costs a request every few minutes instead of
//! every few seconds forever, while a passing hiccup is retried at once. Conditions that need
//! a person (a missing Secret, a refused namespace) are not errors: the reconcile reports them
//! in status and chooses its own requeue.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The delay after the first failure.
pub const FIRST: Duration = Duration::from_secs(5);
/// The longest delay.
pub const MAX: Duration = Duration::from_secs(300);

/// The delay after `failures` failures in a row (at least one).
pub fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST.saturating_mul(1 << doublings).min(MAX)
}

/// Failures in a row, by object (`<kind>/<namespace>/<name>`).
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Counts a failure of `key` and returns how long to wait before trying again.
    pub fn failed(&self, key: String) -> Duration {
        let mut failures = self.failures.lock().expect("backoff lock");
        let n = failures.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        delay(*n)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().expect("backoff lock");
        if !failures.is_empty() {
            failures.remove(key);
        }
    }
}

/// The backoff key of a namespaced object.
pub fn key<K: kube::Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let secs: Vec<u64> = (1..=9).map(|n| delay(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(delay(u32::MAX), MAX);
    }

    #[test]
    fn a_success_starts_over_for_that_object_only() {
        let b = Backoff::default();
        assert_eq!(b.failed("a".into()), FIRST);
        assert_eq!(b.failed("a".into()), FIRST * 2);
        assert_eq!(b.failed("b".into()), FIRST);
        b.succeeded("a");
        assert_eq!(b.failed("a".into()), FIRST);
        assert_eq!(b.failed("b".into()), FIRST * 2);
    }
}
