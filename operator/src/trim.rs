//! What the watch caches keep of each kind: only what the reconciles read from a cached copy.
//! At 1,000 providers the full objects were most of the operator's memory (a Deployment's pod
//! template alone is about 18 KB in memory).
//!
//! Every object keeps its metadata minus managed fields and labels: names, owner references
//! and the applied-hash annotation that decides whether a write is needed. Labels only select
//! the objects (the watch asks for the operator's label), and nothing reads them from a copy;
//! at 1,000 providers they were about 10 MiB of the cache. Beyond that:
//!
//! - Deployment: replicas, selector, status, and of the pod template its annotations (the
//!   revision) and each container's name, image and `DATABASE_URL` (the migration key). A
//!   rollout step that must re-apply what runs reads the whole Deployment from the API server
//!   (see `rollout::plan::needs_live_template`).
//! - Job: metadata and status (conditions); not the pod template.
//! - Secret: key names only, no values, ours or anyone's; readers of values GET the Secret.
//!   A Secret the operator does not own keeps no labels or annotations either (see
//!   [`outline_foreign_secret`]).
//! - Service, HorizontalPodAutoscaler, PodDisruptionBudget, Ingress, NetworkPolicy: metadata
//!   only.
//! - ConfigMap (the rollout record, which holds the last good pod template): whole, its JSON
//!   re-serialized without the indentation it is stored with for people (5.6 → 2.6 KB for the
//!   dev sample's record).

use crate::render::owner::{MANAGED_BY, MANAGED_BY_LABEL};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PodSpec, PodTemplateSpec, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::ResourceExt;
use palisade_wire::contract::env;

/// Reduces a watched object to what a cached copy is read for.
pub trait Trim {
    fn trim(&mut self);
}

