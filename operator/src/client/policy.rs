//! Whether an OAuthClient's namespace may register with a provider (`clientNamespaces`).

use crate::crd::auth_provider::{ClientNamespaces, NamespacePolicy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// Decides admission. `client_ns_labels` are the labels of the client's namespace.
pub fn namespace_allowed(
    policy: &ClientNamespaces,
    provider_ns: &str,
    client_ns: &str,
    client_ns_labels: &BTreeMap<String, String>,
) -> bool {
    match policy.policy {
        NamespacePolicy::Same => provider_ns == client_ns,
        NamespacePolicy::All => true,
        NamespacePolicy::Selector => {
            provider_ns == client_ns
                || policy
                    .selector
                    .as_ref()
                    .is_some_and(|s| selector_matches(s, client_ns_labels))
        }
    }
}

/// Kubernetes label-selector semantics (matchLabels AND every matchExpression).
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .as_ref()
        .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let exprs_ok = selector.match_expressions.as_ref().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let values = e.values.clone().unwrap_or_default();
            match e.operator.as_str() {
                "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
                "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
                "Exists" => labels.contains_key(&e.key),
                "DoesNotExist" => !labels.contains_key(&e.key),
                _ => false,
            }
        })
    });
    labels_ok && exprs_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn same_policy_admits_only_the_providers_namespace() {
        let p = ClientNamespaces::default();
        assert!(namespace_allowed(&p, "auth", "auth", &labels(&[])));
        assert!(!namespace_allowed(&p, "auth", "team-a", &labels(&[])));
    }

    #[test]
    fn all_policy_admits_everyone() {
        let p = ClientNamespaces {
            policy: NamespacePolicy::All,
            selector: None,
        };
        assert!(namespace_allowed(&p, "auth", "team-a", &labels(&[])));
    }

    #[test]
    fn selector_policy_follows_label_selector_semantics() {
        let p = ClientNamespaces {
            policy: NamespacePolicy::Selector,
            selector: Some(LabelSelector {
                match_labels: Some(labels(&[("palisade.dev/clients", "true")])),
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["sandbox".into()]),
                }]),
            }),
        };
        assert!(namespace_allowed(
            &p,
            "auth",
            "team-a",
            &labels(&[("palisade.dev/clients", "true")])
        ));
        assert!(!namespace_allowed(
            &p,
            "auth",
            "team-b",
            &labels(&[("palisade.dev/clients", "true"), ("env", "sandbox")])
        ));
        assert!(!namespace_allowed(&p, "auth", "team-c", &labels(&[])));
    }
}
