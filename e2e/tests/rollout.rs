//! Safe rollouts on a real API server with KWOK pods: a migration Job gates every new image, a
//! good upgrade becomes the last good revision, a never-ready image (`-broken`) is rolled back
//! by itself without dropping below the disruption budget, and a failing migration
//! (`-badmigration`, a KWOK stage fails those pods) keeps the running revision.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use palisade_e2e::{
    cluster, eventually, install_crds, kubectl_ok, sample, Operator, TestNamespace,
};
use palisade_operator::crd::auth_provider::AuthProviderStatus;
use palisade_operator::crd::AuthProvider;
use palisade_operator::render::deployment::revision_of;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);
/// The shortest `spec.rollout.progressDeadlineSeconds` the CRD allows.
const DEADLINE_SECS: u64 = 30;
const IMAGE: &str = "registry.example/palisade/auth-server";

struct Provider {
    client: Client,
    ns: TestNamespace,
    operator: Operator,
}

impl Provider {
    /// The dev sample with 3 replicas (Redis is configured, so a PDB exists) and a 30 s
    /// deadline, rolled out once.
    async fn start(client: Client, prefix: &str) -> Provider {
        install_crds();
        let ns = TestNamespace::new(&client, prefix).await;
        let operator = Operator::start(&ns.name, &[]);
        kubectl_ok(&[
            "apply",
            "--server-side",
            "-n",
            &ns.name,
            "-f",
            &sample("dev-database.yaml"),
        ]);
        // The sample with our settings, created in one request so that the first rollout is
        // already of this spec.
        let mut ap: serde_json::Value = serde_yaml::from_str(
            &std::fs::read_to_string(sample("authprovider-dev.yaml")).unwrap(),
        )
        .unwrap();
        ap["spec"]["replicas"] = 3.into();
        ap["spec"]["image"] = format!("{IMAGE}:0.1.0").into();
        ap["spec"]["rollout"] = serde_json::json!({
            "progressDeadlineSeconds": DEADLINE_SECS, "autoRollback": true, "maxRestarts": 3
        });
        let ap: AuthProvider = serde_json::from_value(ap).unwrap();
        Api::<AuthProvider>::namespaced(client.clone(), &ns.name)
            .create(&PostParams::default(), &ap)
            .await
            .expect("create the AuthProvider");
        let p = Provider {
            client,
            ns,
            operator,
        };
        eventually(
            "the first rollout to be the last good revision",
            WAIT,
            || async {
                let s = p.status().await?;
                (s.last_good_revision.is_some() && s.last_good_revision == s.current_revision)
                    .then_some(())
            },
        )
        .await;
        p
    }

    async fn patch(&self, spec: serde_json::Value) {
        Api::<AuthProvider>::namespaced(self.client.clone(), &self.ns.name)
            .patch(
                "dev",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "spec": spec })),
            )
            .await
            .expect("patch the AuthProvider");
    }

    async fn status(&self) -> Option<AuthProviderStatus> {
        Api::<AuthProvider>::namespaced(self.client.clone(), &self.ns.name)
            .get("dev")
            .await
            .ok()?
            .status
    }

    async fn condition(&self, type_: &str) -> Option<Condition> {
        self.status()
            .await?
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
    }

    async fn deployment(&self) -> Deployment {
        Api::<Deployment>::namespaced(self.client.clone(), &self.ns.name)
            .get("dev")
            .await
            .expect("the Deployment exists")
    }

    async fn template(&self) -> PodTemplateSpec {
        self.deployment().await.spec.unwrap().template
    }

    async fn migration_jobs(&self) -> Vec<Job> {
        Api::<Job>::namespaced(self.client.clone(), &self.ns.name)
            .list(&ListParams::default().labels("app.kubernetes.io/component=migration"))
            .await
            .unwrap()
            .items
    }

    async fn job_for(&self, image: &str) -> Option<Job> {
        self.migration_jobs().await.into_iter().find(|j| {
            j.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("auth.palisade.dev/image"))
                .is_some_and(|i| i == image)
        })
    }

    /// Notes of Warning events with `reason` about the AuthProvider.
    async fn warnings(&self, reason: &str) -> Vec<String> {
        Api::<Event>::namespaced(self.client.clone(), &self.ns.name)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| {
                e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some(reason)
            })
            .filter_map(|e| e.note)
            .collect()
    }
}

