//! Wires the controllers to the API server: what each watches and how events map to
//! reconciles.

use crate::apply::Owned;
use crate::context::Context;
use crate::crd::AuthProvider;
use crate::owned_cache::OwnedCache;
use crate::provider::reconcile::{error_policy, reconcile};
use crate::render::owner::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::trim::Trim;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
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

/// How every watch starts: with a streaming list where the API server supports it (it sends
/// the current objects one by one as watch events, KEP-3157 "WatchList") rather than pages of
/// up to 500 objects read whole into memory, which at 1,000 providers set the operator's peak
/// memory. See [`supports_streaming_lists`].
fn watch_config(streaming_lists: bool) -> watcher::Config {
    let config = watcher::Config::default();
    if streaming_lists {
        config.streaming_lists()
    } else {
        config
    }
}

/// Whether the API server accepts streaming lists: Kubernetes 1.32 and 1.34 on turn the
/// `WatchList` feature on by default, 1.33 and older releases do not, and an administrator may
/// turn it off. One short watch of AuthProviders asks; a refusal (422 or 400) means paginated
/// lists, as client-go falls back.
pub async fn supports_streaming_lists(client: &Client, scope: &Scope) -> bool {
    let probe = kube::api::WatchParams::streaming_lists().timeout(1);
    match api::<AuthProvider>(client, scope).watch(&probe, "").await {
        Ok(_) => true,
        Err(kube::Error::Api(e)) if e.code == 422 || e.code == 400 => {
            tracing::info!(reason = %e.message, "the API server refuses streaming lists; watches start with paginated lists");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not ask the API server about streaming lists; watches start with paginated lists");
            false
        }
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
/// reconciles' reads (see `owned_cache`), with copies trimmed to what those reads need (see
/// `trim`).
fn cached<K: Owned + Trim>(
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
        watcher(api::<K>(client, scope), config.clone()).modify(Trim::trim),
    )
    .default_backoff()
    .touched_objects()
}

/// What of a controller's own object asks for a reconcile: its spec (generation), annotations
/// (requests such as a key rotation), finalizers and deletion. A status-only change, which is
/// mostly the controller's own status write, wakes nothing; the store still sees it.
fn reconcile_trigger<K: Resource>(obj: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = obj.meta();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut h);
    meta.annotations.hash(&mut h);
    meta.finalizers.hash(&mut h);
    meta.deletion_timestamp.as_ref().map(|t| t.0).hash(&mut h);
    Some(h.finish())
}

/// Whether the provider names the Secret `name` (database, Redis or an upstream's client
/// secret).
fn names_secret(ap: &AuthProvider, name: &str) -> bool {
    let spec = &ap.spec;
    spec.database.url_secret_ref.name == name
        || spec
            .redis
            .as_ref()
            .is_some_and(|r| r.url_secret_ref.name == name)
        || spec
            .upstreams
            .iter()
            .any(|u| u.client_secret_ref.name == name)
}

/// A controller of kind `K` reconciling `concurrency` objects at once. Its own watch fills its
/// store with copies that carry no managed fields, and passes on only the changes
/// [`reconcile_trigger`] cares about.
fn controller_of<K>(ctx: &Context, scope: &Scope, concurrency: u16) -> Controller<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let own = reflector(
        writer,
        watcher(
            api::<K>(&ctx.client, scope),
            watch_config(ctx.config.streaming_lists),
        )
        .modify(|obj| obj.managed_fields_mut().clear()),
    )
    .default_backoff()
    .applied_objects()
    .predicate_filter(reconcile_trigger, Default::default());
    Controller::for_stream(own, reader)
        .with_config(controller::Config::default().concurrency(concurrency))
}

/// The watch of what the operator made (labelled as managed by it).
fn owned_config(ctx: &Context) -> watcher::Config {
    watch_config(ctx.config.streaming_lists).labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"))
}

