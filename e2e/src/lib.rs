//! Helpers for the end-to-end tests: reach the local control plane started by
//! `e2e/cluster/up`, make throw-away namespaces, apply manifests with the matching kubectl, and
//! run the operator binary. Everything talks to 127.0.0.1 only.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::Client;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The repository root. Read from the environment `cargo test` sets at run time, not baked in
/// at compile time: a test binary reused from a shared target directory by a checkout at another
/// path must read that checkout's files.
pub fn repo_root() -> PathBuf {
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    Path::new(&manifest_dir)
        .parent()
        .expect("e2e sits in the repo")
        .to_path_buf()
}

/// A client for the local cluster, or `None` (test skipped) when no cluster is configured.
/// With `PALISADE_REQUIRE_CLUSTER=1` a missing cluster fails the test instead.
pub async fn cluster() -> Option<Client> {
    let required = std::env::var("PALISADE_REQUIRE_CLUSTER").as_deref() == Ok("1");
    if std::env::var("KUBECONFIG").is_err() || std::env::var("PALISADE_KUBECTL").is_err() {
        assert!(!required, "PALISADE_REQUIRE_CLUSTER=1 but KUBECONFIG/PALISADE_KUBECTL are not set: run e2e/cluster/up and eval \"$(e2e/cluster/env)\"");
        eprintln!(
            "skipping: no local cluster (run e2e/cluster/up and eval \"$(e2e/cluster/env)\")"
        );
        return None;
    }
    let client = Client::try_default().await.expect("kubeconfig loads");
    match client.apiserver_version().await {
        Ok(_) => Some(client),
        Err(e) => {
            assert!(!required, "local cluster unreachable: {e}");
            eprintln!("skipping: local cluster unreachable: {e}");
            None
        }
    }
}

/// Runs the cluster's kubectl with `args`.
pub fn kubectl(args: &[&str]) -> Output {
    let bin =
        std::env::var("PALISADE_KUBECTL").expect("PALISADE_KUBECTL is set by e2e/cluster/env");
    Command::new(bin).args(args).output().expect("kubectl runs")
}

/// Runs kubectl and returns stdout, failing the test with stderr when it fails.
pub fn kubectl_ok(args: &[&str]) -> String {
    let out = kubectl(args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The helm client built by `e2e/cluster/build`: `$PALISADE_HELM`, else the cached binary of
/// the version pinned in `e2e/cluster/versions.sh`. `None` (test skipped) when neither exists;
/// with `PALISADE_REQUIRE_CLUSTER=1` that fails the test instead.
pub fn helm_binary() -> Option<PathBuf> {
    let path = match std::env::var_os("PALISADE_HELM") {
        Some(p) => PathBuf::from(p),
        None => {
            let versions = std::fs::read_to_string(repo_root().join("e2e/cluster/versions.sh"))
                .expect("versions.sh");
            let version = versions
                .lines()
                .find_map(|l| l.strip_prefix("HELM_VERSION="))
                .and_then(|v| v.split_whitespace().next())
                .expect("HELM_VERSION in versions.sh");
            let cache = std::env::var_os("PALISADE_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/palisade")
                });
            cache.join(format!("bin/helm-{version}/helm"))
        }
    };
    if path.exists() {
        return Some(path);
    }
    let required = std::env::var("PALISADE_REQUIRE_CLUSTER").as_deref() == Ok("1");
    assert!(
        !required,
        "helm not found at {}: run e2e/cluster/build",
        path.display()
    );
    eprintln!(
        "skipping: helm not found at {} (run e2e/cluster/build)",
        path.display()
    );
    None
}

/// Installs (server-side applies) the CRDs from `crds/` and waits until they are served.
pub fn install_crds() {
    let crds = repo_root().join("crds");
    kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        crds.to_str().unwrap(),
    ]);
    kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/authproviders.auth.palisade.dev",
        "crd/oauthclients.auth.palisade.dev",
        "--timeout=60s",
    ]);
}

/// A namespace created for one test and deleted when dropped.
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    /// Creates `<prefix>-<random>`.
    pub async fn new(client: &Client, prefix: &str) -> Self {
        let name = format!("{prefix}-{:06x}", rand::random::<u32>() & 0xff_ffff);
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace created");
        TestNamespace { name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // kubectl, not the async client: Drop may run while the test's runtime is unwinding.
        let _ = kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
        // The namespace waits for its OAuthClients' finalizer, which only an operator removes,
        // and the test's operator is usually gone by now: release them, as docs/operations.md
        // ("Uninstall") tells a user to, so that no namespace stays Terminating.
        let clients = kubectl(&["get", "oauthclients", "-n", &self.name, "-o", "name"]);
        for client in String::from_utf8_lossy(&clients.stdout).lines() {
            let _ = kubectl(&[
                "patch",
                client,
                "-n",
                &self.name,
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ]);
        }
    }
}