fn revision(t: &PodTemplateSpec) -> String {
    revision_of(t)
        .expect("templates carry their revision")
        .to_string()
}

fn image(t: &PodTemplateSpec) -> String {
    t.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap()
}

#[tokio::test]
async fn a_good_upgrade_becomes_the_last_good_revision() {
    let Some(client) = cluster().await else {
        return;
    };
    let p = Provider::start(client, "rollout-ok").await;
    let before = p.status().await.unwrap().last_good_revision.unwrap();
    p.patch(serde_json::json!({"image": format!("{IMAGE}:0.2.0")}))
        .await;
    let after = eventually(
        "the upgrade to become the last good revision",
        WAIT,
        || async {
            let s = p.status().await?;
            let good = s.last_good_revision?;
            (good != before && s.current_revision.as_deref() == Some(good.as_str())).then_some(good)
        },
    )
    .await;
    let t = p.template().await;
    assert_eq!(revision(&t), after);
    assert_eq!(image(&t), format!("{IMAGE}:0.2.0"));
    let rolled_back = p.condition("RolledBack").await.unwrap();
    assert_eq!(rolled_back.status, "False");
    assert_eq!(p.status().await.unwrap().failed_revision, None);
    assert!(
        p.operator
            .counter("palisade_operator_rollouts_total", "outcome=\"succeeded\"")
            .await
            .unwrap()
            >= 2.0,
        "the first rollout and the upgrade"
    );
}