/// A pod template reduced to its annotations and each container's name, image and
/// `DATABASE_URL`.
pub fn trim_pod_template(template: &mut PodTemplateSpec) {
    template.metadata = template.metadata.take().map(|m| ObjectMeta {
        annotations: m.annotations,
        ..Default::default()
    });
    template.spec = template.spec.take().map(|spec| PodSpec {
        containers: spec
            .containers
            .into_iter()
            .map(|c| Container {
                name: c.name,
                image: c.image,
                env: c.env.map(|env| {
                    env.into_iter()
                        .filter(|e| e.name == env::DATABASE_URL)
                        .collect()
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    });
}

/// Drops what no reader of a cached copy looks at in any kind: managed fields and labels.
fn trim_metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    meta.labels = None;
}

impl Trim for Deployment {
    fn trim(&mut self) {
        trim_metadata(&mut self.metadata);
        if let Some(spec) = self.spec.as_mut() {
            trim_pod_template(&mut spec.template);
        }
    }
}

impl Trim for ConfigMap {
    fn trim(&mut self) {
        trim_metadata(&mut self.metadata);
        for value in self.data.iter_mut().flat_map(|d| d.values_mut()) {
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(value) {
                *value = json.to_string();
            }
        }
    }
}

impl Trim for Job {
    fn trim(&mut self) {
        trim_metadata(&mut self.metadata);
        if let Some(spec) = self.spec.as_mut() {
            spec.template = PodTemplateSpec::default();
        }
    }
}

impl Trim for Secret {
    fn trim(&mut self) {
        let ours = self.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY);
        if ours {
            trim_metadata(&mut self.metadata);
            self.data = self.data.take().map(blank_values);
            self.string_data = None;
        } else {
            outline_foreign_secret(self);
        }
    }
}

/// Objects of which only the metadata is read from the cache.
macro_rules! metadata_only {
    ($($kind:ty => $($field:ident),*);* $(;)?) => {
        $(impl Trim for $kind {
            fn trim(&mut self) {
                trim_metadata(&mut self.metadata);
                $(self.$field = Default::default();)*
            }
        })*
    };
}

metadata_only! {
    Service => spec, status;
    ServiceAccount => secrets, image_pull_secrets;
    HorizontalPodAutoscaler => spec, status;
    PodDisruptionBudget => spec, status;
    Ingress => spec, status;
    NetworkPolicy => spec;
}

fn blank_values(
    data: std::collections::BTreeMap<String, ByteString>,
) -> std::collections::BTreeMap<String, ByteString> {
    data.into_keys()
        .map(|k| (k, ByteString(Vec::new())))
        .collect()
}

/// Reduces a Secret the operator does not own to what it may know of it: name, namespace,
/// uid, resourceVersion, type and key names. Values, labels and annotations (which can hold a
/// copy of the values, as `kubectl apply`'s last-applied configuration does) are dropped.
pub fn outline_foreign_secret(secret: &mut Secret) {
    let meta = &secret.metadata;
    secret.metadata = ObjectMeta {
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    };
    secret.data = secret.data.take().map(blank_values);
    secret.string_data = None;
    secret.immutable = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{needs_apply, stamp};
    use crate::render::owner::fixtures::owner;
    use crate::rollout::decision::DeploymentProgress;
    use crate::rollout::revision::{image_of, revision_of};

    #[test]
    fn a_foreign_secret_is_kept_as_an_outline_without_values() {
        let mut s: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db", "namespace": "team", "uid": "u", "resourceVersion": "7",
                "labels": {"a": "b"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"uri\":\"cG9zdGdyZXM6Ly9zZWNyZXQ=\"}}"}},
            "type": "Opaque",
            "data": {"uri": "cG9zdGdyZXM6Ly9zZWNyZXQ=", "other": "eA=="}
        }))
        .unwrap();
        s.trim();
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("cG9zdGdyZXM6Ly9zZWNyZXQ"), "{json}");
        assert!(!json.contains("last-applied"), "{json}");
        assert_eq!(s.metadata.name.as_deref(), Some("db"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(s.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        let keys: Vec<&String> = s.data.as_ref().unwrap().keys().collect();
        assert_eq!(keys, ["other", "uri"]);
        assert!(s.data.unwrap().values().all(|v| v.0.is_empty()));
    }

    #[test]
    fn our_secrets_keep_their_metadata_and_key_names_but_no_values() {
        let o = owner();
        let mut s = crate::render::secrets::render_internal_secret(
            &o,
            &crate::render::secrets::InternalTokens::generate(),
        );
        let hash = stamp(&mut s);
        let values: Vec<Vec<u8>> = s
            .data
            .as_ref()
            .unwrap()
            .values()
            .map(|v| v.0.clone())
            .collect();
        let mut cached = s.clone();
        cached.trim();
        assert!(!needs_apply(Some(&cached), &hash), "the hash survives");
        assert_eq!(cached.owner_references(), s.owner_references());
        assert!(!s.labels().is_empty());
        assert!(cached.metadata.labels.is_none(), "labels are not kept");
        assert_eq!(
            cached.data.as_ref().unwrap().keys().collect::<Vec<_>>(),
            s.data.as_ref().unwrap().keys().collect::<Vec<_>>()
        );
        let json = serde_json::to_vec(&cached).unwrap();
        for v in values.iter().filter(|v| v.len() >= 8) {
            assert!(
                !json.windows(v.len()).any(|w| w == v.as_slice()),
                "a value survived"
            );
        }
    }

    #[test]
    fn a_trimmed_deployment_still_says_what_the_decisions_read() {
        let o = owner();
        let spec: crate::crd::AuthProviderSpec = serde_json::from_value(serde_json::json!({
            "issuer": "https://id.example.com",
            "database": {"urlSecretRef": {"name": "db", "key": "uri"}}
        }))
        .unwrap();
        let (template, revision) = crate::render::deployment::render_pod_template(
            &o,
            &crate::provider::desired::pod_input(&spec, "palisade/auth-server:1"),
        );
        let mut d = crate::render::deployment::render_deployment(
            &o,
            &crate::provider::desired::deployment_input(&spec),
            template.clone(),
        );
        let hash = stamp(&mut d);
        let full_len = serde_json::to_vec(&d).unwrap().len();
        let mut cached = d.clone();
        cached.trim();
        assert!(!needs_apply(Some(&cached), &hash));
        let live = &cached.spec.as_ref().unwrap().template;
        assert_eq!(revision_of(live), Some(revision.as_str()));
        assert_eq!(image_of(live), image_of(&template));
        assert_eq!(
            crate::provider::rollout::running_key(live),
            crate::provider::rollout::running_key(&template)
        );
        assert!(crate::provider::rollout::running_key(live).is_some());
        assert_eq!(
            format!("{:?}", DeploymentProgress::of(&cached)),
            format!("{:?}", DeploymentProgress::of(&d))
        );
        let trimmed_len = serde_json::to_vec(&cached).unwrap().len();
        assert!(
            trimmed_len * 3 < full_len,
            "trimmed {trimmed_len} of {full_len} bytes"
        );
    }

    #[test]
    fn a_cached_rollout_record_reads_the_same_in_less_memory() {
        use crate::rollout::record::{parse_record, render_record, GoodRevision, RolloutRecord};
        let template = PodTemplateSpec {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "auth-server".into(),
                    image: Some("palisade/auth-server:1.0".into()),
                    args: Some(vec!["serve".into(); 20]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let record = RolloutRecord {
            last_good: Some(GoodRevision {
                revision: "abc".into(),
                image: "palisade/auth-server:1.0".into(),
                template,
            }),
            migrated: vec!["k1".into()],
            ..Default::default()
        };
        let mut cm = render_record(&owner(), &record);
        let hash = stamp(&mut cm);
        let full: usize = cm.data.as_ref().unwrap().values().map(String::len).sum();
        cm.trim();
        let trimmed: usize = cm.data.as_ref().unwrap().values().map(String::len).sum();
        assert!(trimmed * 3 < full * 2, "{trimmed} of {full} bytes");
        assert_eq!(parse_record(Some(&cm)), record);
        assert!(!needs_apply(Some(&cm), &hash), "the applied hash is kept");
    }
}
