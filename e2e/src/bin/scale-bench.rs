//! Operator scale benchmark, run by `bench/scale.sh` against the local control plane (KWOK
//! nodes): creates `SCALE_PROVIDERS` AuthProviders and `SCALE_CLIENTS` OAuthClients spread over
//! `SCALE_NAMESPACES` namespaces, with one operator process watching them (all namespaces, the
//! chart's default; only the run's namespaces with `SCALE_WATCH_NAMESPACES=1`), and measures
//!
//! - the time until every one of them is Ready for its generation,
//! - the API requests the operator made (by method) and its writes, per custom resource,
//! - the operator's peak RSS and CPU time,
//! - a full resync by a restarted operator with nothing changed (must make zero writes),
//! - the write floor of this API server: the time to create, with the same client library and
//!   the same concurrency, as many objects as the run left behind (custom resources plus
//!   every object the operator made), and the ratio of the two times.
//!
//! OAuthClients register with a stub admin API on 127.0.0.1 (the providers' auth-servers are
//! simulated pods), so the figures are the operator's and the API server's alone. Prints a
//! Markdown report on stdout.

use axum::routing::any;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::reflector::{self, reflector};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use palisade_e2e::{free_port, operator_made_objects, repo_root};
use palisade_operator::crd::{AuthProvider, OAuthClient};
use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Concurrent creations, for the run and for the floor alike.
const CREATE_CONCURRENCY: usize = 16;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sample<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let text = std::fs::read_to_string(repo_root().join("config/samples").join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// `$PALISADE_OPERATOR_BIN`, else the operator built next to this binary.
fn operator_binary() -> std::path::PathBuf {
    std::env::var_os("PALISADE_OPERATOR_BIN")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::env::current_exe()
                .expect("own path")
                .with_file_name("palisade-operator")
        })
}

/// Whether the operator watches only the run's namespaces (one watch per kind and namespace)
/// rather than all namespaces (one watch per kind).
fn watch_namespaces() -> bool {
    std::env::var("SCALE_WATCH_NAMESPACES").as_deref() == Ok("1")
}

/// The operator process under measurement.
struct Measured {
    child: Child,
    http: String,
}

impl Measured {
    fn start(namespaces: &[String], admin: &str, log: &std::path::Path) -> Measured {
        let http = format!("127.0.0.1:{}", free_port());
        let file = std::fs::File::create(log).expect("log file");
        let concurrency = setting("SCALE_OPERATOR_CONCURRENCY", 0);
        let mut cmd = Command::new(operator_binary());
        if watch_namespaces() {
            cmd.args(["--watch-namespace", &namespaces.join(",")]);
        }
        cmd.args([
            "--operator-namespace",
            &namespaces[0],
            "--http-addr",
            &http,
            "--log-format",
            "json",
            "--admin-endpoint-override",
            admin,
            "--client-resync-seconds",
            "3600",
        ])
        .env("PALISADE_LOG_LEVEL", "info,kube=warn")
        .stdout(file.try_clone().unwrap())
        .stderr(file);
        if concurrency > 0 {
            cmd.args(["--concurrency", &concurrency.to_string()]);
        }
        let child = cmd.spawn().expect("operator starts");
        Measured { child, http }
    }

