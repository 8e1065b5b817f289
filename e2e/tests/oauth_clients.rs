//! OAuthClients end to end: the operator registers the samples with a provider whose
//! auth-server runs locally (configured from the rendered Deployment), each application's
//! Secret works against the issuer, a wiped database heals at the next resync, a deleted client
//! is refused, and a namespace outside `clientNamespaces` is turned away.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use palisade_e2e::{
    client_credentials, cluster, eventually, install_crds, kubectl_ok, sample, LocalProvider,
    Operator, TestNamespace,
};
use palisade_operator::crd::OAuthClient;
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

async fn token_status(issuer: &str, id: &str, secret: &str) -> u16 {
    client_credentials(issuer, id, secret, Some("api.read"))
        .await
        .status()
        .as_u16()
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
    let provider = LocalProvider::start(
        &kube,
        &ns.name,
        serde_json::json!({}),
        Duration::from_secs(2),
    )
    .await;
    let (issuer, admin) = (provider.issuer.clone(), provider.admin.clone());
    let override_url = format!("http://{admin}");

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
    let resp = client_credentials(
        &issuer,
        &machine["client_id"],
        &machine["client_secret"],
        Some("api.read"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "api.read");
    // A wrong secret is refused.
    assert_eq!(
        token_status(&issuer, &machine["client_id"], "wrong").await,
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
        token_status(&issuer, &machine["client_id"], &machine["client_secret"]).await,
        401
    );
    eventually(
        "the resync to re-register the machine client",
        WAIT,
        || async {
            (token_status(&issuer, &machine["client_id"], &machine["client_secret"]).await == 200)
                .then_some(())
        },
    )
    .await;

    // Deleting the OAuthClient deregisters it (finalizer) and removes its Secret.
    kubectl_ok(&["delete", "oc", "-n", &ns.name, "machine", "--timeout=60s"]);
    assert_eq!(
        token_status(&issuer, &machine["client_id"], &machine["client_secret"]).await,
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
