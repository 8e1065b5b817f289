//! Which AuthProvider changes wake the provider's OAuthClients. A provider's status moves many
//! times while its pods come up (replica counts, rollout state, key schedule); its clients only
//! care when it appears, goes away, changes its spec (issuer, namespace policy), or becomes
//! Ready or stops being Ready (a new provider's first status, not Ready yet, is no change).
//! Waking them on every status write would reconcile each client several times per provider
//! change for nothing.

use crate::crd::AuthProvider;
use kube::ResourceExt;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// What the clients depend on, reduced to a hash.
pub fn fingerprint(ap: &AuthProvider) -> u64 {
    let ready = ap.status.as_ref().is_some_and(|s| s.is_ready());
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        ap.uid(),
        ap.metadata.generation,
        ap.metadata.deletion_timestamp.is_some(),
        ready,
    )
        .hash(&mut hasher);
    hasher.finish()
}

/// Remembers the last fingerprint of every provider seen on the watch.
#[derive(Default)]
pub struct ChangeFilter {
    seen: HashMap<(Option<String>, String), u64>,
}

impl ChangeFilter {
    /// Whether a provider that was created or updated (or listed again) should wake its clients.
    pub fn applied(&mut self, ap: &AuthProvider) -> bool {
        let key = (ap.namespace(), ap.name_any());
        let now = fingerprint(ap);
        self.seen.insert(key, now) != Some(now)
    }

    /// A deleted provider always wakes its clients (and is forgotten).
    pub fn deleted(&mut self, ap: &AuthProvider) -> bool {
        self.seen.remove(&(ap.namespace(), ap.name_any()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(generation: i64, ready: Option<&str>, ready_replicas: i32) -> AuthProvider {
        let mut ap: AuthProvider = serde_json::from_value(serde_json::json!({
            "apiVersion": "auth.palisade.dev/v1alpha1", "kind": "AuthProvider",
            "metadata": {"name": "dev", "namespace": "team", "uid": "u-1", "generation": generation},
            "spec": {"issuer": "https://id.example.com", "database": {"urlSecretRef": {"name": "db", "key": "uri"}}}
        }))
        .unwrap();
        let mut status: serde_json::Value = serde_json::json!({"readyReplicas": ready_replicas});
        if let Some(r) = ready {
            status["conditions"] = serde_json::json!([{
                "type": "Ready", "status": r, "reason": "x", "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z"
            }]);
        }
        ap.status = Some(serde_json::from_value(status).unwrap());
        ap
    }

    #[test]
    fn status_churn_is_quiet_and_what_clients_need_wakes_them() {
        let mut filter = ChangeFilter::default();
        assert!(filter.applied(&provider(1, None, 0)), "first sight");
        assert!(
            !filter.applied(&provider(1, None, 0)),
            "the same provider listed again"
        );
        assert!(
            !filter.applied(&provider(1, Some("False"), 0)),
            "a first status that is not Ready yet"
        );
        assert!(
            !filter.applied(&provider(1, Some("False"), 1)),
            "replica counts move"
        );
        assert!(
            filter.applied(&provider(1, Some("True"), 2)),
            "becomes Ready"
        );
        assert!(filter.applied(&provider(2, Some("True"), 2)), "spec change");
        assert!(
            filter.applied(&provider(2, Some("False"), 2)),
            "stops being Ready"
        );
        assert!(filter.applied(&provider(2, Some("True"), 2)), "Ready again");
        let mut deleting = provider(2, Some("True"), 2);
        deleting.metadata.deletion_timestamp =
            Some(crate::provider::status::to_time(chrono::Utc::now()));
        assert!(filter.applied(&deleting), "deletion starts");
        assert!(filter.deleted(&deleting), "deleted");
        assert!(
            filter.applied(&provider(2, Some("True"), 2)),
            "recreated under the same name"
        );
    }
}
