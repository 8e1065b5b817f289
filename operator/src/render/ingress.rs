//! Ingress `x`, rendered when `spec.ingress` is set. Routes the public port only; the admin
//! port never sits behind it. With `tls.clusterIssuer`, cert-manager issues the certificate.

use super::owner::Owner;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use std::collections::BTreeMap;

/// cert-manager's annotation naming the ClusterIssuer.
pub const CERT_MANAGER_CLUSTER_ISSUER: &str = "cert-manager.io/cluster-issuer";

/// What the Ingress needs from the spec.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct IngressInput {
    pub host: String,
    pub class_name: Option<String>,
    pub annotations: BTreeMap<String, String>,
    pub tls_secret_name: Option<String>,
    pub cluster_issuer: Option<String>,
}

/// Renders the Ingress to Service `x` port `http`.
pub fn render_ingress(owner: &Owner, input: &IngressInput) -> Ingress {
    let mut meta = owner.meta(owner.name.clone(), "auth-server");
    let mut annotations = input.annotations.clone();
    if let Some(issuer) = &input.cluster_issuer {
        annotations.insert(CERT_MANAGER_CLUSTER_ISSUER.into(), issuer.clone());
    }
    if !annotations.is_empty() {
        meta.annotations = Some(annotations);
    }
    // With a cluster issuer but no secret name, cert-manager needs one to write to.
    let tls_secret = input.tls_secret_name.clone().or_else(|| {
        input
            .cluster_issuer
            .as_ref()
            .map(|_| owner.child_name("tls"))
    });
    Ingress {
        metadata: meta,
        spec: Some(IngressSpec {
            ingress_class_name: input.class_name.clone(),
            tls: tls_secret.map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![input.host.clone()]),
                    secret_name: Some(secret),
                }]
            }),
            rules: Some(vec![IngressRule {
                host: Some(input.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: owner.name.clone(),
                                port: Some(ServiceBackendPort {
                                    name: Some("http".into()),
                                    number: None,
                                }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
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
    fn ingress_routes_public_service_with_cert_manager_tls() {
        let ing = render_ingress(
            &owner(),
            &IngressInput {
                host: "id.example.com".into(),
                class_name: Some("nginx".into()),
                cluster_issuer: Some("letsencrypt-prod".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            ing.metadata.annotations.as_ref().unwrap()[CERT_MANAGER_CLUSTER_ISSUER],
            "letsencrypt-prod"
        );
        let spec = ing.spec.unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        let tls = &spec.tls.unwrap()[0];
        assert_eq!(tls.secret_name.as_deref(), Some("dev-tls"));
        assert_eq!(
            tls.hosts.as_deref(),
            Some(&["id.example.com".to_string()][..])
        );
        let backend = spec.rules.unwrap()[0].http.as_ref().unwrap().paths[0]
            .backend
            .service
            .clone()
            .unwrap();
        assert_eq!(backend.name, "dev");
        assert_eq!(backend.port.unwrap().name.as_deref(), Some("http"));
    }

    #[test]
    fn ingress_without_tls_settings_has_no_tls_block() {
        let ing = render_ingress(
            &owner(),
            &IngressInput {
                host: "id.local".into(),
                ..Default::default()
            },
        );
        assert!(ing.spec.unwrap().tls.is_none());
        assert!(ing.metadata.annotations.is_none());
    }
}
