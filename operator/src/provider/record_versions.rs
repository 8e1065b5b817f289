//! When the cached copy of a rollout record (ConfigMap `<provider>-rollout`) may be used
//! instead of a GET: the operator remembers the resourceVersion of each record as it last wrote
//! or read it from the API server, and trusts the watch cache only while the cache shows that
//! version. A cache lagging behind the operator's own write is never read as the record, so a
//! rollout step never decides on a record older than the one it wrote. With nothing
//! remembered (a new provider, or after a restart), the filled cache is trusted: its initial
//! list already holds every record written before this process started.
//!
//! Entries of deleted providers stay (a few dozen bytes each, one per provider this process
//! has seen); a provider created again under the same name gets one GET, which corrects its
//! entry.

use std::collections::HashMap;
use std::sync::Mutex;

/// What the operator last learned of one record from the API server.
enum Seen {
    Absent,
    At(String),
    /// A write whose outcome is unknown: only a GET tells.
    Unknown,
}

/// The resourceVersions of the records, by namespace and name.
#[derive(Default)]
pub struct RecordVersions {
    seen: Mutex<HashMap<(String, String), Seen>>,
}

impl RecordVersions {
    /// Whether a cached copy at `cached_version` (`None`: the cache has no such record) is
    /// the record as the operator last knew it.
    pub fn trusts(&self, namespace: &str, name: &str, cached_version: Option<&str>) -> bool {
        let seen = self.seen.lock().expect("lock");
        match seen.get(&(namespace.to_string(), name.to_string())) {
            None => true,
            Some(Seen::Absent) => cached_version.is_none(),
            Some(Seen::At(version)) => cached_version == Some(version.as_str()),
            Some(Seen::Unknown) => false,
        }
    }

    /// Remembers the version just written or read from the API server (`None`: it has no
    /// such record).
    pub fn saw(&self, namespace: &str, name: &str, version: Option<String>) {
        self.set(namespace, name, version.map_or(Seen::Absent, Seen::At));
    }

    /// Remembers that a write's outcome is unknown.
    pub fn unsure(&self, namespace: &str, name: &str) {
        self.set(namespace, name, Seen::Unknown);
    }

    fn set(&self, namespace: &str, name: &str, seen: Seen) {
        self.seen
            .lock()
            .expect("lock")
            .insert((namespace.to_string(), name.to_string()), seen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_trusted_only_at_the_version_last_seen() {
        let v = RecordVersions::default();
        assert!(v.trusts("ns", "a-rollout", None), "nothing remembered");
        assert!(v.trusts("ns", "a-rollout", Some("5")));
        v.saw("ns", "a-rollout", Some("7".into()));
        assert!(
            !v.trusts("ns", "a-rollout", Some("5")),
            "cache behind the write"
        );
        assert!(
            !v.trusts("ns", "a-rollout", None),
            "write not seen by the cache yet"
        );
        assert!(v.trusts("ns", "a-rollout", Some("7")));
        assert!(v.trusts("ns", "b-rollout", Some("1")), "per record");
        v.unsure("ns", "a-rollout");
        assert!(
            !v.trusts("ns", "a-rollout", Some("7")),
            "outcome unknown: ask"
        );
        assert!(!v.trusts("ns", "a-rollout", None));
        v.saw("ns", "a-rollout", None);
        assert!(v.trusts("ns", "a-rollout", None), "confirmed absent");
        assert!(
            !v.trusts("ns", "a-rollout", Some("7")),
            "created since: ask"
        );
    }
}