    async fn metrics(&self) -> String {
        for _ in 0..100 {
            if let Ok(r) = reqwest::get(format!("http://{}/metrics", self.http)).await {
                if let Ok(t) = r.text().await {
                    return t;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("operator metrics unreachable")
    }

    /// Sum of a metric family's samples whose line contains every filter.
    async fn sum(&self, name: &str, filters: &[&str]) -> f64 {
        sum(&self.metrics().await, name, filters)
    }

    /// (peak RSS in MiB, CPU seconds) from /proc.
    fn usage(&self) -> (f64, f64) {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let hwm_kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // utime and stime are fields 14 and 15 of stat (12 and 13 after the command name).
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
            .sum();
        (hwm_kib / 1024.0, ticks / 100.0)
    }
}

impl Drop for Measured {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sum(text: &str, name: &str, filters: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && filters.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        // Plus 0.0: an empty f64 sum is -0.0, printed "-0".
        .sum::<f64>()
        + 0.0
}

/// The samples of metric family `name` in Prometheus text, each as a label lookup and a value.
fn samples<'a>(
    text: &'a str,
    name: &'a str,
) -> impl Iterator<Item = (impl Fn(&str) -> Option<&'a str>, f64)> + 'a {
    text.lines()
        .filter_map(move |l| l.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|l| {
            let (labels, value) = l.split_once("} ")?;
            let label = move |key: &str| {
                labels
                    .split(',')
                    .find_map(|p| p.strip_prefix(key)?.strip_prefix("=\"")?.strip_suffix('"'))
            };
            Some((label, value.trim().parse().ok()?))
        })
}

/// The `n` largest `counts`, as "GET secrets 120, ...".
fn largest(counts: &BTreeMap<String, f64>, n: usize) -> String {
    let mut counts: Vec<(&String, &f64)> = counts.iter().collect();
    counts.sort_by(|a, b| b.1.total_cmp(a.1));
    counts
        .iter()
        .take(n)
        .map(|(what, v)| format!("{what} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `n` largest of the operator's request counts by verb and resource, as "GET secrets 120, ...".
fn top_requests(text: &str, n: usize) -> String {
    let mut counts = BTreeMap::new();
    for (label, value) in samples(text, "palisade_operator_api_requests_total") {
        if let (Some(method), Some(resource)) = (label("method"), label("resource")) {
            *counts.entry(format!("{method} {resource}")).or_default() += value;
        }
    }
    largest(&counts, n)
}

/// The verbs of `apiserver_request_total` that write to etcd.
const WRITE_VERBS: [&str; 6] = [
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

/// The API server's writes so far by resource (`pods`, `pods/status`, ...), from its own
/// `apiserver_request_total`: every client's, the operator's, the controllers', KWOK's and
/// this benchmark's alike.
fn apiserver_writes(text: &str) -> BTreeMap<String, f64> {
    let mut writes = BTreeMap::new();
    for (label, value) in samples(text, "apiserver_request_total") {
        if !label("verb").is_some_and(|v| WRITE_VERBS.contains(&v)) {
            continue;
        }
        let resource = label("resource").unwrap_or_default();
        let key = match label("subresource").filter(|s| !s.is_empty()) {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_string(),
        };
        *writes.entry(key).or_default() += value;
    }
    writes
}

/// The API server's writes so far (see [`apiserver_writes`]).
async fn apiserver_writes_now(client: &Client) -> anyhow::Result<BTreeMap<String, f64>> {
    let request = axum::http::Request::get("/metrics").body(Vec::new())?;
    Ok(apiserver_writes(&client.request_text(request).await?))
}

/// `after - before`, by key.
fn difference(
    after: &BTreeMap<String, f64>,
    before: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// Watches every object of kind `K` (a store kept by a watch, so that following the run
/// costs the API server only the watch events, not a LIST of thousands every poll).
fn watched<K>(client: &Client) -> reflector::Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(Api::<K>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff();
    tokio::spawn(stream.for_each(|_| futures::future::ready(())));
    reader
}

/// How many of the run's objects in `store` are Ready for their generation.
fn ready_count<K: kube::Resource<DynamicType = ()> + Clone>(
    store: &reflector::Store<K>,
    prefix: &str,
    ready: impl Fn(&K) -> Option<(Option<i64>, bool)>,
) -> usize {
    store
        .state()
        .iter()
        .filter(|o| {
            o.meta()
                .namespace
                .as_ref()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .filter(|o| {
            ready(o).is_some_and(|(observed, ready)| ready && observed == o.meta().generation)
        })
        .count()
}

/// Objects the operator made (labelled as managed by it) in the run's namespaces.
async fn managed_objects(client: &Client, namespaces: &[String]) -> usize {
    let mut total = 0;
    for ns in namespaces {
        total += operator_made_objects(client, ns).await.len();
    }
    total
}

/// An admin API that accepts every registration and deregistration, and counts them.
async fn admin_stub() -> (String, Arc<AtomicU64>) {
    let calls = Arc::new(AtomicU64::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/admin/clients/{id}",
        any(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), calls)
}

async fn create_all<K>(client: &Client, objects: Vec<K>) -> anyhow::Result<()>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    futures::stream::iter(objects)
        .map(|obj| {
            let api = Api::<K>::namespaced(client.clone(), &obj.namespace().unwrap());
            async move { api.create(&PostParams::default(), &obj).await.map(|_| ()) }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let providers = setting("SCALE_PROVIDERS", 1000);
    let clients = setting("SCALE_CLIENTS", 3000);
    let namespace_count = setting("SCALE_NAMESPACES", 10).max(1);
    let replicas = setting("SCALE_REPLICAS", 1);
    let timeout = Duration::from_secs(setting("SCALE_TIMEOUT_SECONDS", 2400) as u64);
    let client = Client::try_default().await?;
    if !watch_namespaces() {
        // Watching all namespaces, the operator would also reconcile what other runs left
        // (what is being deleted with its namespace is let go within seconds and does not
        // count).
        let terminating: Vec<String> = Api::<Namespace>::all(client.clone())
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|n| n.metadata.deletion_timestamp.is_some())
            .map(|n| n.name_any())
            .collect();
        let live = |meta: &kube::api::ObjectMeta| {
            meta.deletion_timestamp.is_none()
                && !terminating
                    .iter()
                    .any(|t| meta.namespace.as_ref() == Some(t))
        };
        let others = Api::<AuthProvider>::all(client.clone())
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|o| live(&o.metadata))
            .count()
            + Api::<OAuthClient>::all(client.clone())
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .filter(|o| live(&o.metadata))
                .count();
        anyhow::ensure!(
            others == 0,
            "the cluster already holds {others} AuthProviders and OAuthClients; delete them, or set SCALE_WATCH_NAMESPACES=1"
        );
    }
    let run = format!("scale-{:04x}", rand::random::<u16>());
    let namespaces: Vec<String> = (0..namespace_count).map(|i| format!("{run}-{i}")).collect();
    eprintln!("run {run}: {providers} AuthProviders, {clients} OAuthClients in {namespace_count} namespaces");

    // Namespaces with the dev database/Redis Secrets the samples reference.
    let db_secrets: Vec<Secret> = serde_yaml::Deserializer::from_str(&std::fs::read_to_string(
        repo_root().join("config/samples/dev-database.yaml"),
    )?)
    .map(|d| serde::Deserialize::deserialize(d).expect("dev-database.yaml"))
    .collect();
    for ns in &namespaces {
        let obj: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &obj)
            .await?;
        for s in &db_secrets {
            Api::<Secret>::namespaced(client.clone(), ns)
                .create(&PostParams::default(), s)
                .await?;
        }
    }

    let (admin, registrations) = admin_stub().await;
    let logs = std::env::temp_dir().join(format!("palisade-{run}"));
    std::fs::create_dir_all(&logs)?;
    let operator = Measured::start(&namespaces, &admin, &logs.join("operator.log"));
    while reqwest::get(format!("http://{}/readyz", operator.http))
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The custom resources, from the samples.
    let base: AuthProvider = sample("authprovider-dev.yaml");
    let client_samples: Vec<OAuthClient> = [
        "oauthclient-webapp.yaml",
        "oauthclient-spa.yaml",
        "oauthclient-machine.yaml",
    ]
    .iter()
    .map(|f| sample(f))
    .collect();
    let provider_objects: Vec<AuthProvider> = (0..providers)
        .map(|i| {
            let mut ap = base.clone();
            ap.metadata.name = Some(format!("p-{i}"));
            ap.metadata.namespace = Some(namespaces[i % namespace_count].clone());
            ap.spec.replicas = replicas as i32;
            ap
        })
        .collect();
    let client_objects: Vec<OAuthClient> = (0..clients)
        .map(|i| {
            let provider = i % providers.max(1);
            let mut oc = client_samples[i % client_samples.len()].clone();
            oc.metadata.name = Some(format!("c-{i}"));
            oc.metadata.namespace = Some(namespaces[provider % namespace_count].clone());
            oc.spec.provider_ref.name = format!("p-{provider}");
            oc
        })
        .collect();

    let provider_store = watched::<AuthProvider>(&client);
    let client_store = watched::<OAuthClient>(&client);
    provider_store.wait_until_ready().await?;
    client_store.wait_until_ready().await?;
    let writes_before = apiserver_writes_now(&client).await?;
    let start = Instant::now();
    create_all(&client, provider_objects).await?;
    create_all(&client, client_objects).await?;
    let created = start.elapsed();
    eprintln!("created the custom resources in {created:.1?}");
    let mut last_report = Instant::now();
    loop {
        let ready_providers = ready_count(&provider_store, &run, |ap: &AuthProvider| {
            let s = ap.status.as_ref()?;
            Some((s.observed_generation, s.is_ready()))
        });
        let ready_clients = ready_count(&client_store, &run, |oc: &OAuthClient| {
            let s = oc.status.as_ref()?;
            let ready = s
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            Some((s.observed_generation, ready))
        });
        if ready_providers == providers && ready_clients == clients {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < timeout,
            "not all Ready after {timeout:?}: {ready_providers}/{providers} providers, {ready_clients}/{clients} clients"
        );
        if last_report.elapsed() > Duration::from_secs(15) {
            let (rss, cpu) = operator.usage();
            eprintln!(
                "{:>5.0?}: {ready_providers}/{providers} providers and {ready_clients}/{clients} clients Ready; operator {rss:.1} MiB peak, {cpu:.1} s CPU",
                start.elapsed()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let all_ready = start.elapsed();
    let run_writes = difference(&apiserver_writes_now(&client).await?, &writes_before);
    let (peak_rss, cpu) = operator.usage();
    let metrics = operator.metrics().await;
    let requests = sum(&metrics, "palisade_operator_api_requests_total", &[]);
    let by_method: Vec<String> = ["GET", "LIST", "WATCH", "POST", "PUT", "PATCH", "DELETE"]
        .iter()
        .map(|m| {
            let n = sum(
                &metrics,
                "palisade_operator_api_requests_total",
                &[&format!("method=\"{m}\"")],
            );
            format!("{m} {n}")
        })
        .collect();
    let run_top_requests = top_requests(&metrics, 8);
    let writes = sum(&metrics, "palisade_operator_api_writes_total", &[])
        - sum(
            &metrics,
            "palisade_operator_api_writes_total",
            &["kind=\"Event\""],
        );
    let events = sum(
        &metrics,
        "palisade_operator_api_writes_total",
        &["kind=\"Event\""],
    );
    let reconciles = sum(&metrics, "palisade_operator_reconciles_total", &[]);
    let provider_reconciles = sum(
        &metrics,
        "palisade_operator_reconciles_total",
        &["authprovider"],
    );
    let managed = managed_objects(&client, &namespaces).await;
    drop(operator);

    // A full resync by a fresh operator, with nothing changed.
    let resync_start = Instant::now();
    let restarted = Measured::start(&namespaces, &admin, &logs.join("operator-restarted.log"));
    loop {
        let text = restarted.metrics().await;
        let p = sum(
            &text,
            "palisade_operator_reconciles_total",
            &["authprovider"],
        );
        let c = sum(
            &text,
            "palisade_operator_reconciles_total",
            &["oauthclient"],
        );
        if p >= providers as f64 && c >= clients as f64 {
            break;
        }
        anyhow::ensure!(
            resync_start.elapsed() < timeout,
            "the restarted operator did not reconcile everything"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let resynced = resync_start.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let resync_writes = restarted
        .sum("palisade_operator_api_writes_total", &[])
        .await
        - restarted
            .sum("palisade_operator_api_writes_total", &["kind=\"Event\""])
            .await;
    let resync_metrics = restarted.metrics().await;
    let resync_requests = sum(&resync_metrics, "palisade_operator_api_requests_total", &[]);
    let resync_top_requests = top_requests(&resync_metrics, 6);
    let (resync_rss, resync_cpu) = restarted.usage();
    // The restarted operator stays up until the cleanup is done: deleting an OAuthClient waits
    // for its finalizer.

    // The floor: as many objects as the run left, created directly at the same concurrency.
    let floor_ns = format!("{run}-floor");
    let obj: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": floor_ns}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &obj)
        .await?;
    let floor_count = providers + clients + managed;
    let config_maps: Vec<ConfigMap> = (0..floor_count)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("floor-{i}"), "namespace": floor_ns,
                    "labels": {"app.kubernetes.io/managed-by": "scale-bench"}},
                "data": {"payload": "x".repeat(512)}
            }))
            .unwrap()
        })
        .collect();
    let floor_start = Instant::now();
    create_all(&client, config_maps).await?;
    let floor = floor_start.elapsed();

    let objects = (providers + clients) as f64;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "## Operator scale ({})",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    println!();
    println!("Machine: {cores} cores; local control plane (kube-apiserver, etcd, controller-manager, scheduler, KWOK) on the same machine. Operator release build watching {}, default concurrency unless SCALE_OPERATOR_CONCURRENCY is set ({}). AuthProvider replicas: {replicas}.", if watch_namespaces() { "the run's namespaces (one watch per kind and namespace)" } else { "all namespaces" }, setting("SCALE_OPERATOR_CONCURRENCY", 0));
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!("| AuthProviders / OAuthClients / namespaces | {providers} / {clients} / {namespace_count} |");
    println!(
        "| custom resources created in | {:.1} s |",
        created.as_secs_f64()
    );
    println!("| all Ready after | {:.1} s |", all_ready.as_secs_f64());
    println!("| objects left (custom resources + operator-made) | {floor_count} ({managed} operator-made) |");
    println!("| write floor: {floor_count} ConfigMaps created directly, concurrency {CREATE_CONCURRENCY} | {:.1} s |", floor.as_secs_f64());
    println!(
        "| **ratio all-Ready / floor** (target ≤ 3) | **{:.2}** |",
        all_ready.as_secs_f64() / floor.as_secs_f64()
    );
    // Where the API server's writes came from, and what they cost at the floor's pace: a
    // write of any kind counted as one of the floor's small ConfigMaps, which is generous (a
    // Deployment or a pod status is larger). Everyone else's writes are those of the
    // controllers, the scheduler and KWOK for the pods, ReplicaSets and Jobs behind the
    // providers, and their Events.
    let all_writes: f64 = run_writes.values().sum();
    let operator_writes = sum(&metrics, "palisade_operator_api_writes_total", &[]);
    let others = all_writes - operator_writes - objects;
    let floor_count_f = floor_count as f64;
    println!(
        "| API server writes until all Ready (its `apiserver_request_total`) | {all_writes}: the operator {operator_writes} (Events included), this benchmark's creations {objects}, everyone else {others} |"
    );
    println!(
        "| API server writes by resource (most first) | {} |",
        largest(&run_writes, 10)
    );
    println!(
        "| the same writes at the floor's pace ({floor_count} in {:.1} s) | all: {:.1} s = **{:.2} × floor**; the least any operator must cause (the objects left, once each, plus everyone else's writes): {:.1} s = **{:.2} × floor** |",
        floor.as_secs_f64(),
        all_writes / floor_count_f * floor.as_secs_f64(),
        all_writes / floor_count_f,
        (floor_count_f + others) / floor_count_f * floor.as_secs_f64(),
        (floor_count_f + others) / floor_count_f,
    );
    println!(
        "| operator API requests | {requests} ({:.1} per custom resource; {}) |",
        requests / objects,
        by_method.join(", ")
    );
    println!("| operator requests by verb and resource (most first) | {run_top_requests} |");
    println!("| operator writes (without Events) | {writes} ({:.1} per custom resource); Events {events} |", writes / objects);
    println!(
        "| reconciles | {reconciles} (AuthProvider {provider_reconciles}, OAuthClient {}) |",
        reconciles - provider_reconciles
    );
    println!(
        "| admin API calls (registrations) | {} |",
        registrations.load(Ordering::Relaxed)
    );
    println!("| operator peak RSS (target < 100 MiB) | {peak_rss:.1} MiB |");
    println!("| operator CPU time | {cpu:.1} s |");
    println!("| full resync by a restarted operator, nothing changed | {:.1} s, {resync_requests} requests, **{resync_writes} writes** (target 0), peak RSS {resync_rss:.1} MiB, CPU {resync_cpu:.1} s |", resynced.as_secs_f64());
    println!("| full resync: requests by verb and resource (most first) | {resync_top_requests} |");
    println!();
    eprintln!("operator logs in {}", logs.display());

    if std::env::var("SCALE_KEEP").as_deref() != Ok("1") {
        let cleanup = Instant::now();
        // The floor's objects one by one: the namespace controller's single delete-collection of
        // 16,000 objects times out on this API server and is retried for many minutes.
        let floor_api = Api::<ConfigMap>::namespaced(client.clone(), &floor_ns);
        futures::stream::iter(0..floor_count)
            .map(|i| {
                let api = floor_api.clone();
                async move {
                    let _ = api
                        .delete(&format!("floor-{i}"), &DeleteParams::default())
                        .await;
                }
            })
            .buffer_unordered(CREATE_CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
        for ns in namespaces.iter().chain([&floor_ns]) {
            let _ = Api::<Namespace>::all(client.clone())
                .delete(ns, &DeleteParams::background())
                .await;
        }
        eprintln!("deleting the run's namespaces (the garbage collector takes a while)");
        for ns in namespaces.iter().chain([&floor_ns]) {
            while Api::<Namespace>::all(client.clone())
                .get_opt(ns)
                .await?
                .is_some()
                && cleanup.elapsed() < Duration::from_secs(900)
            {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        eprintln!("cleaned up in {:.0?}", cleanup.elapsed());
    }
    drop(restarted);
    anyhow::ensure!(
        resync_writes == 0.0,
        "a resync with nothing changed wrote {resync_writes} times"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const APISERVER: &str = r#"# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 7
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 5
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PUT",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="",verb="APPLY",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 100
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="GET",version="v1"} 50
apiserver_request_total_other{verb="POST"} 9
"#;

    #[test]
    fn only_writes_are_counted_by_resource_and_subresource() {
        let writes = apiserver_writes(APISERVER);
        assert_eq!(
            writes,
            BTreeMap::from([
                ("deployments".to_string(), 3.0),
                ("pods".to_string(), 7.0),
                ("pods/status".to_string(), 7.0),
            ])
        );
        let before = BTreeMap::from([("pods".to_string(), 7.0), ("deployments".to_string(), 1.0)]);
        assert_eq!(
            difference(&writes, &before),
            BTreeMap::from([
                ("deployments".to_string(), 2.0),
                ("pods/status".to_string(), 7.0),
            ])
        );
        assert_eq!(largest(&writes, 2), "pods 7, pods/status 7");
    }

    #[test]
    fn operator_requests_are_summed_by_method_and_resource() {
        let text = "palisade_operator_api_requests_total{method=\"GET\",resource=\"secrets\"} 4\n\
                    palisade_operator_api_requests_total{method=\"PATCH\",resource=\"authproviders/status\"} 9\n\
                    palisade_operator_api_requests_total{method=\"GET\",resource=\"secrets\"} 1\n";
        assert_eq!(
            top_requests(text, 5),
            "PATCH authproviders/status 9, GET secrets 5"
        );
    }
}
