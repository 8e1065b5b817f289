//! What every reconcile gets: the API client, the applier (all writes), the event recorder,
//! metrics and the operator's configuration.

use crate::apply::Applier;
use crate::client::admin::AdminClient;
use crate::crd::AuthProvider;
use crate::metrics::Metrics;
use futures::FutureExt;
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
}

/// Shared reconcile context.
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub applier: Applier,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub config: Config,
    /// Client of the providers' admin APIs (one connection pool for all).
    pub admin: AdminClient,
    /// The AuthProviders the OAuthClient controller watches (a reflector's cache), so that
    /// resolving a client's provider reads memory instead of the API server.
    pub providers: Option<Store<AuthProvider>>,
    /// Admin tokens read from the providers' internal Secrets, by provider uid. A token is
    /// generated once per provider; an admin API that refuses it drops it from here.
    pub admin_tokens: Arc<Mutex<HashMap<String, String>>>,
}

impl Context {
    /// Builds the context; events are reported as `palisade-operator` / `instance`.
    pub fn new(client: Client, metrics: Metrics, config: Config, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: "palisade-operator".into(),
            instance,
        };
        Context {
            applier: Applier::new(client.clone(), metrics.clone()),
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            config,
            admin: AdminClient::default(),
            providers: None,
            admin_tokens: Arc::default(),
        }
    }

    /// The same context, resolving providers from `store`.
    pub fn with_provider_store(&self, store: Store<AuthProvider>) -> Self {
        Context {
            providers: Some(store),
            ..self.clone()
        }
    }

    /// An AuthProvider from the cache when the cache has it; `None` when there is no cache, it
    /// is not filled yet, or it does not know the provider (the caller then asks the API server,
    /// which is authoritative: the cache may lag behind a creation).
    pub fn cached_provider(&self, namespace: &str, name: &str) -> Option<Arc<AuthProvider>> {
        let store = self.providers.as_ref()?;
        store.wait_until_ready().now_or_never()?.ok()?;
        store.get(&ObjectRef::new(name).within(namespace))
    }

    /// Publishes an event about `obj`; failures to record are logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
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
        self.metrics.count_write("Event", "create");
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not record event");
        }
    }
}
