//! The local control plane works as a cluster: CRDs install, every sample applies, and a plain
//! Deployment reaches its available replicas on a KWOK node (controller-manager, scheduler and
//! KWOK working together); a `-broken` image never becomes ready; deleting a Deployment
//! garbage-collects its ReplicaSets.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use palisade_e2e::{cluster, eventually, install_crds, kubectl_ok, repo_root, TestNamespace};
use std::time::Duration;

fn deployment(name: &str, image: &str, replicas: i32) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn samples_apply_and_deployments_run_on_kwok() {
    let Some(client) = cluster().await else {
        return;
    };
    install_crds();
    let ns = TestNamespace::new(&client, "smoke").await;

    let samples = repo_root().join("config/samples");
    let out = kubectl_ok(&[
        "apply",
        "--server-side",
        "-n",
        &ns.name,
        "-f",
        samples.to_str().unwrap(),
    ]);
    for kind in [
        "authprovider.auth.palisade.dev/dev",
        "authprovider.auth.palisade.dev/production",
        "oauthclient.auth.palisade.dev/webapp",
        "oauthclient.auth.palisade.dev/spa",
        "oauthclient.auth.palisade.dev/machine",
    ] {
        assert!(out.contains(kind), "{kind} not applied:\n{out}");
    }

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    deployments
        .create(
            &PostParams::default(),
            &deployment("web", "registry.example/nginx:1.0", 2),
        )
        .await
        .unwrap();
    deployments
        .create(
            &PostParams::default(),
            &deployment("bad", "registry.example/nginx:1.0-broken", 1),
        )
        .await
        .unwrap();
    eventually(
        "web to have 2 available replicas",
        Duration::from_secs(60),
        || async {
            let d = deployments.get("web").await.ok()?;
            (d.status?.available_replicas? == 2).then_some(())
        },
    )
    .await;
    // The broken image runs but never becomes ready.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let bad = deployments
        .get("bad")
        .await
        .unwrap()
        .status
        .unwrap_or_default();
    assert_eq!(
        bad.ready_replicas.unwrap_or(0),
        0,
        "pods of a -broken image must stay unready"
    );
    assert_eq!(bad.replicas.unwrap_or(0), 1, "but they do exist");

    // Garbage collection follows owner references.
    deployments
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns.name);
    eventually(
        "web's ReplicaSet to be garbage-collected",
        Duration::from_secs(60),
        || async {
            let list = rs
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            list.items.is_empty().then_some(())
        },
    )
    .await;
}
