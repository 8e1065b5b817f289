//! Helpers for the end-to-end tests: reach the local control plane started by
//! `e2e/cluster/up`, make throw-away namespaces, apply manifests with the matching kubectl, and
//! run the operator binary. Everything talks to 127.0.0.1 only.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::Client;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
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