/// Polls `check` until it returns `Some`, or fails after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A palisade-operator process run against the local cluster; killed when dropped.
pub struct Operator {
    child: std::process::Child,
    pub http: String,
    pub log: PathBuf,
}

impl Operator {
    /// Path of the operator binary built next to this test binary.
    pub fn binary() -> PathBuf {
        let exe = std::env::current_exe().expect("test binary path");
        let dir = exe
            .parent()
            .and_then(|d| d.parent())
            .expect("target/<profile>");
        let bin = dir.join("palisade-operator");
        assert!(
            bin.exists(),
            "{} missing: build it with `cargo build -p palisade-operator`",
            bin.display()
        );
        bin
    }

    /// Starts the operator watching `namespace` with extra `args`.
    pub fn start(namespace: &str, args: &[&str]) -> Operator {
        Self::start_with_env(namespace, args, &[])
    }

    /// Like [`Operator::start`], with extra environment variables (e.g. another KUBECONFIG).
    pub fn start_with_env(namespace: &str, args: &[&str], envs: &[(&str, &str)]) -> Operator {
        let port = free_port();
        let http = format!("127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("palisade-operator-{namespace}-{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(Self::binary())
            .args([
                "--watch-namespace",
                namespace,
                "--operator-namespace",
                namespace,
                "--http-addr",
                &http,
                "--log-format",
                "json",
                // Re-register clients often, so tests see a wiped database heal quickly.
                "--client-resync-seconds",
                "3",
            ])
            .args(args)
            .env(
                "PALISADE_LOG_LEVEL",
                "info,palisade_operator=debug,kube=warn",
            )
            .envs(envs.iter().copied())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("operator starts");
        Operator { child, http, log }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The operator's metrics page, or `None` while it is not serving.
    pub async fn metrics(&self) -> Option<String> {
        reqwest::get(format!("http://{}/metrics", self.http))
            .await
            .ok()?
            .text()
            .await
            .ok()
    }

    /// Sum of a counter family (all label sets), optionally only lines containing `filter`.
    pub async fn counter(&self, name: &str, filter: &str) -> Option<f64> {
        let text = self.metrics().await?;
        Some(
            text.lines()
                .filter(|l| l.starts_with(name) && l.contains(filter))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
        )
    }

    /// Mutating API requests made so far, excluding Events.
    pub async fn writes(&self) -> Option<f64> {
        let text = self.metrics().await?;
        Some(
            text.lines()
                .filter(|l| {
                    l.starts_with("palisade_operator_api_writes_total")
                        && !l.contains("kind=\"Event\"")
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
        )
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `sql` with psql against database `palisade` of the PostgreSQL that `scripts/deps` runs.
pub fn psql(sql: &str) -> Output {
    Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "palisade",
            "-d",
            "palisade",
            "-qAtc",
            sql,
        ])
        .env("PGPASSWORD", "palisade")
        .output()
        .expect("psql runs")
}

/// Runs psql and returns its unaligned output, failing the test with stderr when it fails.
pub fn psql_ok(sql: &str) -> String {
    let out = psql(sql);
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether the PostgreSQL of `scripts/deps` is up; tests that need it skip when it is not, and
/// fail instead with `PALISADE_REQUIRE_SERVICES=1`.
pub fn postgres_available() -> bool {
    if std::env::var("PALISADE_REQUIRE_SERVICES").as_deref() == Ok("1") {
        return true;
    }
    let up = Command::new("pg_isready")
        .args(["-h", "127.0.0.1"])
        .status()
        .is_ok_and(|s| s.success());
    if !up {
        eprintln!("skipping: PostgreSQL is not running (scripts/deps)");
    }
    up
}

/// Every namespaced object the operator makes, listed by label
/// `app.kubernetes.io/managed-by=palisade-operator` in `namespace`, across all the kinds it
/// writes.
pub async fn operator_made_objects(
    client: &Client,
    namespace: &str,
) -> Vec<kube::api::DynamicObject> {
    use kube::api::{DynamicObject, ListParams};
    use kube::discovery::ApiResource;
    const KINDS: [(&str, &str, &str, &str); 10] = [
        ("apps", "v1", "Deployment", "deployments"),
        ("", "v1", "Service", "services"),
        ("", "v1", "Secret", "secrets"),
        ("", "v1", "ConfigMap", "configmaps"),
        ("", "v1", "ServiceAccount", "serviceaccounts"),
        ("batch", "v1", "Job", "jobs"),
        (
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
        ),
        (
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
        ),
        (
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
        ),
        ("networking.k8s.io", "v1", "Ingress", "ingresses"),
    ];
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=palisade-operator");
    let mut found = Vec::new();
    for (group, version, kind, plural) in KINDS {
        let resource = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: if group.is_empty() {
                version.into()
            } else {
                format!("{group}/{version}")
            },
            kind: kind.into(),
            plural: plural.into(),
        };
        let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource);
        let mut items = api
            .list(&managed)
            .await
            .expect("list operator-made objects")
            .items;
        for item in &mut items {
            item.types = Some(kube::api::TypeMeta {
                api_version: resource.api_version.clone(),
                kind: kind.into(),
            });
        }
        found.extend(items);
    }
    found
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub mod hygiene;
pub mod local_auth_server;
pub mod sign_in;

/// Path of a file in `config/samples/`, as a string for kubectl.
pub fn sample(file: &str) -> String {
    repo_root()
        .join("config/samples")
        .join(file)
        .to_str()
        .expect("UTF-8 path")
        .to_string()
}

/// Applies the dev sample: its database/Redis Secrets and AuthProvider `dev`.
pub fn apply_dev_provider(ns: &str) {
    kubectl_ok(&[
        "apply",
        "--server-side",
        "-n",
        ns,
        "-f",
        &sample("dev-database.yaml"),
        "-f",
        &sample("authprovider-dev.yaml"),
    ]);
}

/// The dev sample AuthProvider in one namespace, reconciled by its own operator and served by
/// a local auth-server on free 127.0.0.1 ports (the issuer URL is rewritten to match).
pub struct LocalProvider {
    pub issuer: String,
    /// Admin API address, `127.0.0.1:<port>`.
    pub admin: String,
    pub operator: Operator,
    pub server: local_auth_server::LocalAuthServer,
}

impl LocalProvider {
    /// The operator's and the auth-server's log files.
    pub fn logs(&self) -> Vec<PathBuf> {
        vec![self.operator.log.clone(), self.server.log()]
    }

    /// Applies the sample with `extra_spec` merged into its spec, waits until it is Ready and
    /// its Deployment carries the issuer, then starts the auth-server. Mounted Secrets are
    /// re-synced every `key_sync`, like the kubelet.
    pub async fn start(
        client: &Client,
        ns: &str,
        mut extra_spec: serde_json::Value,
        key_sync: Duration,
    ) -> LocalProvider {
        use k8s_openapi::api::apps::v1::Deployment;
        let (public, admin) = (
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
        );
        let issuer = format!("http://{public}");
        let operator = Operator::start(
            ns,
            &["--admin-endpoint-override", &format!("http://{admin}")],
        );
        apply_dev_provider(ns);
        extra_spec["issuer"] = issuer.clone().into();
        let patch = serde_json::json!({ "spec": extra_spec });
        Api::<palisade_operator::crd::AuthProvider>::namespaced(client.clone(), ns)
            .patch(
                "dev",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(patch),
            )
            .await
            .expect("patch the sample AuthProvider");
        kubectl_ok(&[
            "wait",
            "-n",
            ns,
            "--for=condition=Ready",
            "ap/dev",
            "--timeout=60s",
        ]);
        let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
        eventually(
            "the Deployment to carry the issuer",
            Duration::from_secs(60),
            || async {
                let env = deployments
                    .get("dev")
                    .await
                    .ok()?
                    .spec?
                    .template
                    .spec?
                    .containers[0]
                    .env
                    .clone()?;
                env.iter()
                    .any(|e| e.value.as_deref() == Some(issuer.as_str()))
                    .then_some(())
            },
        )
        .await;
        let server =
            local_auth_server::LocalAuthServer::start(client, ns, "dev", &public, &admin, key_sync)
                .await
                .expect("local auth-server starts");
        LocalProvider {
            issuer,
            admin,
            operator,
            server,
        }
    }
}

/// A client_credentials token request with `client_secret_post` credentials.
pub async fn client_credentials(
    issuer: &str,
    id: &str,
    secret: &str,
    scope: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .form(&form)
        .send()
        .await
        .expect("token endpoint answers")
}
