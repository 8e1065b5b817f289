//! In-memory copies of the objects the operator owns, kept current by the AuthProvider
//! controller's watches (reflector stores). Deciding whether an object needs a write then reads
//! memory instead of sending a GET for every owned object at every reconcile.
//!
//! A cache can lag behind the API server by a watch event. That is harmless where it is used:
//! a stale copy costs at most one redundant (idempotent) server-side apply, and a missing copy
//! makes the caller ask the API server, which stays the authority for anything that must never
//! be repeated (generated secrets are created only after a GET confirms they are absent).
//!
//! Cached copies are trimmed to what is read from them (see `trim`). The cache of Secrets also
//! holds the Secrets users name in their AuthProviders, as outlines: the operator needs to know
//! that they exist and have the key named, never their values.

use crate::apply::Owned;
use futures::FutureExt;
use kube::runtime::reflector::{ObjectRef, Store};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// What the cache knows about one object.
#[derive(Debug)]
pub enum Cached<K> {
    /// No filled cache covers this kind and namespace: ask the API server.
    Unknown,
    /// The cache is filled and has no such object.
    Absent,
    /// The cached copy.
    Present(Arc<K>),
}

/// A kind and the namespace its watch covers (`None`: all namespaces).
type StoreKey = (TypeId, Option<String>);

/// Reflector stores by kind and watched namespace; each value is a `Store<K>` of its kind.
#[derive(Clone, Default)]
pub struct OwnedCache {
    stores: Arc<RwLock<HashMap<StoreKey, Box<dyn Any + Send + Sync>>>>,
}

impl OwnedCache {
    /// Adds the store that a watch of `K` in `namespace` (or all namespaces) keeps filled.
    pub fn register<K: Owned + Send + Sync + 'static>(
        &self,
        namespace: Option<String>,
        store: Store<K>,
    ) {
        self.stores
            .write()
            .expect("cache lock")
            .insert((TypeId::of::<K>(), namespace), Box::new(store));
    }

    /// The cached `namespace/name` of kind `K`.
    pub fn get<K: Owned + Send + Sync + 'static>(&self, namespace: &str, name: &str) -> Cached<K> {
        let stores = self.stores.read().expect("cache lock");
        let store = [Some(namespace.to_string()), None]
            .into_iter()
            .find_map(|scope| stores.get(&(TypeId::of::<K>(), scope)))
            .and_then(|s| s.downcast_ref::<Store<K>>());
        let Some(store) = store else {
            return Cached::Unknown;
        };
        if !matches!(store.wait_until_ready().now_or_never(), Some(Ok(()))) {
            return Cached::Unknown;
        }
        match store.get(&ObjectRef::new(name).within(namespace)) {
            Some(obj) => Cached::Present(obj),
            None => Cached::Absent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use kube::runtime::reflector::store;
    use kube::runtime::watcher;

    fn cm(ns: &str, name: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "namespace": ns}}))
            .unwrap()
    }

    #[test]
    fn lookups_know_what_they_cannot_know() {
        let cache = OwnedCache::default();
        assert!(matches!(cache.get::<ConfigMap>("a", "x"), Cached::Unknown));

        let (reader, mut writer) = store::<ConfigMap>();
        cache.register(Some("a".into()), reader);
        assert!(
            matches!(cache.get::<ConfigMap>("a", "x"), Cached::Unknown),
            "not filled yet"
        );
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(cm("a", "x")));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        assert!(
            matches!(cache.get::<ConfigMap>("a", "x"), Cached::Present(c) if c.metadata.name.as_deref() == Some("x"))
        );
        assert!(matches!(cache.get::<ConfigMap>("a", "y"), Cached::Absent));
        assert!(
            matches!(cache.get::<ConfigMap>("b", "x"), Cached::Unknown),
            "namespace not watched"
        );
        assert!(
            matches!(cache.get::<Secret>("a", "x"), Cached::Unknown),
            "kind not cached"
        );

        let (all, mut all_writer) = store::<Secret>();
        cache.register(None, all);
        all_writer.apply_watcher_event(&watcher::Event::Init);
        all_writer.apply_watcher_event(&watcher::Event::InitDone);
        assert!(
            matches!(cache.get::<Secret>("anywhere", "s"), Cached::Absent),
            "a cluster-wide store covers every namespace"
        );
    }
}
