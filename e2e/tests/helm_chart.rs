//! The Helm chart: it lints, renders restricted pods and least-privilege RBAC, refuses bad
//! values through `values.schema.json`, and passes a server-side dry run. Installed for real
//! into a throw-away namespace, its ServiceAccount's RBAC is exactly what the operator needs:
//! an operator process authenticated with that ServiceAccount's token reconciles the samples.
//! Then GitOps: applying the same manifests again changes nothing, and the operator never
//! writes spec fields.

use palisade_e2e::local_auth_server::LocalAuthServer;
use palisade_e2e::{
    client_credentials, cluster, eventually, free_port, helm_binary, install_crds, kubectl,
    kubectl_ok, postgres_available, psql, psql_ok, repo_root, Operator, TestNamespace,
};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

fn chart() -> String {
    repo_root().join("charts/palisade").display().to_string()
}

fn helm(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().expect("helm runs")
}

fn helm_ok(bin: &Path, args: &[&str]) -> String {
    let out = helm(bin, args);
    assert!(
        out.status.success(),
        "helm {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Renders the chart (release `t` in `namespace`) with `--set` values.
fn render(bin: &Path, namespace: &str, sets: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut args = vec!["template", "t", chart.as_str(), "-n", namespace];
    for s in sets {
        args.extend(["--set", s]);
    }
    let yaml = helm_ok(bin, &args);
    serde_yaml::Deserializer::from_str(&yaml)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

fn objects<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = objects(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

fn args_of(docs: &[Value]) -> Vec<String> {
    one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// `(apiGroup, resource) -> verbs` of a rule list, one entry per pair.
fn permissions(rules: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for rule in rules.as_array().unwrap() {
        let strings = |k: &str| -> Vec<String> {
            rule[k]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        };
        for group in strings("apiGroups") {
            for resource in strings("resources") {
                out.push((group.clone(), resource, strings("verbs")));
            }
        }
    }
    out
}

fn verbs(rules: &Value, group: &str, resource: &str) -> Vec<String> {
    permissions(rules)
        .into_iter()
        .filter(|(g, r, _)| g == group && r == resource)
        .flat_map(|(_, _, v)| v)
        .collect()
}

#[test]
fn chart_crds_are_the_generated_ones() {
    let root = repo_root();
    let names = |dir: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let (repo, chart) = (root.join("crds"), root.join("charts/palisade/crds"));
    assert_eq!(
        names(&repo),
        names(&chart),
        "charts/palisade/crds/ has other files than crds/"
    );
    for file in names(&repo) {
        assert!(
            std::fs::read(repo.join(&file)).unwrap() == std::fs::read(chart.join(&file)).unwrap(),
            "charts/palisade/crds/{file} differs from crds/{file}: cp crds/*.yaml charts/palisade/crds/"
        );
    }
}

#[test]
fn chart_lints_and_renders_a_restricted_least_privilege_operator() {
    let Some(bin) = helm_binary() else { return };
    let chart = chart();
    for extra in [&[][..], &["--set", "watchNamespaces={team-a,team-b}"][..]] {
        let mut args = vec!["lint", "--strict", chart.as_str()];
        args.extend(extra);
        let out = helm_ok(&bin, &args);
        assert!(out.contains("0 chart(s) failed"), "{out}");
    }

    // Default: cluster-wide, one replica, leader election on.
    let docs = render(&bin, "palisade-system", &[]);
    let deployment = one(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(container["ports"][0]["name"], "http");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(pod["serviceAccountName"], "t-palisade");
    let args = args_of(&docs);
    assert!(
        args.contains(&"--http-addr=0.0.0.0:8080".to_string()),
        "{args:?}"
    );
    assert!(args.contains(&"--leader-elect".to_string()), "{args:?}");
    assert!(
        args.contains(&"--lease-name=t-palisade".to_string()),
        "{args:?}"
    );
    assert!(
        !args.iter().any(|a| a.starts_with("--watch-namespace")),
        "{args:?}"
    );
    assert_eq!(
        one(&docs, "Service")["spec"]["ports"][0]["targetPort"],
        "http"
    );

    // RBAC: no wildcard anywhere, and exactly the verbs the operator uses.
    for kind in ["ClusterRole", "Role"] {
        for role in objects(&docs, kind) {
            for (g, r, v) in permissions(&role["rules"]) {
                assert!(
                    g != "*" && r != "*" && !v.iter().any(|v| v == "*"),
                    "wildcard in {kind}: {g}/{r} {v:?}"
                );
            }
        }
    }
    let cluster_rules = &one(&docs, "ClusterRole")["rules"];
    let expect = |g: &str, r: &str, v: &[&str]| {
        assert_eq!(verbs(cluster_rules, g, r), v, "verbs on {g}/{r}");
    };
    expect(
        "auth.palisade.dev",
        "authproviders",
        &["get", "list", "watch"],
    );
    expect(
        "auth.palisade.dev",
        "oauthclients",
        &["get", "list", "watch", "patch"],
    );
    expect("auth.palisade.dev", "authproviders/status", &["patch"]);
    expect(
        "",
        "secrets",
        &["get", "list", "watch", "create", "patch", "update"],
    );
    expect(
        "apps",
        "deployments",
        &["get", "list", "watch", "create", "patch"],
    );
    expect(
        "batch",
        "jobs",
        &["get", "list", "watch", "create", "delete"],
    );
    expect(
        "",
        "configmaps",
        &["get", "list", "watch", "create", "patch"],
    );
    expect("", "namespaces", &["get"]);
    expect("events.k8s.io", "events", &["create", "patch"]);
    expect("", "pods", &["list"]);
    assert!(
        verbs(cluster_rules, "", "pods/log").is_empty()
            && verbs(cluster_rules, "", "pods/exec").is_empty(),
        "no pod logs, no exec"
    );
    assert!(verbs(cluster_rules, "coordination.k8s.io", "leases").is_empty());
    let binding = one(&docs, "ClusterRoleBinding");
    assert_eq!(binding["subjects"][0]["name"], "t-palisade");
    assert_eq!(binding["subjects"][0]["namespace"], "palisade-system");
    // Leases only in the release namespace, get/patch only on the operator's own Lease.
    let roles = objects(&docs, "Role");
    assert_eq!(roles.len(), 1, "only the leader-election Role");
    assert_eq!(roles[0]["metadata"]["namespace"], "palisade-system");
    let lease_rules = roles[0]["rules"].as_array().unwrap();
    assert_eq!(
        lease_rules[1]["resourceNames"],
        serde_json::json!(["t-palisade"])
    );
    assert_eq!(lease_rules[1]["verbs"], serde_json::json!(["get", "patch"]));

    // Namespaced: a Role per watched namespace with the same rules, nothing cluster-wide but
    // reading those Namespace objects.
    let docs = render(
        &bin,
        "ops",
        &["watchNamespaces={team-a,team-b}", "replicaCount=2"],
    );
    let args = args_of(&docs);
    assert!(
        args.contains(&"--watch-namespace=team-a,team-b".to_string()),
        "{args:?}"
    );
    assert!(args.contains(&"--leader-elect".to_string()), "{args:?}");
    assert_eq!(
        one(&docs, "Deployment")["spec"]["strategy"]["type"],
        "Recreate"
    );
    let cluster_role = one(&docs, "ClusterRole");
    assert_eq!(
        permissions(&cluster_role["rules"]),
        [("".into(), "namespaces".into(), vec!["get".into()])]
    );
    assert_eq!(
        cluster_role["rules"][0]["resourceNames"],
        serde_json::json!(["team-a", "team-b"])
    );
    let mut namespaced: Vec<&Value> = objects(&docs, "Role")
        .into_iter()
        .filter(|r| r["metadata"]["namespace"] != "ops")
        .collect();
    namespaced.sort_by_key(|r| r["metadata"]["namespace"].as_str().unwrap().to_string());
    assert_eq!(namespaced.len(), 2);
    assert_eq!(namespaced[0]["metadata"]["namespace"], "team-a");
    let mut cluster_wide = permissions(cluster_rules);
    cluster_wide.retain(|(_, r, _)| r != "namespaces");
    assert_eq!(permissions(&namespaced[1]["rules"]), cluster_wide);
    let bindings = objects(&docs, "RoleBinding");
    assert!(bindings
        .iter()
        .all(|b| b["subjects"][0]["namespace"] == "ops"));

    // Without leader election: no flag, no Lease rules.
    let docs = render(&bin, "ops", &["leaderElection.enabled=false"]);
    assert!(!args_of(&docs).contains(&"--leader-elect".to_string()));
    assert!(objects(&docs, "Role").is_empty());
}

#[test]
fn alerts_use_metrics_that_exist() {
    let Some(bin) = helm_binary() else { return };
    let docs = render(
        &bin,
        "monitoring",
        &[
            "metrics.serviceMonitor.enabled=true",
            "metrics.authServerPodMonitor.enabled=true",
            "metrics.prometheusRule.enabled=true",
        ],
    );
    assert_eq!(
        one(&docs, "ServiceMonitor")["spec"]["endpoints"][0]["port"],
        "http-metrics"
    );
    assert_eq!(
        one(&docs, "PodMonitor")["spec"]["podMetricsEndpoints"][0]["port"],
        "admin"
    );
    let rule = one(&docs, "PrometheusRule");
    let rules: Vec<&Value> = rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    let names: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    for alert in [
        "PalisadeAuthProviderNotReady",
        "PalisadeRollbackPerformed",
        "PalisadeKeyRotationOverdue",
        "PalisadeAuthServerErrors",
        "PalisadeRateLimitSpike",
    ] {
        assert!(names.contains(&alert), "{alert} missing from {names:?}");
    }
    // Every metric an alert reads is registered by the operator or the auth-server.
    let operator = std::fs::read_to_string(repo_root().join("operator/src/metrics.rs")).unwrap();
    let server = std::fs::read_to_string(repo_root().join("auth-server/src/metrics.rs")).unwrap();
    let mut checked = 0;
    for r in &rules {
        let expr = r["expr"].as_str().unwrap();
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            let (source, name) = if let Some(n) = word.strip_prefix("palisade_operator_") {
                (&operator, n)
            } else if ["http_requests_total", "rate_limit_block_total"].contains(&word) {
                (&server, word)
            } else {
                continue;
            };
            let registered = name.strip_suffix("_total").unwrap_or(name);
            assert!(
                source.contains(&format!("\"{registered}\"")),
                "alert {} reads {word}, which is not registered",
                r["alert"]
            );
            checked += 1;
        }
    }
    assert!(checked >= 7, "only {checked} metric references found");
}

#[test]
fn bad_values_are_rejected_with_a_clear_message() {
    let Some(bin) = helm_binary() else { return };
    let chart = chart();
    for (set, says) in [
        (
            "replicaCount=0",
            "at '/replicaCount': minimum: got 0, want 1",
        ),
        ("log.format=xml", "value must be one of 'json', 'text'"),
        (
            "watchNamespaces={Team_A}",
            "at '/watchNamespaces/0': 'Team_A' does not match",
        ),
        ("replicas=3", "additional properties 'replicas' not allowed"),
        (
            "securityContext.allowPrivilegeEscalation=true",
            "at '/securityContext/allowPrivilegeEscalation'",
        ),
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy'"),
    ] {
        let out = helm(&bin, &["template", "t", &chart, "--set", set]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set} was accepted");
        assert!(
            stderr.contains("values don't meet the specifications of the schema")
                && stderr.contains(says),
            "{set}: expected {says:?} in:\n{stderr}"
        );
    }
}

#[tokio::test]
async fn chart_and_every_sample_pass_a_server_side_dry_run() {
    let Some(_kube) = cluster().await else { return };
    let Some(bin) = helm_binary() else { return };
    install_crds();
    let ns = TestNamespace::new(&_kube, "helm-dry").await;
    let chart = chart();
    let set = format!("watchNamespaces={{{}}}", ns.name);
    let rendered = helm_ok(
        &bin,
        &[
            "template",
            "dry",
            &chart,
            "-n",
            &ns.name,
            "--include-crds",
            "--set",
            &set,
        ],
    );
    let file = std::env::temp_dir().join(format!("palisade-chart-{}.yaml", ns.name));
    std::fs::write(&file, rendered).unwrap();
    let out = kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "-f",
        file.to_str().unwrap(),
    ]);
    for object in [
        "customresourcedefinition.apiextensions.k8s.io/authproviders.auth.palisade.dev",
        "deployment.apps/dry-palisade",
        "role.rbac.authorization.k8s.io/dry-palisade",
        "clusterrole.rbac.authorization.k8s.io/dry-palisade",
        "serviceaccount/dry-palisade",
        "service/dry-palisade-metrics",
    ] {
        assert!(
            out.contains(&format!("{object} serverside-applied (server dry run)")),
            "{object} missing from:\n{out}"
        );
    }
    let _ = std::fs::remove_file(file);

    // The schema guards `helm install` too, before anything is created.
    let out = helm(
        &bin,
        &[
            "install",
            "bad",
            &chart,
            "-n",
            &ns.name,
            "--set",
            "replicaCount=-1",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bad value was installed");
    assert!(
        stderr.contains("at '/replicaCount': minimum: got -1, want 1"),
        "{stderr}"
    );
    assert!(
        !kubectl(&["get", "deployment", "-n", &ns.name, "bad-palisade"])
            .status
            .success()
    );

    let samples = repo_root().join("config/samples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&samples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "samples: {files:?}");
    for f in &files {
        let out = kubectl_ok(&[
            "apply",
            "--server-side",
            "--dry-run=server",
            "-n",
            &ns.name,
            "-f",
            f.to_str().unwrap(),
        ]);
        assert!(
            out.contains("serverside-applied (server dry run)"),
            "{f:?}: {out}"
        );
    }
}

/// `helm uninstall` when dropped, so cluster-scoped objects never outlive the test.
struct Release {
    helm: PathBuf,
    name: String,
    namespace: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = helm(
            &self.helm,
            &[
                "uninstall",
                &self.name,
                "-n",
                &self.namespace,
                "--wait=false",
            ],
        );
    }
}

/// Removes the OAuthClients' finalizers when dropped (before the namespace goes), so a failed
/// test whose operator is gone does not leave its namespace Terminating forever.
struct ReleaseClients(String);

impl Drop for ReleaseClients {
    fn drop(&mut self) {
        let out = kubectl(&["get", "oc", "-n", &self.0, "-o", "name"]);
        for oc in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = kubectl(&[
                "patch",
                "-n",
                &self.0,
                oc,
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ]);
        }
        let _ =
            std::fs::remove_dir_all(std::env::temp_dir().join(format!("palisade-helm-{}", self.0)));
    }
}

/// Fails at once with the refused requests if the operator's log shows any.
fn assert_nothing_forbidden(operator: &Operator) {
    let log = std::fs::read_to_string(&operator.log).unwrap_or_default();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("forbidden"))
        .take(5)
        .collect();
    assert!(
        refused.is_empty(),
        "the chart's RBAC refused something the operator does:\n{}",
        refused.join("\n")
    );
}

/// A database made for one test, dropped when the guard is.
struct Database(String);

impl Drop for Database {
    fn drop(&mut self) {
        let _ = psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0));
    }
}

/// A kubeconfig that reaches the same API server as the test's, as ServiceAccount `sa`.
fn service_account_kubeconfig(ns: &str, sa: &str, path: &Path) {
    let token = kubectl_ok(&["create", "token", sa, "-n", ns, "--duration=1h"]);
    let current: Value = serde_json::from_str(&kubectl_ok(&[
        "config", "view", "--raw", "--minify", "-o", "json",
    ]))
    .unwrap();
    let cluster = current["clusters"][0]["cluster"].clone();
    assert!(
        cluster["server"].as_str().unwrap().contains("127.0.0.1"),
        "the test cluster is on 127.0.0.1: {cluster}"
    );
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": sa, "user": {"token": token.trim()}}],
        "contexts": [{"name": sa, "context": {"cluster": "local", "user": sa, "namespace": ns}}],
        "current-context": sa,
    });
    std::fs::write(path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

/// `(resourceVersion, generation)` of each object, as kubectl sees it.
fn versions(ns: &str, objects: &[&str]) -> Vec<String> {
    objects
        .iter()
        .map(|o| {
            kubectl_ok(&[
                "get",
                "-n",
                ns,
                o,
                "-o",
                "jsonpath={.metadata.resourceVersion}/{.metadata.generation}",
            ])
        })
        .collect()
}

fn oauth_client_ready(ns: &str, name: &str) -> Option<String> {
    let out = kubectl(&[
        "get",
        "-n",
        ns,
        &format!("oc/{name}"),
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}:{.status.conditions[?(@.type==\"Ready\")].reason}",
    ]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn secret_keys(ns: &str, name: &str) -> Vec<String> {
    let out = kubectl(&["get", "secret", "-n", ns, name, "-o", "json"]);
    if !out.status.success() {
        return vec![];
    }
    let secret: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut keys: Vec<String> = secret["data"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

fn secret_value(ns: &str, name: &str, key: &str) -> String {
    use base64::Engine;
    let b64 = kubectl_ok(&[
        "get",
        "secret",
        "-n",
        ns,
        name,
        "-o",
        &format!("jsonpath={{.data.{key}}}"),
    ]);
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn installed_chart_rbac_suffices_for_the_operator_and_reapplying_samples_changes_nothing() {
    let Some(kube) = cluster().await else { return };
    let Some(bin) = helm_binary() else { return };
    if !postgres_available() {
        return;
    }
    install_crds();
    let ns = TestNamespace::new(&kube, "helm").await;
    let name = format!("pal{:05x}", rand::random::<u32>() & 0xf_ffff);
    let fullname = format!("{name}-palisade");

    // Install for real, watching only this namespace: Role + RoleBinding here, the Lease Role,
    // the Namespace-read ClusterRole limited to this namespace.
    let chart = chart();
    let set = format!("watchNamespaces={{{}}}", ns.name);
    let _release = Release {
        helm: bin.clone(),
        name: name.clone(),
        namespace: ns.name.clone(),
    };
    let out = helm_ok(
        &bin,
        &["install", &name, &chart, "-n", &ns.name, "--set", &set],
    );
    assert!(out.contains("STATUS: deployed"), "{out}");
    kubectl_ok(&["get", "-n", &ns.name, "role", &fullname]);
    kubectl_ok(&["get", "-n", &ns.name, "deployment", &fullname]);

    // The operator runs locally, as the chart's ServiceAccount and nothing more.
    let dir = std::env::temp_dir().join(format!("palisade-helm-{}", ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig.json");
    service_account_kubeconfig(&ns.name, &fullname, &kubeconfig);
    let whoami = Command::new(std::env::var("PALISADE_KUBECTL").unwrap())
        .args([
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&whoami.stdout),
        format!("system:serviceaccount:{}:{fullname}", ns.name)
    );

    // The samples, pointed at a fresh database and the local auth-server's port.
    let database = Database(format!("palisade_helm_{:08x}", rand::random::<u32>()));
    psql_ok(&format!("CREATE DATABASE {}", database.0));
    let (public, admin) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let issuer = format!("http://{public}");
    let samples = repo_root().join("config/samples");
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    for f in [
        "dev-database.yaml",
        "authprovider-dev.yaml",
        "oauthclient-webapp.yaml",
        "oauthclient-spa.yaml",
        "oauthclient-machine.yaml",
    ] {
        let text = std::fs::read_to_string(samples.join(f))
            .unwrap()
            .replace("http://127.0.0.1:8080", &issuer)
            .replace(
                "127.0.0.1:5432/palisade",
                &format!("127.0.0.1:5432/{}", database.0),
            );
        std::fs::write(manifests.join(f), text).unwrap();
    }
    let manifests = manifests.to_str().unwrap().to_string();
    let operator = Operator::start_with_env(
        &ns.name,
        &[
            "--leader-elect",
            "--lease-name",
            &fullname,
            "--admin-endpoint-override",
            &format!("http://{admin}"),
        ],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    let _clients = ReleaseClients(ns.name.clone());
    kubectl_ok(&["apply", "--server-side", "-n", &ns.name, "-f", &manifests]);
    eventually("AuthProvider dev Ready", WAIT, || async {
        assert_nothing_forbidden(&operator);
        let ready = kubectl_ok(&[
            "get",
            "-n",
            &ns.name,
            "ap/dev",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        (ready == "True").then_some(())
    })
    .await;
    let _server = LocalAuthServer::start(&kube, &ns.name, "dev", &public, &admin, WAIT / 30)
        .await
        .expect("local auth-server starts");
    for client in ["webapp", "spa", "machine"] {
        eventually(
            &format!("OAuthClient {client} registered"),
            WAIT,
            || async {
                assert_nothing_forbidden(&operator);
                (oauth_client_ready(&ns.name, client)? == "True:Registered").then_some(())
            },
        )
        .await;
    }
    assert_eq!(
        secret_keys(&ns.name, "webapp-oauth"),
        ["client_id", "client_secret", "discovery_url", "issuer"]
    );
    assert_eq!(
        secret_keys(&ns.name, "spa-oauth"),
        ["client_id", "discovery_url", "issuer"]
    );
    let token = client_credentials(
        &issuer,
        &secret_value(&ns.name, "machine-oauth", "client_id"),
        &secret_value(&ns.name, "machine-oauth", "client_secret"),
        Some("api.read"),
    )
    .await;
    assert_eq!(token.status(), 200, "the machine client is registered");
    let holder = kubectl_ok(&[
        "get",
        "lease",
        "-n",
        &ns.name,
        &fullname,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert!(!holder.is_empty(), "the operator holds the chart's Lease");
    assert_nothing_forbidden(&operator);
    assert_eq!(
        operator
            .counter("palisade_operator_reconcile_errors_total", "api_403")
            .await,
        Some(0.0)
    );
    assert!(
        operator.metrics().await.unwrap().contains(&format!(
            "palisade_operator_authprovider_ready{{namespace=\"{}\",name=\"dev\"}} 1",
            ns.name
        )),
        "the readiness gauge the NotReady alert reads"
    );

    // GitOps: once settled, applying the same manifests again changes nothing at all.
    let watched = [
        "authprovider/dev",
        "oauthclient/webapp",
        "oauthclient/spa",
        "oauthclient/machine",
        "deployment/dev",
        "secret/webapp-oauth",
    ];
    let settled = eventually("objects to settle", WAIT, || async {
        let before = versions(&ns.name, &watched);
        tokio::time::sleep(Duration::from_secs(4)).await;
        (versions(&ns.name, &watched) == before).then_some(before)
    })
    .await;
    let out = kubectl_ok(&["apply", "--server-side", "-n", &ns.name, "-f", &manifests]);
    assert!(
        out.contains("authprovider.auth.palisade.dev/dev serverside-applied"),
        "{out}"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        versions(&ns.name, &watched),
        settled,
        "re-applying unchanged manifests rewrote something"
    );
    let diff = kubectl(&["diff", "--server-side", "-n", &ns.name, "-f", &manifests]);
    assert!(
        diff.status.success() && diff.stdout.is_empty(),
        "kubectl diff is not empty: {}{}",
        String::from_utf8_lossy(&diff.stdout),
        String::from_utf8_lossy(&diff.stderr)
    );

    // The operator owns only status (and the OAuthClient finalizer), never spec.
    for object in watched.iter().take(4) {
        let live: Value = serde_json::from_str(&kubectl_ok(&[
            "get",
            "-n",
            &ns.name,
            object,
            "-o",
            "json",
            "--show-managed-fields",
        ]))
        .unwrap();
        let managed = live["metadata"]["managedFields"].as_array().unwrap();
        let mut operator_entries = 0;
        for entry in managed {
            let fields = entry["fieldsV1"].as_object().unwrap();
            if entry["manager"] == "kubectl" {
                assert_eq!(entry["operation"], "Apply", "{object}: {entry}");
                continue;
            }
            operator_entries += 1;
            assert!(
                !fields.contains_key("f:spec"),
                "{object}: {} writes spec fields: {entry}",
                entry["manager"]
            );
            for (key, value) in fields {
                match key.as_str() {
                    "f:status" => assert_eq!(entry["subresource"], "status", "{entry}"),
                    "f:metadata" => {
                        let meta: Vec<&String> = value.as_object().unwrap().keys().collect();
                        assert_eq!(meta, ["f:finalizers"], "{object}: {entry}");
                    }
                    other => panic!("{object}: operator manages {other}: {entry}"),
                }
            }
        }
        assert!(
            operator_entries > 0,
            "{object}: no status written by the operator"
        );
    }
    // Deleting the clients while the operator runs exercises the finalizer path's rights too.
    kubectl_ok(&[
        "delete",
        "-n",
        &ns.name,
        "oc",
        "webapp",
        "spa",
        "machine",
        "--timeout=60s",
    ]);
    assert_nothing_forbidden(&operator);
}