#[tokio::test]
async fn a_never_ready_image_is_rolled_back_within_the_deadline_without_dropping_below_the_pdb() {
    let Some(client) = cluster().await else {
        return;
    };
    let p = Provider::start(client.clone(), "rollout-back").await;
    let good = p.template().await;
    let good_revision = revision(&good);
    Api::<PodDisruptionBudget>::namespaced(client.clone(), &p.ns.name)
        .get("dev")
        .await
        .expect("3 replicas with Redis have a PDB");
    // The PDB allows one of three pods down: at least two must stay available throughout.
    let pdb_minimum = 2;

    // Record the fewest available replicas while the rollout and rollback happen.
    let fewest = Arc::new(AtomicI32::new(i32::MAX));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (fewest, stop) = (fewest.clone(), stop.clone());
        let deployments = Api::<Deployment>::namespaced(client.clone(), &p.ns.name);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(d) = deployments.get("dev").await {
                    let available = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
                    fewest.fetch_min(available, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let broken_image = format!("{IMAGE}:0.2.0-broken");
    p.patch(serde_json::json!({"image": broken_image})).await;
    let broken_revision = eventually("the broken revision to be applied", WAIT, || async {
        let t = p.template().await;
        (image(&t) == broken_image).then(|| revision(&t))
    })
    .await;
    let applied = Instant::now();
    let rolled_back = eventually("RolledBack=True", WAIT, || async {
        p.condition("RolledBack")
            .await
            .filter(|c| c.status == "True")
    })
    .await;
    let took = applied.elapsed();
    eprintln!("rolled back {took:?} after the broken revision was applied");
    assert!(
        took <= Duration::from_secs(DEADLINE_SECS + 10),
        "rolled back {took:?} after the broken revision was applied (deadline {DEADLINE_SECS}s plus one reconcile)"
    );
    assert!(
        ["NotReadyInTime", "ProgressDeadlineExceeded"].contains(&rolled_back.reason.as_str()),
        "{}",
        rolled_back.reason
    );
    eventually("the last good template to be back", WAIT, || async {
        (p.template().await == good).then_some(())
    })
    .await;
    let status = p.status().await.unwrap();
    assert_eq!(
        status.failed_revision.as_deref(),
        Some(broken_revision.as_str())
    );
    assert_eq!(
        status.last_good_revision.as_deref(),
        Some(good_revision.as_str())
    );
    let degraded = p.condition("Degraded").await.unwrap();
    assert_eq!(degraded.status, "True");
    assert_eq!(degraded.reason, rolled_back.reason);
    assert!(
        degraded.message.contains(&broken_revision) && degraded.message.contains(&broken_image),
        "{}",
        degraded.message
    );
    let warnings = eventually("a RolledBack Warning event", WAIT, || async {
        let w = p.warnings("RolledBack").await;
        (!w.is_empty()).then_some(w)
    })
    .await;
    assert!(
        warnings[0].contains(&broken_image) && warnings[0].contains(&rolled_back.reason),
        "{warnings:?}"
    );

    // Not tried again while the spec asks for the same revision.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        p.template().await,
        good,
        "the failed revision is not retried"
    );
    assert_eq!(
        p.operator
            .counter("palisade_operator_rollbacks_total", "")
            .await
            .unwrap(),
        1.0
    );
    stop.store(true, Ordering::Relaxed);
    watcher.await.unwrap();
    let fewest = fewest.load(Ordering::Relaxed);
    eprintln!("fewest available replicas during the rollout and rollback: {fewest}");
    assert!(
        fewest >= pdb_minimum,
        "available replicas dropped to {fewest} (PDB minimum {pdb_minimum})"
    );

    // A new spec rolls out, and its success clears RolledBack.
    p.patch(serde_json::json!({"image": format!("{IMAGE}:0.3.0")}))
        .await;
    eventually("RolledBack=False after a good rollout", WAIT, || async {
        let s = p.status().await?;
        let c = p.condition("RolledBack").await?;
        (c.status == "False"
            && s.failed_revision.is_none()
            && s.last_good_revision != Some(good_revision.clone()))
        .then_some(())
    })
    .await;
    assert_eq!(p.condition("Degraded").await.unwrap().status, "False");
}

/// Whether the running KWOK fails `-badmigration` pods. `e2e/cluster/up` loads the stage from
/// `e2e/cluster/kwok/pod-stages.yaml`; a cluster started before the stage was added lacks it
/// until it is started again.
async fn kwok_fails_badmigration_pods(client: &Client, ns: &str) -> bool {
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "probe-badmigration"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "probe", "image": "probe:1-badmigration"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let phase = eventually("the probe pod to start or fail", WAIT, || async {
        let phase = pods.get("probe-badmigration").await.ok()?.status?.phase?;
        (phase != "Pending").then_some(phase)
    })
    .await;
    let _ = pods.delete("probe-badmigration", &Default::default()).await;
    phase == "Failed"
}

#[tokio::test]
async fn a_failing_migration_blocks_the_rollout_and_keeps_the_old_template() {
    let Some(client) = cluster().await else {
        return;
    };
    let p = Provider::start(client.clone(), "rollout-mig-fail").await;
    if !kwok_fails_badmigration_pods(&client, &p.ns.name).await {
        eprintln!(
            "skipping: the running KWOK has no pod-fail-badmigration stage; start the cluster again (e2e/cluster/down; e2e/cluster/up) to load e2e/cluster/kwok/pod-stages.yaml"
        );
        return;
    }
    let good = p.template().await;
    let bad_image = format!("{IMAGE}:0.2.0-badmigration");
    p.patch(serde_json::json!({"image": bad_image})).await;
    let degraded = eventually("Degraded=True MigrationFailed", WAIT, || async {
        p.condition("Degraded")
            .await
            .filter(|c| c.status == "True" && c.reason == "MigrationFailed")
    })
    .await;
    let job = p.job_for(&bad_image).await.expect("a Job for the image");
    let job_name = job.metadata.name.clone().unwrap();
    assert!(degraded.message.contains(&job_name), "{}", degraded.message);
    assert!(
        degraded.message.contains("backoff limit"),
        "the Job's failure message: {}",
        degraded.message
    );
    assert_eq!(
        p.template().await,
        good,
        "the Deployment keeps the old template"
    );
    let warnings = p.warnings("MigrationFailed").await;
    assert!(
        warnings.iter().any(|w| w.contains(&bad_image)),
        "{warnings:?}"
    );
    // The failed Job is not recreated in a loop: still this one Job, still failed.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let jobs: Vec<_> = p
        .migration_jobs()
        .await
        .into_iter()
        .filter(|j| j.metadata.name.as_deref() == Some(job_name.as_str()))
        .collect();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].metadata.uid, job.metadata.uid,
        "the same Job object"
    );
    assert_eq!(p.template().await, good);
    assert_eq!(
        p.operator
            .counter(
                "palisade_operator_migration_jobs_total",
                "outcome=\"failed\""
            )
            .await
            .unwrap(),
        1.0
    );
    assert_eq!(
        p.condition("Ready").await.unwrap().status,
        "True",
        "the old revision serves"
    );
}

