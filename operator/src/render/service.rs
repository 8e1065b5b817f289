//! Services `x` (public OIDC port) and `x-admin` (admin API and metrics), both ClusterIP.

use super::owner::Owner;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use palisade_wire::contract::{ADMIN_PORT, PUBLIC_PORT};

/// Name of the admin Service of a provider.
pub fn admin_service_name(owner: &Owner) -> String {
    owner.child_name("admin")
}

fn service(owner: &Owner, name: String, component: &str, port_name: &str, port: u16) -> Service {
    Service {
        metadata: owner.meta(name, component),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(owner.selector_labels()),
            ports: Some(vec![ServicePort {
                name: Some(port_name.into()),
                port: port.into(),
                target_port: Some(IntOrString::String(port_name.into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The public Service: what the Ingress and in-cluster relying parties reach.
pub fn render_public_service(owner: &Owner) -> Service {
    service(
        owner,
        owner.name.clone(),
        "auth-server",
        "http",
        PUBLIC_PORT,
    )
}

/// The admin Service: the operator's route to the admin API; never behind the Ingress.
pub fn render_admin_service(owner: &Owner) -> Service {
    service(
        owner,
        admin_service_name(owner),
        "admin",
        "admin",
        ADMIN_PORT,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::owner::fixtures::owner;

    #[test]
    fn public_and_admin_services_expose_their_own_port_only() {
        let public = render_public_service(&owner());
        let admin = render_admin_service(&owner());
        assert_eq!(public.metadata.name.as_deref(), Some("dev"));
        assert_eq!(admin.metadata.name.as_deref(), Some("dev-admin"));
        let public_ports = public.spec.as_ref().unwrap().ports.as_ref().unwrap();
        let admin_ports = admin.spec.as_ref().unwrap().ports.as_ref().unwrap();
        assert_eq!(public_ports.len(), 1);
        assert_eq!(public_ports[0].port, 8080);
        assert_eq!(admin_ports[0].port, 8081);
        assert_eq!(
            public.spec.unwrap().selector.unwrap()["app.kubernetes.io/instance"],
            "dev"
        );
    }
}
