//! PodDisruptionBudget `x`, rendered when more than one replica can run: voluntary
//! disruptions (node drains) keep at least one auth-server pod serving.

use super::owner::Owner;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Whether a PDB belongs with this many replicas at most.
pub fn wants_pdb(max_replicas: i32) -> bool {
    max_replicas > 1
}

/// Renders the PDB: at most one pod down at a time.
pub fn render_pdb(owner: &Owner) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: owner.meta(owner.name.clone(), "auth-server"),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(owner.selector_labels()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::owner::fixtures::owner;

    #[test]
    fn pdb_only_with_several_replicas_and_allows_one_down() {
        assert!(!wants_pdb(1));
        assert!(wants_pdb(2));
        let pdb = render_pdb(&owner());
        let spec = pdb.spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(
            spec.selector.unwrap().match_labels.unwrap()["app.kubernetes.io/instance"],
            "dev"
        );
    }
}
