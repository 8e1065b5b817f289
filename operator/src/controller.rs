//! Wires the controllers to the API server: what each watches and how events map to
//! reconciles.

use crate::apply::Owned;
use crate::context::Context;
use crate::crd::AuthProvider;
use crate::owned_cache::OwnedCache;
use crate::provider::reconcile::{error_policy, reconcile};
use crate::render::owner::MANAGED_BY;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, reflector, ObjectRef};
use kube::runtime::{controller, watcher, Controller, WatchStreamExt};
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

/// A watch of the operator's own objects of kind `K` that also fills a cache for the
/// reconciles' reads (see `owned_cache`). Managed fields are dropped from the cached copies:
/// nothing reads them, and they are often the larger part of an object.
fn cached<K: Owned>(
    client: &Client,
    scope: &Scope,
    config: &watcher::Config,
    cache: &OwnedCache,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    let (reader, writer) = reflector::store::<K>();
    let namespace = match scope {
        Scope::All => None,
        Scope::Namespace(ns) => Some(ns.clone()),
    };
    cache.register(namespace, reader);
    reflector(
        writer,
        watcher(api::<K>(client, scope), config.clone())
            .modify(|obj| obj.managed_fields_mut().clear()),
    )
    .default_backoff()
    .touched_objects()
}

/// The watch of a controller's own kind, filling `writer` (the controller's store) with copies
/// that carry no managed fields.
fn primary<K>(
    client: &Client,
    scope: &Scope,
    writer: reflector::store::Writer<K>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    reflector(
        writer,
        watcher(api::<K>(client, scope), watcher::Config::default())
            .modify(|obj| obj.managed_fields_mut().clear()),
    )
    .default_backoff()
    .applied_objects()
}

/// Runs the AuthProvider controller until shutdown.
pub async fn run_auth_providers(ctx: Arc<Context>, scope: Scope, concurrency: u16) {
    let client = ctx.client.clone();
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));
    let (reader, writer) = reflector::store::<AuthProvider>();
    let providers = Controller::for_stream(primary(&client, &scope, writer), reader)
        .with_config(controller::Config::default().concurrency(concurrency));
    let store = providers.store();
    // Secrets the user references (database/Redis URLs) carry no labels of ours: watch their
    // metadata only and map each to the providers in its namespace that name it.
    let cache = ctx.applier.cache();
    providers
        .owns_stream(cached::<Deployment>(&client, &scope, &owned, cache))
        .owns_stream(cached::<Service>(&client, &scope, &owned, cache))
        .owns_stream(cached::<Secret>(&client, &scope, &owned, cache))
        .owns_stream(cached::<ServiceAccount>(&client, &scope, &owned, cache))
        .owns_stream(cached::<HorizontalPodAutoscaler>(
            &client, &scope, &owned, cache,
        ))
        .owns_stream(cached::<PodDisruptionBudget>(
            &client, &scope, &owned, cache,
        ))
        .owns_stream(cached::<Ingress>(&client, &scope, &owned, cache))
        .owns_stream(cached::<NetworkPolicy>(&client, &scope, &owned, cache))
        .owns_stream(cached::<Job>(&client, &scope, &owned, cache))
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
    use crate::client::provider_changes::ChangeFilter;
    use crate::client::reconcile::{error_policy, reconcile};
    use crate::crd::OAuthClient;
    let client = ctx.client.clone();
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));
    let (reader, writer) = reflector::store::<OAuthClient>();
    let clients = Controller::for_stream(primary(&client, &scope, writer), reader)
        .with_config(controller::Config::default().concurrency(concurrency));
    let store = clients.store();
    // The providers, cached for lookups and watched for the changes their clients care about
    // (spec, Ready, creation, deletion; not every status write).
    let (providers, writer) = reflector::store::<AuthProvider>();
    let ctx = Arc::new(ctx.with_provider_store(providers));
    let mut filter = ChangeFilter::default();
    let provider_changes = reflector(
        writer,
        watcher(
            api::<AuthProvider>(&client, &scope),
            watcher::Config::default(),
        )
        .modify(|obj| obj.managed_fields_mut().clear()),
    )
    .default_backoff()
    .try_filter_map(move |event| {
        let wake = match event {
            watcher::Event::Apply(ap) | watcher::Event::InitApply(ap) => {
                filter.applied(&ap).then_some(ap)
            }
            watcher::Event::Delete(ap) => filter.deleted(&ap).then_some(ap),
            watcher::Event::Init | watcher::Event::InitDone => None,
        };
        futures::future::ready(Ok(wake))
    });
    clients
        .owns(api::<Secret>(&client, &scope), owned)
        .watches_stream(provider_changes, move |ap| {
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
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(log_result)
        .await;
}