#[tokio::test]
async fn a_migration_runs_once_before_the_new_pods() {
    let Some(client) = cluster().await else {
        return;
    };
    let p = Provider::start(client.clone(), "rollout-mig-once").await;
    // The first rollout migrated before the Deployment existed.
    let first = p
        .job_for(&format!("{IMAGE}:0.1.0"))
        .await
        .expect("the first Job");
    let first_done = first
        .status
        .unwrap()
        .completion_time
        .expect("it completed")
        .0;
    let created = p.deployment().await.metadata.creation_timestamp.unwrap().0;
    assert!(
        created >= first_done,
        "Deployment created {created} before the migration finished {first_done}"
    );

    let new_image = format!("{IMAGE}:0.2.0");
    p.patch(serde_json::json!({"image": new_image})).await;
    let new_revision = eventually("the upgrade to finish", WAIT, || async {
        let s = p.status().await?;
        let t = p.template().await;
        (image(&t) == new_image && s.last_good_revision.as_deref() == Some(revision(&t).as_str()))
            .then(|| revision(&t))
    })
    .await;
    let job = p
        .job_for(&new_image)
        .await
        .expect("a Job for the new image");
    let done = job.status.unwrap().completion_time.expect("it completed").0;
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), &p.ns.name)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let new_rs = replica_sets
        .iter()
        .find(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(revision_of)
                == Some(new_revision.as_str())
        })
        .expect("the new ReplicaSet");
    let rs_created = new_rs.metadata.creation_timestamp.clone().unwrap().0;
    assert!(
        rs_created >= done,
        "new pods ({rs_created}) before the migration finished ({done})"
    );
    let jobs = p.migration_jobs().await.len();
    assert_eq!(jobs, 2, "one Job per image");
    let succeeded = p
        .operator
        .counter(
            "palisade_operator_migration_jobs_total",
            "outcome=\"succeeded\"",
        )
        .await
        .unwrap();
    assert_eq!(succeeded, 2.0);

    // Scaling is not a new revision: no new Job.
    p.patch(serde_json::json!({"replicas": 2})).await;
    eventually("2 replicas", WAIT, || async {
        (p.deployment().await.spec?.replicas? == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(p.migration_jobs().await.len(), jobs);
    assert_eq!(
        p.operator
            .counter(
                "palisade_operator_migration_jobs_total",
                "outcome=\"succeeded\""
            )
            .await
            .unwrap(),
        succeeded
    );
    assert_eq!(
        p.status().await.unwrap().last_good_revision.as_deref(),
        Some(new_revision.as_str())
    );
}
