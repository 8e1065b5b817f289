//! Writes to the API server, in one place: server-side apply under one field manager, with no
//! request at all when the desired object has not changed since the last apply.
//!
//! "Unchanged" is decided by a hash of the rendered object, stored in the annotation
//! [`APPLIED_HASH_ANNOTATION`] on the object itself. A resync of an unchanged AuthProvider then
//! costs reads only; every write is counted in the `palisade_operator_api_writes` metric.

use crate::metrics::Metrics;
use crate::owned_cache::{Cached, OwnedCache};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt::Debug;
use std::sync::Arc;

/// The single field manager under which the operator applies everything it owns.
pub const FIELD_MANAGER: &str = "palisade-operator";
/// Annotation holding the hash of the object as last applied by the operator.
pub const APPLIED_HASH_ANNOTATION: &str = "auth.palisade.dev/applied-hash";

/// Hash of a rendered object (before stamping), as stored in [`APPLIED_HASH_ANNOTATION`].
pub fn content_hash<K: Serialize>(obj: &K) -> String {
    let bytes = serde_json::to_vec(obj).expect("rendered objects serialize");
    hex::encode(&Sha256::digest(&bytes)[..12])
}

/// Stamps `obj` with the hash of its content and returns that hash.
pub fn stamp<K: Serialize + Resource>(obj: &mut K) -> String {
    let hash = content_hash(obj);
    obj.annotations_mut()
        .insert(APPLIED_HASH_ANNOTATION.to_string(), hash.clone());
    hash
}

/// Whether an object must be (re)applied: it is missing, or it was last applied from
/// different content.
pub fn needs_apply<K: Resource>(existing: Option<&K>, desired_hash: &str) -> bool {
    match existing {
        None => true,
        Some(obj) => {
            obj.annotations()
                .get(APPLIED_HASH_ANNOTATION)
                .map(String::as_str)
                != Some(desired_hash)
        }
    }
}

/// A namespaced Kubernetes object the operator reads and writes.
pub trait Owned:
    Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> Owned for K where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// Thin async shell around the decisions above; counts every mutating request.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    metrics: Metrics,
    cache: OwnedCache,
}

impl Applier {
    /// Creates an applier that writes through `client` and counts into `metrics`.
    pub fn new(client: Client, metrics: Metrics) -> Self {
        Applier {
            client,
            metrics,
            cache: OwnedCache::default(),
        }
    }

    /// The caches of owned objects that reads go to first.
    pub fn cache(&self) -> &OwnedCache {
        &self.cache
    }

    /// The live `namespace/name`: the cached copy when the cache has one, else a GET (the API
    /// server decides absence, since a cache may not have seen a creation yet).
    pub async fn get<K: Owned>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<K>>, kube::Error> {
        self.read(namespace, name, false).await
    }

    /// Like [`Applier::get`], but a filled cache's "absent" is taken as it is (a GET only when
    /// no cache covers the kind and namespace). For reads that an object seen late cannot
    /// harm, because its watch event wakes the next reconcile: an apply without a copy to
    /// compare is sent anyway (and is idempotent), a delete finds the object next time, and a
    /// referenced Secret reported missing is found present next time.
    pub async fn peek<K: Owned>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<K>>, kube::Error> {
        self.read(namespace, name, true).await
    }

    async fn read<K: Owned>(
        &self,
        namespace: &str,
        name: &str,
        cached_absence: bool,
    ) -> Result<Option<Arc<K>>, kube::Error> {
        match self.cache.get::<K>(namespace, name) {
            Cached::Present(obj) => Ok(Some(obj)),
            Cached::Absent if cached_absence => Ok(None),
            Cached::Absent | Cached::Unknown => {
                Ok(self.api::<K>(namespace).get_opt(name).await?.map(Arc::new))
            }
        }
    }

    /// The underlying client, for reads.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The metrics writes are counted in.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Server-side applies `desired` unless the live object was applied from identical content.
    /// Returns the object as the API server returned it when a write was made, `None` when none
    /// was needed.
    pub async fn apply<K>(&self, namespace: &str, desired: K) -> Result<Option<K>, kube::Error>
    where
        K: Owned,
    {
        let existing = self.peek::<K>(namespace, &desired.name_any()).await?;
        self.apply_over(namespace, desired, existing.as_deref())
            .await
    }

    /// Like [`Applier::apply`], deciding against `live`, which the caller read from the API
    /// server itself (for objects whose cache may lag behind the caller's trigger).
    pub async fn apply_over<K>(
        &self,
        namespace: &str,
        mut desired: K,
        live: Option<&K>,
    ) -> Result<Option<K>, kube::Error>
    where
        K: Owned,
    {
        let api: Api<K> = self.api(namespace);
        let name = desired.name_any();
        let hash = stamp(&mut desired);
        if !needs_apply(live, &hash) {
            return Ok(None);
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = api.patch(&name, &params, &Patch::Apply(&desired)).await?;
        self.metrics.count_write(K::kind(&()).as_ref(), "apply");
        Ok(Some(applied))
    }

    /// Creates `obj` if no object of that name exists; never overwrites. Returns whether it
    /// created it. Used for generated secrets that must never be regenerated; a caller that
    /// needs the content of an existing one reads it from the API server (cached copies are
    /// trimmed, see `trim`).
    pub async fn create_if_absent<K>(&self, namespace: &str, obj: K) -> Result<bool, kube::Error>
    where
        K: Owned,
    {
        let api: Api<K> = self.api(namespace);
        let name = obj.name_any();
        if self.get::<K>(namespace, &name).await?.is_some() {
            return Ok(false);
        }
        self.metrics.count_write(K::kind(&()).as_ref(), "create");
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => Ok(true),
            // Another writer (a previous leader) won the race: keep what it created.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Replaces an existing object's content with an optimistic-concurrency update (the
    /// object's resourceVersion must still match). Used for the signing-key set rotation.
    pub async fn replace<K>(&self, namespace: &str, obj: &K) -> Result<K, kube::Error>
    where
        K: Owned,
    {
        let api: Api<K> = self.api(namespace);
        self.metrics.count_write(K::kind(&()).as_ref(), "replace");
        api.replace(&obj.name_any(), &PostParams::default(), obj)
            .await
    }

    /// Deletes the named object if it exists and is owned by `owner_uid`; objects the operator
    /// does not own are never touched. Returns whether a delete was sent.
    pub async fn delete_owned<K>(
        &self,
        namespace: &str,
        name: &str,
        owner_uid: &str,
    ) -> Result<bool, kube::Error>
    where
        K: Owned,
    {
        let api: Api<K> = self.api(namespace);
        let Some(existing) = self.peek::<K>(namespace, name).await? else {
            return Ok(false);
        };
        if !existing
            .owner_references()
            .iter()
            .any(|o| o.uid == owner_uid)
        {
            return Ok(false);
        }
        self.metrics.count_write(K::kind(&()).as_ref(), "delete");
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;
    use std::collections::BTreeMap;

    fn cm(value: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("x".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("k".to_string(), value.to_string())])),
            ..Default::default()
        }
    }

    #[test]
    fn unchanged_content_needs_no_apply_and_changed_content_does() {
        let mut live = cm("a");
        let hash = stamp(&mut live);
        assert!(!needs_apply(Some(&live), &content_hash(&cm("a"))));
        assert_eq!(hash, content_hash(&cm("a")));
        assert!(needs_apply(Some(&live), &content_hash(&cm("b"))));
        assert!(needs_apply::<ConfigMap>(None, &hash));
        // An object someone else created (no stamp) is taken over by one apply.
        assert!(needs_apply(Some(&cm("a")), &hash));
    }
}
