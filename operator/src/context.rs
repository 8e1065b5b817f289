//! What every reconcile gets: the API client, the applier (all writes), the event recorder,
//! metrics and the operator's configuration.

use crate::apply::Applier;
use crate::client::admin::AdminClient;
use crate::crd::{AuthProvider, OAuthClient};
use crate::metrics::Metrics;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Operator settings that shape what is rendered or where it talks.
#[derive(Clone, Debug)]
pub struct Config {
    /// Image used when an AuthProvider sets none.
    pub auth_server_image: String,
    /// Namespace the operator runs in (may reach the admin port through the NetworkPolicy).
    pub operator_namespace: String,
    /// Namespace of the metrics scraper, also allowed to the admin port.
    pub metrics_namespace: Option<String>,
    /// Admin API base URL to use instead of the admin Service, e.g. `http://127.0.0.1:18081`;
    /// `{namespace}` and `{name}` are replaced by the provider's. Used by tests on loopback.
    pub admin_endpoint_override: Option<String>,
    /// How often every OAuthClient is registered again, so a wiped database heals.
    pub client_resync: std::time::Duration,
    /// Whether watches start with a streaming list (the API server supports `WatchList`).
    pub streaming_lists: bool,
}

/// Shared reconcile context.
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub applier: Applier,
    /// Events waiting to be published (see [`Context::event`]).
    events: tokio::sync::mpsc::Sender<(Event, ObjectReference)>,
    pub metrics: Metrics,
    pub config: Config,
    /// Client of the providers' admin APIs (one connection pool for all).
    pub admin: AdminClient,
    /// The AuthProviders the OAuthClient controller watches (a reflector's cache), so that
    /// resolving a client's provider reads memory instead of the API server.
    pub providers: Option<Store<AuthProvider>>,
    /// The OAuthClients the OAuthClient controller watches, for telling whether a client ID
    /// is already another client's.
    pub clients: Option<Store<OAuthClient>>,
    /// Admin tokens read from the providers' internal Secrets, by provider uid. A token is
    /// generated once per provider; an admin API that refuses it drops it from here.
    pub admin_tokens: Arc<Mutex<HashMap<String, String>>>,
    /// Values of the OAuthClients' credentials Secrets, by resourceVersion (the Secret cache
    /// holds key names only).
    pub known_credentials: Arc<crate::client::known_credentials::KnownCredentials>,
    /// The rollout records' resourceVersions as last written or read, so that a cached record
    /// is used only when it is current.
    pub record_versions: Arc<crate::provider::record_versions::RecordVersions>,
    /// The key step's answers by key Secret version, so that a reconcile with nothing to
    /// rotate does not read the Secret.
    pub settled_keys: Arc<crate::provider::settled_keys::SettledKeys>,
    /// Failures in a row by object, for the retry delay after an error.
    pub backoff: Arc<crate::backoff::Backoff>,
}

impl Context {
    /// Builds the context; events are reported as `palisade-operator` / `instance`.
    pub fn new(client: Client, metrics: Metrics, config: Config, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: "palisade-operator".into(),
            instance,
        };
        let (events, queue) = tokio::sync::mpsc::channel(EVENT_QUEUE);
        tokio::spawn(publish_events(
            client.clone(),
            reporter,
            queue,
            metrics.clone(),
        ));
        Context {
            applier: Applier::new(client.clone(), metrics.clone()),
            events,
            client,
            metrics,
            config,
            admin: AdminClient::default(),
            providers: None,
            clients: None,
            admin_tokens: Arc::default(),
            known_credentials: Arc::default(),
            record_versions: Arc::default(),
            settled_keys: Arc::default(),
            backoff: Arc::default(),
        }
    }

    /// The same context, resolving providers from `providers` and looking client IDs up in
    /// `clients`.
    pub fn with_stores(&self, providers: Store<AuthProvider>, clients: Store<OAuthClient>) -> Self {
        Context {
            providers: Some(providers),
            clients: Some(clients),
            ..self.clone()
        }
    }

    /// Whether an OAuthClient other than the one with `uid` records `client_id` in its status,
    /// waiting for the first full list of OAuthClients if need be. `false` without a store
    /// (one-off tools).
    pub async fn client_id_held_elsewhere(&self, client_id: &str, uid: &str) -> bool {
        let Some(store) = self.clients.as_ref() else {
            return false;
        };
        if store.wait_until_ready().await.is_err() {
            return false;
        }
        store
            .find(|c| {
                c.metadata.uid.as_deref() != Some(uid)
                    && c.status.as_ref().and_then(|s| s.client_id.as_deref()) == Some(client_id)
            })
            .is_some()
    }

    /// An AuthProvider from the cache when the cache has it; `None` when there is no cache, it
    /// is not filled yet, or it does not know the provider (the caller then asks the API server,
    /// which is authoritative: the cache may lag behind a creation).
    pub fn cached_provider(&self, namespace: &str, name: &str) -> Option<Arc<AuthProvider>> {
        let store = self.providers.as_ref()?;
        store.wait_until_ready().now_or_never()?.ok()?;
        store.get(&ObjectRef::new(name).within(namespace))
    }

    /// Queues an Event about `obj` and returns at once: Events are published in the background
    /// (as client-go's event broadcaster does), so a slow API server does not slow the
    /// reconciles down. When the queue is full the Event is dropped and logged: the status
    /// conditions still tell the truth.
    pub fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if self.events.try_send((event, obj.object_ref(&()))).is_err() {
            tracing::warn!(reason, "event queue full; event dropped");
        }
    }
}

/// Events waiting to be published, at most.
const EVENT_QUEUE: usize = 1024;
/// Events published at once.
const EVENT_PUBLISHERS: usize = 8;

/// Publishes queued Events until the queue closes; failures are logged, never fatal.
///
/// Each Event goes through a recorder of its own: kube-runtime's `Recorder` keeps every Event it
/// published for 6 minutes to count repeats into a series, which at 1,000 providers held about
/// 11,000 Events in memory. The operator records transitions, which rarely repeat, so it does
/// without the series.
async fn publish_events(
    client: Client,
    reporter: Reporter,
    mut queue: tokio::sync::mpsc::Receiver<(Event, ObjectReference)>,
    metrics: Metrics,
) {
    futures::stream::poll_fn(|cx| queue.poll_recv(cx))
        .for_each_concurrent(EVENT_PUBLISHERS, |(event, reference)| {
            let recorder = Recorder::new(client.clone(), reporter.clone());
            let metrics = metrics.clone();
            async move {
                metrics.count_write("Event", "create");
                if let Err(e) = recorder.publish(&event, &reference).await {
                    tracing::warn!(error = %e, reason = %event.reason, "could not record event");
                }
            }
        })
        .await;
}
