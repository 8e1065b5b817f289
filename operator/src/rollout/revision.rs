//! Revisions: a revision names one pod template. It is a stable hash of the rendered template
//! (image, arguments, environment, probes, security, volumes, scheduling: everything that
//! shapes the pods), so two equal templates always have the same revision and any change to
//! what the pods run gives a new one. Replica counts and the Deployment's own settings are not
//! part of it: scaling is not a rollout.

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// Pod-template annotation carrying the revision (the hash of the template without it).
pub const REVISION_ANNOTATION: &str = "auth.palisade.dev/revision";

/// The revision of `template`, ignoring any revision annotation it already carries.
pub fn revision(template: &PodTemplateSpec) -> String {
    let mut bare = template.clone();
    if let Some(a) = bare.metadata.as_mut().and_then(|m| m.annotations.as_mut()) {
        a.remove(REVISION_ANNOTATION);
        if a.is_empty() {
            bare.metadata.as_mut().unwrap().annotations = None;
        }
    }
    // serde_json writes struct fields in declaration order and maps (BTreeMap) sorted: stable.
    crate::apply::content_hash(&bare)
}

/// Records the revision on the template's annotations and returns it.
pub fn stamp(template: &mut PodTemplateSpec) -> String {
    let rev = revision(template);
    template
        .metadata
        .get_or_insert_with(Default::default)
        .annotations
        .get_or_insert_with(Default::default)
        .insert(REVISION_ANNOTATION.into(), rev.clone());
    rev
}

/// The revision recorded on a (live) pod template, if any.
pub fn revision_of(template: &PodTemplateSpec) -> Option<&str> {
    template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(REVISION_ANNOTATION)
        .map(String::as_str)
}

/// The image of the template's first container (the auth-server).
pub fn image_of(template: &PodTemplateSpec) -> Option<&str> {
    template.spec.as_ref()?.containers.first()?.image.as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([("a".to_string(), "b".to_string())])),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "auth-server".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn equal_templates_have_equal_revisions_and_stamping_does_not_change_it() {
        let mut t = template("img:1");
        let before = revision(&t);
        assert_eq!(before, revision(&template("img:1")));
        assert_eq!(stamp(&mut t), before);
        assert_eq!(revision(&t), before, "the annotation is not hashed");
        assert_eq!(revision_of(&t), Some(before.as_str()));
        assert_eq!(image_of(&t), Some("img:1"));
    }

    #[test]
    fn any_change_to_the_pods_is_a_new_revision() {
        let base = revision(&template("img:1"));
        assert_ne!(base, revision(&template("img:2")));
        let mut relabelled = template("img:1");
        relabelled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert("c".into(), "d".into());
        assert_ne!(base, revision(&relabelled));
        assert_eq!(base.len(), 24);
    }
}
