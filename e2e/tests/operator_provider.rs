//! The operator on a real API server: an AuthProvider from `config/samples/` becomes every
//! owned object and Ready on KWOK; spec changes touch exactly the affected objects; a restart
//! keeps the generated Secrets and writes nothing; deletion garbage-collects everything.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use palisade_e2e::{
    apply_dev_provider, cluster, eventually, install_crds, kubectl_ok, sample, Operator,
    TestNamespace,
};
use palisade_operator::crd::AuthProvider;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn lease_holder(ns: &str) -> String {
    kubectl_ok(&[
        "get",
        "lease",
        "-n",
        ns,
        "palisade-operator",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])
}

async fn wait_ready(ns: &str) {
    kubectl_ok(&[
        "wait",
        "-n",
        ns,
        "--for=condition=Ready",
        "ap/dev",
        "--timeout=60s",
    ]);
}

async fn secret_value(client: &Client, ns: &str, name: &str, key: &str) -> String {
    let s = Api::<Secret>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap();
    String::from_utf8(s.data.unwrap()[key].0.clone()).unwrap()
}

async fn patch_spec(client: &Client, ns: &str, spec: serde_json::Value) {
    let api: Api<AuthProvider> = Api::namespaced(client.clone(), ns);
    api.patch(
        "dev",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "spec": spec })),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn authprovider_lifecycle_on_a_real_api_server() {
    let Some(client) = cluster().await else {
        return;
    };
    install_crds();
    let ns = TestNamespace::new(&client, "operator").await;
    let mut operator = Operator::start(&ns.name, &[]);
    apply_dev_provider(&ns.name);
    wait_ready(&ns.name).await;

    // Every owned object exists, labelled, owned by the AuthProvider.
    let ap = Api::<AuthProvider>::namespaced(client.clone(), &ns.name)
        .get("dev")
        .await
        .unwrap();
    let uid = ap.uid().unwrap();
    let owned_by_ap =
        |refs: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference]| {
            refs.iter()
                .any(|o| o.uid == uid && o.controller == Some(true))
        };
    let deploy = Api::<Deployment>::namespaced(client.clone(), &ns.name)
        .get("dev")
        .await
        .unwrap();
    assert!(owned_by_ap(deploy.owner_references()));
    assert_eq!(
        deploy.labels()["app.kubernetes.io/managed-by"],
        "palisade-operator"
    );
    let pod = deploy
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    let sc = pod.containers[0].security_context.as_ref().unwrap();
    assert_eq!(
        (sc.run_as_non_root, sc.read_only_root_filesystem),
        (Some(true), Some(true))
    );
    assert_eq!(deploy.spec.as_ref().unwrap().replicas, Some(2));
    for name in ["dev", "dev-admin"] {
        let svc = Api::<Service>::namespaced(client.clone(), &ns.name)
            .get(name)
            .await
            .unwrap();
        assert!(owned_by_ap(svc.owner_references()), "Service {name}");
    }
    for name in ["dev-internal", "dev-signing-keys"] {
        let s = Api::<Secret>::namespaced(client.clone(), &ns.name)
            .get(name)
            .await
            .unwrap();
        assert!(owned_by_ap(s.owner_references()), "Secret {name}");
    }
    let sa = Api::<ServiceAccount>::namespaced(client.clone(), &ns.name)
        .get("dev")
        .await
        .unwrap();
    assert_eq!(sa.automount_service_account_token, Some(false));
    Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns.name)
        .get("dev")
        .await
        .unwrap();
    Api::<NetworkPolicy>::namespaced(client.clone(), &ns.name)
        .get("dev")
        .await
        .unwrap();
    let status = ap.status.clone().unwrap();
    assert_eq!(status.ready_replicas, Some(2));
    assert_eq!(
        status.discovery_url.as_deref(),
        Some("http://127.0.0.1:8080/.well-known/openid-configuration")
    );
    assert!(status.active_key_id.is_some());
    let revision = status.current_revision.clone().unwrap();

    // A restart (SIGKILL, as a crash) keeps the generated Secrets and writes nothing.
    let token = secret_value(&client, &ns.name, "dev-internal", "admin-token").await;
    let keys = secret_value(&client, &ns.name, "dev-signing-keys", "keyset.json").await;
    operator.kill();
    let operator = Operator::start(&ns.name, &[]);
    eventually("the restarted operator to reconcile", WAIT, || async {
        (operator
            .counter("palisade_operator_reconciles_total", "authprovider")
            .await?
            >= 1.0)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        operator.writes().await,
        Some(0.0),
        "a resync of an unchanged AuthProvider must not write"
    );
    assert_eq!(
        secret_value(&client, &ns.name, "dev-internal", "admin-token").await,
        token
    );
    assert_eq!(
        secret_value(&client, &ns.name, "dev-signing-keys", "keyset.json").await,
        keys
    );

    // Changing replicas rewrites the Deployment and nothing else.
    patch_spec(&client, &ns.name, serde_json::json!({"replicas": 3})).await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns.name);
    eventually("3 replicas", WAIT, || async {
        (deployments.get("dev").await.ok()?.spec?.replicas? == 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let deployment_writes = operator
        .counter("palisade_operator_api_writes_total", "kind=\"Deployment\"")
        .await
        .unwrap();
    let status_writes = operator
        .counter(
            "palisade_operator_api_writes_total",
            "kind=\"AuthProvider\"",
        )
        .await
        .unwrap();
    assert_eq!(deployment_writes, 1.0);
    assert_eq!(
        operator.writes().await.unwrap(),
        deployment_writes + status_writes,
        "only the Deployment (and status) were written"
    );

    // A new image is a new revision.
    patch_spec(
        &client,
        &ns.name,
        serde_json::json!({"image": "registry.example/palisade/auth-server:0.2.0"}),
    )
    .await;
    let aps = Api::<AuthProvider>::namespaced(client.clone(), &ns.name);
    eventually("a new current revision", WAIT, || async {
        let s = aps.get("dev").await.ok()?.status?;
        (s.current_revision.as_deref() != Some(revision.as_str()) && s.current_revision.is_some())
            .then_some(())
    })
    .await;

    // Ingress and autoscaling come and go with the spec.
    let ingresses = Api::<Ingress>::namespaced(client.clone(), &ns.name);
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &ns.name);
    patch_spec(
        &client,
        &ns.name,
        serde_json::json!({"ingress": {"host": "id.example.com", "tls": {"clusterIssuer": "letsencrypt"}}, "autoscaling": {"minReplicas": 2, "maxReplicas": 5}}),
    )
    .await;
    eventually("the Ingress", WAIT, || async {
        ingresses.get_opt("dev").await.ok()?
    })
    .await;
    eventually("the HPA", WAIT, || async {
        hpas.get_opt("dev").await.ok()?
    })
    .await;
    eventually(
        "the Deployment to leave replicas to the HPA",
        WAIT,
        || async {
            let d = deployments.get("dev").await.ok()?;
            d.metadata
                .managed_fields
                .unwrap_or_default()
                .iter()
                .all(|m| {
                    m.manager.as_deref() != Some("palisade-operator")
                        || !m
                            .fields_v1
                            .as_ref()
                            .is_some_and(|f| f.0.to_string().contains("\"f:replicas\""))
                })
                .then_some(())
        },
    )
    .await;
    patch_spec(
        &client,
        &ns.name,
        serde_json::json!({"ingress": null, "autoscaling": null}),
    )
    .await;
    eventually("the Ingress to be removed", WAIT, || async {
        ingresses.get_opt("dev").await.ok()?.is_none().then_some(())
    })
    .await;
    eventually("the HPA to be removed", WAIT, || async {
        hpas.get_opt("dev").await.ok()?.is_none().then_some(())
    })
    .await;

    // Deleting the AuthProvider removes everything it owned.
    aps.delete("dev", &Default::default()).await.unwrap();
    eventually("owned objects to be garbage-collected", WAIT, || async {
        let gone = deployments.get_opt("dev").await.ok()?.is_none()
            && Api::<Secret>::namespaced(client.clone(), &ns.name)
                .get_opt("dev-signing-keys")
                .await
                .ok()?
                .is_none()
            && Api::<Service>::namespaced(client.clone(), &ns.name)
                .get_opt("dev-admin")
                .await
                .ok()?
                .is_none();
        gone.then_some(())
    })
    .await;
}

#[tokio::test]
async fn missing_database_secret_is_reported_and_picked_up_when_it_appears() {
    let Some(client) = cluster().await else {
        return;
    };
    install_crds();
    let ns = TestNamespace::new(&client, "missingdb").await;
    let _operator = Operator::start(&ns.name, &[]);
    kubectl_ok(&[
        "apply",
        "--server-side",
        "-n",
        &ns.name,
        "-f",
        &sample("authprovider-dev.yaml"),
    ]);
    let aps = Api::<AuthProvider>::namespaced(client.clone(), &ns.name);
    let message = eventually("Ready=False with DatabaseSecretMissing", WAIT, || async {
        let s = aps.get("dev").await.ok()?.status?;
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready" && c.reason == "DatabaseSecretMissing")?;
        Some(c.message.clone())
    })
    .await;
    assert!(
        message.contains("palisade-dev-postgres") && message.contains("\"uri\""),
        "{message}"
    );
    // The Secret appears: the watch on referenced Secrets picks it up without waiting for a resync.
    kubectl_ok(&[
        "apply",
        "--server-side",
        "-n",
        &ns.name,
        "-f",
        &sample("dev-database.yaml"),
    ]);
    kubectl_ok(&[
        "wait",
        "-n",
        &ns.name,
        "--for=condition=Ready",
        "ap/dev",
        "--timeout=30s",
    ]);
}

#[tokio::test]
async fn leader_election_lets_one_operator_write_and_fails_over() {
    let Some(client) = cluster().await else {
        return;
    };
    install_crds();
    let ns = TestNamespace::new(&client, "leader").await;
    let mut first = Operator::start(&ns.name, &["--leader-elect", "--identity", "first"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = Operator::start(&ns.name, &["--leader-elect", "--identity", "second"]);
    apply_dev_provider(&ns.name);
    wait_ready(&ns.name).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        first.writes().await.unwrap_or(0.0) > 0.0,
        "the leader reconciled"
    );
    assert_eq!(second.writes().await, Some(0.0), "the standby never writes");
    let lease = lease_holder(&ns.name);
    assert_eq!(lease, "first");

    first.kill();
    let killed = std::time::Instant::now();
    eventually(
        "the standby to take over",
        Duration::from_secs(20),
        || async {
            (second.counter("palisade_operator_leader", "").await? >= 1.0
                && second
                    .counter("palisade_operator_reconciles_total", "authprovider")
                    .await?
                    >= 1.0)
                .then_some(())
        },
    )
    .await;
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(15), "failover took {took:?}");
    let lease = lease_holder(&ns.name);
    assert_eq!(lease, "second");

    // The old leader comes back as a standby: it waits, writes nothing, and the new leader
    // keeps the Lease and does the work (a spec change is carried out by it alone).
    let first = Operator::start(&ns.name, &["--leader-elect", "--identity", "first"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = second.writes().await.unwrap();
    patch_spec(&client, &ns.name, serde_json::json!({"replicas": 3})).await;
    eventually("the leader to apply the change", WAIT, || async {
        (second.writes().await? > before).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        first.writes().await,
        Some(0.0),
        "the returned standby never writes"
    );
    assert_eq!(
        first.counter("palisade_operator_leader", "").await,
        Some(0.0)
    );
    assert_eq!(lease_holder(&ns.name), "second");
}

#[tokio::test]
async fn without_redis_one_replica_runs_and_the_status_says_why() {
    let Some(client) = cluster().await else {
        return;
    };
    install_crds();
    let ns = TestNamespace::new(&client, "noredis").await;
    let _operator = Operator::start(&ns.name, &[]);
    apply_dev_provider(&ns.name);
    // Remove Redis and ask for three replicas.
    patch_spec(
        &client,
        &ns.name,
        serde_json::json!({"redis": null, "replicas": 3}),
    )
    .await;
    let aps = Api::<AuthProvider>::namespaced(client.clone(), &ns.name);
    let degraded = eventually("Degraded=True SingleReplicaWithoutRedis", WAIT, || async {
        let s = aps.get("dev").await.ok()?.status?;
        let c = s.conditions.iter().find(|c| {
            c.type_ == "Degraded" && c.status == "True" && c.reason == "SingleReplicaWithoutRedis"
        })?;
        Some(c.message.clone())
    })
    .await;
    assert!(degraded.contains("spec.redis"), "{degraded}");
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns.name);
    eventually("one replica", WAIT, || async {
        (deployments.get("dev").await.ok()?.spec?.replicas? == 1).then_some(())
    })
    .await;
    let env = deployments
        .get("dev")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .env
        .clone()
        .unwrap();
    assert!(!env.iter().any(|e| e.name == "REDIS_URL"));
    let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns.name);
    eventually("no PDB for a single replica", WAIT, || async {
        pdbs.get_opt("dev").await.ok()?.is_none().then_some(())
    })
    .await;
    wait_ready(&ns.name).await;
}
