//! NetworkPolicy `x`: the public port is open to everyone; the admin port (admin API and
//! metrics) only to the operator's namespace and, when configured, the metrics scraper's.

use super::owner::Owner;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use palisade_wire::contract::{ADMIN_PORT, PUBLIC_PORT};
use std::collections::BTreeMap;

fn namespace_peer(namespace: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                namespace.to_string(),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn port(port: u16) -> Option<Vec<NetworkPolicyPort>> {
    Some(vec![NetworkPolicyPort {
        port: Some(IntOrString::Int(port.into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }])
}

/// Renders the policy. `operator_namespace` may reach the admin port, as may
/// `metrics_namespace` when set.
pub fn render_network_policy(
    owner: &Owner,
    operator_namespace: &str,
    metrics_namespace: Option<&str>,
) -> NetworkPolicy {
    let mut admin_peers = vec![namespace_peer(operator_namespace)];
    if let Some(ns) = metrics_namespace.filter(|ns| *ns != operator_namespace) {
        admin_peers.push(namespace_peer(ns));
    }
    NetworkPolicy {
        metadata: owner.meta(owner.name.clone(), "auth-server"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(owner.selector_labels()),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    from: None,
                    ports: port(PUBLIC_PORT),
                },
                NetworkPolicyIngressRule {
                    from: Some(admin_peers),
                    ports: port(ADMIN_PORT),
                },
            ]),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::owner::fixtures::owner;

    #[test]
    fn admin_port_is_reachable_only_from_operator_and_metrics_namespaces() {
        let np = render_network_policy(&owner(), "palisade-system", Some("monitoring"));
        let rules = np.spec.unwrap().ingress.unwrap();
        assert_eq!(rules.len(), 2);
        assert!(rules[0].from.is_none(), "public port open to all");
        assert_eq!(
            rules[0].ports.as_ref().unwrap()[0].port,
            Some(IntOrString::Int(8080))
        );
        let admin_from = rules[1].from.as_ref().unwrap();
        let namespaces: Vec<_> = admin_from
            .iter()
            .map(|p| {
                p.namespace_selector
                    .as_ref()
                    .unwrap()
                    .match_labels
                    .as_ref()
                    .unwrap()["kubernetes.io/metadata.name"]
                    .clone()
            })
            .collect();
        assert_eq!(namespaces, ["palisade-system", "monitoring"]);
        assert_eq!(
            rules[1].ports.as_ref().unwrap()[0].port,
            Some(IntOrString::Int(8081))
        );
    }
}
