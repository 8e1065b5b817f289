//! OAuthClients end to end: the operator registers the samples with a provider whose
//! auth-server runs locally (configured from the rendered Deployment), each application's
//! Secret works against the issuer, a wiped database heals at the next resync, a deleted client
//! is refused, and a namespace outside `clientNamespaces` is turned away.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use palisade_e2e::local_auth_server::LocalAuthServer;
use palisade_e2e::{
    cluster, eventually, free_port, install_crds, kubectl_ok, repo_root, Operator, TestNamespace,
};
use palisade_operator::crd::{AuthProvider, OAuthClient};
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

async fn secret(client: &Client, ns: &str, name: &str) -> BTreeMap<String, String> {
    let s = Api::<Secret>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap();
    s.data
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect()
}

async fn client_credentials(issuer: &str, id: &str, secret: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", "api.read"),
        ])
        .send()
        .await
        .unwrap()
}

async fn ready_reason(client: &Client, ns: &str, name: &str) -> Option<String> {
    let oc = Api::<OAuthClient>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .ok()?;
    oc.status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| format!("{}:{}", c.status, c.reason))
}

fn psql(sql: &str) {
    let out = std::process::Command::new("psql")
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
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn sample_clients_register_get_tokens_heal_and_deregister() {
    let Some(kube) = cluster().await else { return };
    if std::env::var("PALISADE_REQUIRE_SERVICES").as_deref() != Ok("1")
        && std::process::Command::new("pg_isready")
            .args(["-h", "127.0.0.1"])
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
    {
        eprintln!("skipping: PostgreSQL is not running (scripts/deps)");
        return;
    }
    install_crds();
    let ns = TestNamespace::new(&kube, "clients").await;
    let (public, admin) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let issuer = format!("http://{public}");
    let override_url = format!("http://{admin}");
    let _operator = Operator::start(&ns.name, &["--admin-endpoint-override", &override_url]);

    let samples = repo_root().join("config/samples");
    let sample = |f: &str| samples.join(f).to_str().unwrap().to_string();
    kubectl_ok(&[
        "apply",
        "--server-side",
        "-n",
        &ns.name,
        "-f",
        &sample("dev-database.yaml"),
        "-f",
        &sample("authprovider-dev.yaml"),
    ]);
    Api::<AuthProvider>::namespaced(kube.clone(), &ns.name)
        .patch(
            "dev",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"issuer": issuer}})),
        )
        .await
        .unwrap();
    kubectl_ok(&[
        "wait",
        "-n",
        &ns.name,
        "--for=condition=Ready",
        "ap/dev",
        "--timeout=60s",
    ]);
    eventually("the Deployment to carry the new issuer", WAIT, || async {
        let d = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(kube.clone(), &ns.name)
            .get("dev")
            .await
            .ok()?;
        let env = d.spec?.template.spec?.containers[0].env.clone()?;
        env.iter()
            .any(|e| e.value.as_deref() == Some(issuer.as_str()))
            .then_some(())
    })
    .await;
    let _server = LocalAuthServer::start(
        &kube,
        &ns.name,
        "dev",
        &public,
        &admin,
        Duration::from_secs(2),
    )
    .await
    .unwrap();

    for f in [
        "oauthclient-webapp.yaml",
        "oauthclient-spa.yaml",
        "oauthclient-machine.yaml",
    ] {
        kubectl_ok(&["apply", "--server-side", "-n", &ns.name, "-f", &sample(f)]);
    }
    for name in ["webapp", "spa", "machine"] {
        eventually(&format!("{name} Registered"), WAIT, || async {
            (ready_reason(&kube, &ns.name, name).await? == "True:Registered").then_some(())
        })
        .await;
    }

    // Each application's Secret has what it needs, and only that.
    let webapp = secret(&kube, &ns.name, "webapp-oauth").await;
    assert_eq!(webapp["issuer"], issuer);
    assert_eq!(
        webapp["discovery_url"],
        format!("{issuer}/.well-known/openid-configuration")
    );
    assert_eq!(webapp["client_secret"].len(), 43);
    let spa = secret(&kube, &ns.name, "spa-oauth").await;
    assert!(
        !spa.contains_key("client_secret"),
        "public clients get no secret"
    );
    let machine = secret(&kube, &ns.name, "machine-oauth").await;

    // The machine client gets a token from the running issuer with its Secret's credentials.
    let resp = client_credentials(&issuer, &machine["client_id"], &machine["client_secret"]).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "api.read");
    // A wrong secret is refused.
    assert_eq!(
        client_credentials(&issuer, &machine["client_id"], "wrong")
            .await
            .status(),
        401
    );

    // A spec change re-registers: the provider sees the new redirect URIs.
    Api::<OAuthClient>::namespaced(kube.clone(), &ns.name)
        .patch(
            "webapp",
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"spec": {"redirectUris": ["https://new.example.com/cb"]}}),
            ),
        )
        .await
        .unwrap();
    let token = kubectl_ok(&[
        "get",
        "secret",
        "-n",
        &ns.name,
        "dev-internal",
        "-o",
        "jsonpath={.data.admin-token}",
    ]);
    let token = String::from_utf8(base64_decode(&token)).unwrap();
    let http = reqwest::Client::new();
    eventually("the new redirect URIs at the provider", WAIT, || async {
        let reg: serde_json::Value = http
            .get(format!(
                "http://{admin}/admin/clients/{}",
                webapp["client_id"]
            ))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (reg["redirectUris"] == serde_json::json!(["https://new.example.com/cb"])).then_some(())
    })
    .await;

    // A wiped database heals at the next resync.
    psql("TRUNCATE clients");
    assert_eq!(
        client_credentials(&issuer, &machine["client_id"], &machine["client_secret"])
            .await
            .status(),
        401
    );
    eventually(
        "the resync to re-register the machine client",
        WAIT,
        || async {
            (client_credentials(&issuer, &machine["client_id"], &machine["client_secret"])
                .await
                .status()
                == 200)
                .then_some(())
        },
    )
    .await;

    // Deleting the OAuthClient deregisters it (finalizer) and removes its Secret.
    kubectl_ok(&["delete", "oc", "-n", &ns.name, "machine", "--timeout=60s"]);
    assert_eq!(
        client_credentials(&issuer, &machine["client_id"], &machine["client_secret"])
            .await
            .status(),
        401
    );
    eventually("machine-oauth to be garbage-collected", WAIT, || async {
        Api::<Secret>::namespaced(kube.clone(), &ns.name)
            .get_opt("machine-oauth")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;

    // A client in a namespace the provider does not admit is refused with its condition.
    let other = TestNamespace::new(&kube, "outsider").await;
    let _other_operator =
        Operator::start(&other.name, &["--admin-endpoint-override", &override_url]);
    let outsider = serde_json::json!({
        "apiVersion": "auth.palisade.dev/v1alpha1", "kind": "OAuthClient",
        "metadata": {"name": "outsider"},
        "spec": {"providerRef": {"name": "dev", "namespace": ns.name}, "grantTypes": ["client_credentials"]}
    });
    Api::<OAuthClient>::namespaced(kube.clone(), &other.name)
        .create(
            &Default::default(),
            &serde_json::from_value(outsider).unwrap(),
        )
        .await
        .unwrap();
    eventually("NamespaceNotAllowed", WAIT, || async {
        (ready_reason(&kube, &other.name, "outsider").await? == "False:NamespaceNotAllowed")
            .then_some(())
    })
    .await;
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .expect("kubectl prints base64")
}
