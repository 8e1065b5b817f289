//! What every owned object shares: name, namespace, the standard labels and the owner
//! reference to its AuthProvider (so deletion cascades through the garbage collector).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;

/// `app.kubernetes.io/name` of every object the operator owns.
pub const APP_NAME: &str = "palisade-auth-server";
/// The label naming who manages an object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// `app.kubernetes.io/managed-by` of every object the operator owns.
pub const MANAGED_BY: &str = "palisade-operator";

/// The owning AuthProvider, reduced to what renderers need.
#[derive(Clone, Debug, PartialEq)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
    pub reference: OwnerReference,
}

impl Owner {
    /// Builds the owner of objects rendered for `obj`; `None` if the object has no namespace or
    /// uid yet (it was not read from the API server).
    pub fn of<K: Resource<DynamicType = ()>>(obj: &K) -> Option<Owner> {
        Some(Owner {
            name: obj.name_any(),
            namespace: obj.namespace()?,
            reference: obj.controller_owner_ref(&())?,
        })
    }

    /// Labels that select the auth-server pods of this provider (stable across upgrades).
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), APP_NAME.to_string()),
            ("app.kubernetes.io/instance".to_string(), self.name.clone()),
        ])
    }

    /// The full standard label set for an object of `component`.
    pub fn labels(&self, component: &str) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels();
        labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
        labels.insert("app.kubernetes.io/component".into(), component.into());
        labels
    }

    /// Metadata of an owned object named `name`.
    pub fn meta(&self, name: impl Into<String>, component: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels(component)),
            owner_references: Some(vec![self.reference.clone()]),
            ..Default::default()
        }
    }

    /// `<provider>-<suffix>`.
    pub fn child_name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.name)
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// An owner as the API server would give it.
    pub fn owner() -> Owner {
        Owner {
            name: "dev".into(),
            namespace: "team-a".into(),
            reference: OwnerReference {
                api_version: "auth.palisade.dev/v1alpha1".into(),
                kind: "AuthProvider".into(),
                name: "dev".into(),
                uid: "uid-1".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::owner;

    #[test]
    fn owned_metadata_has_standard_labels_and_controller_owner() {
        let meta = owner().meta("dev-admin", "admin");
        let labels = meta.labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/name"], "palisade-auth-server");
        assert_eq!(labels["app.kubernetes.io/instance"], "dev");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "palisade-operator");
        assert_eq!(labels["app.kubernetes.io/component"], "admin");
        let owners = meta.owner_references.unwrap();
        assert_eq!(owners[0].uid, "uid-1");
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(meta.namespace.as_deref(), Some("team-a"));
    }
}
