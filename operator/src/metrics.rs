//! Prometheus metrics of the operator, served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Instant;

/// Labels naming the custom resource kind a controller reconciles.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: &'static str,
}

/// Labels of a reconcile error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: &'static str,
    pub reason: String,
}

/// Labels of a mutating API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// The Kubernetes kind written (Deployment, Secret, ...).
    pub kind: String,
    /// apply, create, delete, patch_status, ...
    pub verb: &'static str,
}

/// Labels of any request to the API server.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The HTTP method; a GET is `LIST` when it reads a collection and `WATCH` when it watches
    /// one (the API server's own verbs).
    pub method: String,
    /// The resource, with its subresource (`pods`, `authproviders/status`, ...); `discovery`
    /// for the API server's discovery and version paths.
    pub resource: String,
}

/// Labels of a rollout outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// All operator metrics; cheap to clone (every metric is reference-counted).
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Family<ControllerLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Family<ControllerLabels, Histogram>,
    /// Every create/update/patch/delete request sent to the API server, by kind and verb.
    pub writes: Family<WriteLabels, Counter>,
    /// Every request sent to the API server (reads, watches and writes), by method and resource.
    pub api_requests: Family<RequestLabels, Counter>,
    pub key_rotations: Counter,
    pub seconds_until_next_rotation:
        Family<ProviderLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub active_key_age_seconds: Family<ProviderLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Unix time of the next scheduled rotation; unlike the countdown it stays true while
    /// reconciles fail, so "now is past it" means the rotation is overdue.
    pub next_rotation_timestamp_seconds:
        Family<ProviderLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub rollouts: Family<OutcomeLabels, Counter>,
    pub rollbacks: Counter,
    pub migration_jobs: Family<OutcomeLabels, Counter>,
    pub leader: Gauge,
    /// 1 while the AuthProvider's Ready condition is True, 0 otherwise (set every reconcile).
    pub provider_ready: Family<ProviderLabels, Gauge>,
    /// Unix time of the AuthProvider's last finished status evaluation; a deleted provider's
    /// series stops advancing, so alerts can ignore it.
    pub provider_last_reconcile_timestamp_seconds:
        Family<ProviderLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

/// Labels naming one AuthProvider.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub namespace: String,
    pub name: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Family::new_with_constructor(|| {
                Histogram::new([
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
            }),
            writes: Family::default(),
            api_requests: Family::default(),
            key_rotations: Counter::default(),
            seconds_until_next_rotation: Family::default(),
            active_key_age_seconds: Family::default(),
            next_rotation_timestamp_seconds: Family::default(),
            rollouts: Family::default(),
            rollbacks: Counter::default(),
            migration_jobs: Family::default(),
            leader: Gauge::default(),
            provider_ready: Family::default(),
            provider_last_reconcile_timestamp_seconds: Family::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric under the `palisade_operator` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("palisade_operator");
        r.register(
            "reconciles",
            "Reconciliations started",
            self.reconciles.clone(),
        );
        r.register(
            "reconcile_errors",
            "Reconciliations that failed",
            self.reconcile_errors.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation",
            self.reconcile_duration.clone(),
        );
        r.register(
            "api_writes",
            "Mutating requests sent to the Kubernetes API server",
            self.writes.clone(),
        );
        r.register(
            "api_requests",
            "Requests sent to the Kubernetes API server (reads, watches and writes), by method and resource",
            self.api_requests.clone(),
        );
        r.register(
            "key_rotations",
            "Signing-key rotations performed",
            self.key_rotations.clone(),
        );
        r.register(
            "seconds_until_next_rotation",
            "Seconds until the next scheduled signing-key rotation",
            self.seconds_until_next_rotation.clone(),
        );
        r.register(
            "active_key_age_seconds",
            "Age of the signing key that is active now",
            self.active_key_age_seconds.clone(),
        );
        r.register(
            "next_rotation_timestamp_seconds",
            "Unix time of the next scheduled signing-key rotation",
            self.next_rotation_timestamp_seconds.clone(),
        );
        r.register(
            "rollouts",
            "Rollouts finished, by outcome",
            self.rollouts.clone(),
        );
        r.register(
            "rollbacks",
            "Automatic rollbacks performed",
            self.rollbacks.clone(),
        );
        r.register(
            "migration_jobs",
            "Migration Jobs finished, by outcome",
            self.migration_jobs.clone(),
        );
        r.register(
            "leader",
            "1 while this process holds the leader lease",
            self.leader.clone(),
        );
        r.register(
            "authprovider_ready",
            "1 while the AuthProvider's Ready condition is True",
            self.provider_ready.clone(),
        );
        r.register(
            "authprovider_last_reconcile_timestamp_seconds",
            "Unix time the AuthProvider's status was last evaluated",
            self.provider_last_reconcile_timestamp_seconds.clone(),
        );
    }

    /// Counts one mutating API request.
    pub fn count_write(&self, kind: &str, verb: &'static str) {
        self.writes
            .get_or_create(&WriteLabels {
                kind: kind.to_string(),
                verb,
            })
            .inc();
    }

    /// Counts one request to the API server, by [`request_labels`].
    pub fn count_request(&self, method: &str, path: &str, query: Option<&str>) {
        self.api_requests
            .get_or_create(&request_labels(method, path, query))
            .inc();
    }

    /// Records an AuthProvider's readiness and when it was evaluated (for the not-Ready alert).
    pub fn record_provider_status(&self, namespace: &str, name: &str, ready: bool, now: f64) {
        let labels = ProviderLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        self.provider_ready
            .get_or_create(&labels)
            .set(i64::from(ready));
        self.provider_last_reconcile_timestamp_seconds
            .get_or_create(&labels)
            .set(now);
    }

    /// Starts timing a reconcile; the returned guard records the duration when dropped.
    pub fn reconcile_started(&self, controller: &'static str) -> ReconcileTimer {
        let labels = ControllerLabels { controller };
        self.reconciles.get_or_create(&labels).inc();
        ReconcileTimer {
            metrics: self.clone(),
            labels,
            start: Instant::now(),
        }
    }
}

