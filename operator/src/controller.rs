//! Wires the controllers to the API server: what each watches and how events map to
//! reconciles.

use crate::context::Context;
use crate::crd::AuthProvider;
use crate::provider::reconcile::{error_policy, reconcile};
use crate::render::owner::MANAGED_BY;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{controller, watcher, Controller};
use kube::{Client, Resource, ResourceExt};
use std::sync::Arc;

/// Which namespaces the operator watches.
#[derive(Clone, Debug)]
pub enum Scope {
    All,
    Namespace(String),
}

fn api<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    match scope {
        Scope::All => Api::all(client.clone()),
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
    }
}

/// Logs what the controller loop reports (errors are already counted by `error_policy`).
async fn log_result<T: std::fmt::Debug, E: std::fmt::Display>(result: Result<T, E>) {
    match result {
        Ok(obj) => tracing::trace!(?obj, "reconciled"),
        Err(e) => tracing::debug!(error = %e, "reconcile loop"),
    }
}

/// Runs the AuthProvider controller until shutdown.
pub async fn run_auth_providers(ctx: Arc<Context>, scope: Scope, concurrency: u16) {
    let client = ctx.client.clone();
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));
    let providers = Controller::new(
        api::<AuthProvider>(&client, &scope),
        watcher::Config::default(),
    )
    .with_config(controller::Config::default().concurrency(concurrency));
    let store = providers.store();
    // Secrets the user references (database/Redis URLs) carry no labels of ours: watch their
    // metadata only and map each to the providers in its namespace that name it.
    providers
        .owns(api::<Deployment>(&client, &scope), owned.clone())
        .owns(api::<Service>(&client, &scope), owned.clone())
        .owns(api::<Secret>(&client, &scope), owned.clone())
        .owns(api::<ServiceAccount>(&client, &scope), owned.clone())
        .owns(
            api::<HorizontalPodAutoscaler>(&client, &scope),
            owned.clone(),
        )
        .owns(api::<PodDisruptionBudget>(&client, &scope), owned.clone())
        .owns(api::<Ingress>(&client, &scope), owned.clone())
        .owns(api::<NetworkPolicy>(&client, &scope), owned.clone())
        .owns(api::<Job>(&client, &scope), owned)
        .watches(
            api::<PartialObjectMeta<Secret>>(&client, &scope),
            watcher::Config::default(),
            move |secret| {
                let ns = secret.namespace();
                let name = secret.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|ap| {
                        ap.namespace() == ns
                            && (ap.spec.database.url_secret_ref.name == name
                                || ap
                                    .spec
                                    .redis
                                    .as_ref()
                                    .is_some_and(|r| r.url_secret_ref.name == name))
                    })
                    .map(|ap| ObjectRef::from_obj(ap.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(log_result)
        .await;
}

/// Runs the OAuthClient controller until shutdown.
pub async fn run_oauth_clients(ctx: Arc<Context>, scope: Scope, concurrency: u16) {
    use crate::client::reconcile::{error_policy, reconcile};
    use crate::crd::OAuthClient;
    let client = ctx.client.clone();
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));
    let clients = Controller::new(
        api::<OAuthClient>(&client, &scope),
        watcher::Config::default(),
    )
    .with_config(controller::Config::default().concurrency(concurrency));
    let store = clients.store();
    clients
        .owns(api::<Secret>(&client, &scope), owned)
        // A provider change (issuer, namespace policy, admin token) affects its clients.
        .watches(
            api::<AuthProvider>(&client, &scope),
            watcher::Config::default(),
            move |ap| {
                let ap_ns = ap.namespace();
                let ap_name = ap.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|c| {
                        c.spec.provider_ref.name == ap_name
                            && c.spec.provider_ref.namespace.clone().or(c.namespace()) == ap_ns
                    })
                    .map(|c| ObjectRef::from_obj(c.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(log_result)
        .await;
}