/// Runs the AuthProvider controller until shutdown.
pub async fn run_auth_providers(ctx: Arc<Context>, scope: Scope, concurrency: u16) {
    let client = ctx.client.clone();
    let owned = owned_config(&ctx);
    let providers = controller_of::<AuthProvider>(&ctx, &scope, concurrency);
    let store = providers.store();
    let cache = ctx.applier.cache();
    providers
        .owns_stream(cached::<Deployment>(&client, &scope, &owned, cache))
        .owns_stream(cached::<Service>(&client, &scope, &owned, cache))
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
        // The rollout records fill a cache and wake nothing: only the operator writes them.
        .watches_stream(cached::<ConfigMap>(&client, &scope, &owned, cache), |_| {
            None::<ObjectRef<AuthProvider>>
        })
        // Every Secret in scope, unfiltered: the operator's own and those the user names
        // (database/Redis URLs, upstream client secrets), which carry no labels of ours. The
        // cache keeps key names, never values (see `trim`).
        .watches_stream(
            cached::<Secret>(
                &client,
                &scope,
                &watch_config(ctx.config.streaming_lists),
                cache,
            ),
            move |secret| {
                let ns = secret.namespace();
                let name = secret.name_any();
                let mut wake: Vec<ObjectRef<AuthProvider>> = secret
                    .owner_references()
                    .iter()
                    .filter(|o| o.kind == "AuthProvider")
                    .map(|o| ObjectRef::new(&o.name).within(ns.as_deref().unwrap_or_default()))
                    .collect();
                wake.extend(
                    store
                        .state()
                        .into_iter()
                        .filter(|ap| ap.namespace() == ns && names_secret(ap, &name))
                        .map(|ap| ObjectRef::from_obj(ap.as_ref())),
                );
                wake
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
    let owned = owned_config(&ctx);
    let clients = controller_of::<OAuthClient>(&ctx, &scope, concurrency);
    let store = clients.store();
    // The providers, cached for lookups and watched for the changes their clients care about
    // (spec, Ready, creation, deletion; not every status write).
    let (providers, writer) = reflector::store::<AuthProvider>();
    let ctx = Arc::new(ctx.with_stores(providers, store.clone()));
    let mut filter = ChangeFilter::default();
    let provider_changes = reflector(
        writer,
        watcher(
            api::<AuthProvider>(&client, &scope),
            watch_config(ctx.config.streaming_lists),
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    /// A stand-in API server that answers every watch of AuthProviders with `status`.
    async fn api_server(status: StatusCode) -> Client {
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| async move {
            let query = uri.query().unwrap_or_default().to_string();
            assert!(query.contains("sendInitialEvents=true"), "{query}");
            let body = if status == StatusCode::OK {
                String::new()
            } else {
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "Invalid", "code": status.as_u16(),
                    "message": "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"})
                .to_string()
            };
            (status, [("content-type", "application/json")], body).into_response()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap()
    }

    #[test]
    fn a_provider_is_woken_by_every_secret_it_names() {
        let ap: AuthProvider = serde_json::from_value(serde_json::json!({
            "apiVersion": "auth.palisade.dev/v1alpha1", "kind": "AuthProvider",
            "metadata": {"name": "dev", "namespace": "team"},
            "spec": {"issuer": "https://id.example.com",
                "database": {"urlSecretRef": {"name": "db", "key": "uri"}},
                "redis": {"urlSecretRef": {"name": "cache", "key": "url"}},
                "upstreams": [{"name": "google", "displayName": "Google", "issuer": "https://accounts.google.com",
                    "clientId": "x", "clientSecretRef": {"name": "google-oidc", "key": "secret"}}]}
        }))
        .unwrap();
        for named in ["db", "cache", "google-oidc"] {
            assert!(names_secret(&ap, named), "{named}");
        }
        assert!(!names_secret(&ap, "dev-internal"));
    }

    #[tokio::test]
    async fn watches_stream_their_initial_lists_only_where_the_api_server_accepts_it() {
        let scope = Scope::Namespace("team".into());
        assert!(supports_streaming_lists(&api_server(StatusCode::OK).await, &scope).await);
        for refusal in [StatusCode::UNPROCESSABLE_ENTITY, StatusCode::BAD_REQUEST] {
            assert!(!supports_streaming_lists(&api_server(refusal).await, &scope).await);
        }
        assert!(!supports_streaming_lists(&api_server(StatusCode::FORBIDDEN).await, &scope).await);
        assert!(
            watch_config(true).initial_list_strategy == watcher::InitialListStrategy::StreamingList
        );
        assert!(
            watch_config(false).initial_list_strategy == watcher::InitialListStrategy::ListWatch
        );
    }
}