/// Records a reconcile's duration when dropped.
pub struct ReconcileTimer {
    metrics: Metrics,
    labels: ControllerLabels,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics
            .reconcile_duration
            .get_or_create(&self.labels)
            .observe(self.start.elapsed().as_secs_f64());
    }
}

/// What a request to the API server does to which resource: the method (a GET that reads a
/// collection is `LIST`, one with `watch=true` is `WATCH`) and the resource named in the path
/// (`/api/v1/namespaces/ns/pods` is `pods`, `.../authproviders/p/status` is
/// `authproviders/status`).
pub fn request_labels(method: &str, path: &str, query: Option<&str>) -> RequestLabels {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // After `/api/v1` or `/apis/<group>/<version>`: [namespaces/<ns>/]<resource>[/<name>[/<sub>]]
    let rest: &[&str] = match parts.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[],
    };
    let rest = match rest {
        ["namespaces", _ns, resource, tail @ ..] => {
            let mut r = vec![*resource];
            r.extend_from_slice(tail);
            r
        }
        other => other.to_vec(),
    };
    let (resource, named) = match rest.as_slice() {
        [] => ("discovery".to_string(), true),
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub, ..] => (format!("{resource}/{sub}"), true),
    };
    let watch = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let method = match method {
        "GET" if watch => "WATCH",
        "GET" if !named => "LIST",
        m => m,
    };
    RequestLabels {
        method: method.to_string(),
        resource,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_counted_by_kind_and_verb_and_encoded() {
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.count_write("Secret", "apply");
        metrics.count_write("Secret", "apply");
        drop(metrics.reconcile_started("authprovider"));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(
            out.contains(r#"palisade_operator_api_writes_total{kind="Secret",verb="apply"} 2"#),
            "{out}"
        );
        assert!(
            out.contains(r#"palisade_operator_reconciles_total{controller="authprovider"} 1"#),
            "{out}"
        );
        assert!(
            out.contains("palisade_operator_reconcile_duration_seconds_count"),
            "{out}"
        );
    }

    #[test]
    fn provider_status_is_exported_under_the_names_the_alerts_use() {
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.record_provider_status("team-a", "dev", false, 1_700_000_000.5);
        metrics.record_provider_status("team-a", "dev", true, 1_700_000_001.5);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(
            out.contains(
                r#"palisade_operator_authprovider_ready{namespace="team-a",name="dev"} 1"#
            ),
            "{out}"
        );
        assert!(
            out.contains(r#"palisade_operator_authprovider_last_reconcile_timestamp_seconds{namespace="team-a",name="dev"} 1700000001.5"#),
            "{out}"
        );
        assert!(out.contains("palisade_operator_rollbacks_total 0"), "{out}");
    }

    #[test]
    fn requests_are_counted_by_verb_and_resource() {
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let pods = "/api/v1/namespaces/team/pods";
        metrics.count_request("GET", "/api/v1/namespaces/team/secrets/s", None);
        metrics.count_request(
            "GET",
            "/api/v1/namespaces/team/secrets/t",
            Some("watchy=true"),
        );
        metrics.count_request(
            "GET",
            pods,
            Some("labelSelector=a&watch=true&resourceVersion=1"),
        );
        metrics.count_request("GET", pods, Some("labelSelector=a"));
        metrics.count_request(
            "PATCH",
            "/apis/palisade.dev/v1alpha1/namespaces/team/authproviders/p/status",
            Some("fieldManager=palisade"),
        );
        metrics.count_request("GET", "/apis/apps/v1/deployments", Some("watch=1"));
        metrics.count_request("GET", "/apis", None);
        metrics.count_request("DELETE", "/api/v1/namespaces/team", None);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        for line in [
            r#"palisade_operator_api_requests_total{method="GET",resource="secrets"} 2"#,
            r#"palisade_operator_api_requests_total{method="WATCH",resource="pods"} 1"#,
            r#"palisade_operator_api_requests_total{method="LIST",resource="pods"} 1"#,
            r#"palisade_operator_api_requests_total{method="PATCH",resource="authproviders/status"} 1"#,
            r#"palisade_operator_api_requests_total{method="WATCH",resource="deployments"} 1"#,
            r#"palisade_operator_api_requests_total{method="GET",resource="discovery"} 1"#,
            r#"palisade_operator_api_requests_total{method="DELETE",resource="namespaces"} 1"#,
        ] {
            assert!(out.contains(line), "{line} missing in {out}");
        }
    }
}
