//! The values of the credentials Secrets this operator last read or wrote, by resourceVersion.
//! The Secret cache holds key names only (see `trim`), so deciding a client's credentials
//! needs the values from somewhere: when the cached copy is still at the resourceVersion whose
//! values are known here, they are the live Secret's values at that version and no GET is
//! needed. Anything else — another version, no cached copy — is read from the API server.
//!
//! A cache that lags behind a change can only make a reconcile decide on the version before
//! it, as if it had run a moment earlier; the change's own watch event wakes the next one. That
//! is harmless only for a reconcile that writes nothing, so the caller uses a recalled Secret
//! only when it would not write it (see `reconcile.rs`): every write decides on a fresh GET.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::ResourceExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// A Secret's values at one resourceVersion.
#[derive(Clone, Debug, PartialEq)]
pub struct Known {
    resource_version: String,
    data: BTreeMap<String, ByteString>,
}

impl Known {
    /// The values of `secret` as read from or written to the API server (`None` without a
    /// resourceVersion).
    pub fn of(secret: &Secret) -> Option<Known> {
        Some(Known {
            resource_version: secret.resource_version()?,
            data: secret.data.clone().unwrap_or_default(),
        })
    }

    /// `cached` (key names only) with these values, if it is at the same resourceVersion.
    pub fn fill(&self, cached: &Secret) -> Option<Secret> {
        if cached.resource_version().as_deref() != Some(self.resource_version.as_str()) {
            return None;
        }
        let mut secret = cached.clone();
        secret.data = Some(self.data.clone());
        Some(secret)
    }
}

/// [`Known`] values by namespace and Secret name.
#[derive(Default)]
pub struct KnownCredentials {
    by_name: Mutex<HashMap<(String, String), Known>>,
}

impl KnownCredentials {
    /// Keeps the values of `secret` (read or written just now).
    pub fn remember(&self, namespace: &str, secret: &Secret) {
        let key = (namespace.to_string(), secret.name_any());
        let mut by_name = self.by_name.lock().expect("lock");
        match Known::of(secret) {
            Some(known) => {
                by_name.insert(key, known);
            }
            None => {
                by_name.remove(&key);
            }
        }
    }

    /// `cached` with its values, when they are known for its resourceVersion.
    pub fn recall(&self, namespace: &str, cached: &Secret) -> Option<Secret> {
        let key = (namespace.to_string(), cached.name_any());
        self.by_name.lock().expect("lock").get(&key)?.fill(cached)
    }

    /// Drops what is known of `namespace/name` (its client is gone).
    pub fn forget(&self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        self.by_name.lock().expect("lock").remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn secret(rv: &str, value: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("app-oauth".into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "client_secret".to_string(),
                ByteString(value.as_bytes().to_vec()),
            )])),
            ..Default::default()
        }
    }

    /// What the cache holds: key names with empty values.
    fn cached(rv: &str) -> Secret {
        secret(rv, "")
    }

    #[test]
    fn values_are_recalled_only_for_the_resource_version_they_were_seen_at() {
        let known = KnownCredentials::default();
        assert_eq!(known.recall("ns", &cached("7")), None, "nothing known yet");
        known.remember("ns", &secret("7", "s3cret"));
        assert_eq!(
            known.recall("ns", &cached("7")),
            Some(secret("7", "s3cret"))
        );
        assert_eq!(
            known.recall("ns", &cached("8")),
            None,
            "a changed Secret is read again"
        );
        assert_eq!(known.recall("other", &cached("7")), None, "per namespace");
        known.remember("ns", &secret("8", "rotated"));
        assert_eq!(known.recall("ns", &cached("7")), None);
        assert_eq!(
            known.recall("ns", &cached("8")),
            Some(secret("8", "rotated"))
        );
        known.forget("ns", "app-oauth");
        assert_eq!(known.recall("ns", &cached("8")), None);
    }

    #[test]
    fn a_secret_without_resource_version_is_not_remembered() {
        let known = KnownCredentials::default();
        known.remember("ns", &secret("7", "s3cret"));
        let mut unversioned = secret("7", "other");
        unversioned.metadata.resource_version = None;
        known.remember("ns", &unversioned);
        assert_eq!(known.recall("ns", &cached("7")), None);
    }
}
