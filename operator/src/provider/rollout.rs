//! The rollout step of the AuthProvider reconcile: reads the record, the Deployment, the new
//! pods and the migration Job, asks `rollout::plan` what to do, then writes the record, the Job
//! and the Deployment, and reports events and metrics. Decisions live in `crate::rollout`.

use super::desired;
use crate::context::Context;
use crate::crd::auth_provider::AuthProvider;
use crate::metrics::OutcomeLabels;
use crate::owned_cache::Cached;
use crate::render::deployment::{render_deployment, render_pod_template};
use crate::render::migration_job::{job_name, migration_key, render_migration_job, MigrationInput};
use crate::render::owner::Owner;
use crate::rollout::decision::{DeploymentProgress, PodHealth};
use crate::rollout::migration::{job_needed, next_step, JobState};
use crate::rollout::plan::{
    self, judges_pods, needs_live_template, Desired, JobAction, Migration, Outcome, PlanInput,
    Report, Settings,
};
use crate::rollout::record::{parse_record, record_name, render_record, RolloutRecord};
use crate::rollout::revision::{image_of, revision_of};
use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodTemplateSpec, SecretKeySelector};
use kube::api::{Api, ListParams};
use kube::runtime::events::EventType;
use palisade_wire::contract::env;
use std::sync::Arc;
use std::time::Duration;

/// What the rollout step leaves for the status and the requeue.
pub struct Stepped {
    pub report: Report,
    /// A rollout or migration is under way: look again soon.
    pub busy: bool,
    /// When the running rollout's deadline passes, if one runs.
    pub deadline: Option<DateTime<Utc>>,
    /// The Deployment as the step judged it (read again if the step changed it), so that the
    /// status and the rollout decision describe the same observation.
    pub deployment: Option<Deployment>,
}

/// The rollout record: the cached copy when it is the one the operator last wrote or read
/// (see `record_versions`), else from the API server.
async fn read_record(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<Option<Arc<ConfigMap>>, kube::Error> {
    let cached = match ctx.applier.cache().get::<ConfigMap>(ns, name) {
        Cached::Present(cm) => Some(Some(cm)),
        Cached::Absent => Some(None),
        Cached::Unknown => None,
    };
    if let Some(cm) = cached {
        let version = cm
            .as_ref()
            .and_then(|c| c.metadata.resource_version.as_deref());
        if ctx.record_versions.trusts(ns, name, version) {
            return Ok(cm);
        }
    }
    let live = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await?;
    let version = live
        .as_ref()
        .and_then(|c| c.metadata.resource_version.clone());
    ctx.record_versions.saw(ns, name, version);
    Ok(live.map(Arc::new))
}

/// Writes `record` over `current` (as `read_record` gave it) and remembers its version.
async fn write_record(
    ctx: &Context,
    owner: &Owner,
    record: &RolloutRecord,
    current: Option<&ConfigMap>,
) -> Result<(), kube::Error> {
    let (ns, name) = (&owner.namespace, record_name(owner));
    match ctx
        .applier
        .apply_over(ns, render_record(owner, record), current)
        .await
    {
        Ok(Some(written)) => {
            ctx.record_versions
                .saw(ns, &name, written.metadata.resource_version);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => {
            ctx.record_versions.unsure(ns, &name);
            Err(e)
        }
    }
}

async fn list_pods(
    client: &kube::Client,
    ns: &str,
    selector: &str,
) -> Result<Vec<Pod>, kube::Error> {
    Ok(Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await?
        .items)
}

fn label_selector(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The migration key of what a live pod template runs (its image and database reference).
pub(crate) fn running_key(template: &PodTemplateSpec) -> Option<String> {
    let container = template.spec.as_ref()?.containers.first()?;
    let database_url: SecretKeySelector = container
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == env::DATABASE_URL)?
        .value_from
        .as_ref()?
        .secret_key_ref
        .clone()?;
    Some(migration_key(&MigrationInput {
        image: container.image.clone()?,
        database_url,
        resources: None,
        node_selector: None,
        tolerations: None,
        affinity: None,
    }))
}

/// Runs one rollout step for `ap`.
pub async fn step(
    ctx: &Context,
    ap: &AuthProvider,
    owner: &Owner,
    now: DateTime<Utc>,
) -> Result<Stepped, kube::Error> {
    let ns = &owner.namespace;
    let spec = &ap.spec;
    let client = &ctx.client;
    let (template, revision) = render_pod_template(
        owner,
        &desired::pod_input(spec, &ctx.config.auth_server_image),
    );
    let image = image_of(&template).unwrap_or_default().to_string();

    let record_cm = read_record(ctx, ns, &record_name(owner)).await?;
    let record = parse_record(record_cm.as_deref());
    // The cached Deployment is trimmed (see `trim`): enough for the migration key, the
    // revision and the progress; the whole one is read when the step may keep what runs.
    let cached = ctx.applier.get::<Deployment>(ns, &owner.name).await?;

    // The migration gate of the desired image.
    let migration_input = MigrationInput {
        image: image.clone(),
        database_url: SecretKeySelector {
            name: spec.database.url_secret_ref.name.clone(),
            key: spec.database.url_secret_ref.key.clone(),
            optional: None,
        },
        resources: spec.resources.clone(),
        node_selector: spec.node_selector.clone(),
        tolerations: spec.tolerations.clone(),
        affinity: spec.affinity.clone(),
    };
    let key = migration_key(&migration_input);
    let job = job_name(owner, &key);
    let running = cached
        .as_ref()
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| running_key(&s.template));
    let open_migration = job_needed(&key, running.as_deref(), &record);
    let live: Option<Deployment> = match cached {
        Some(_) if needs_live_template(&record, &revision, open_migration) => {
            Api::<Deployment>::namespaced(client.clone(), ns)
                .get_opt(&owner.name)
                .await?
        }
        other => other.map(|d| d.as_ref().clone()),
    };
    let live_template = live
        .as_ref()
        .and_then(|d| d.spec.as_ref())
        .map(|s| &s.template);
    let progress = live.as_ref().map(DeploymentProgress::of);

    // The Job and its pods are read only while the migration is open; a finished Job's pods
    // only for their termination messages.
    let job_state = if open_migration {
        match ctx.applier.get::<Job>(ns, &job).await? {
            Some(j) => {
                let pods = if JobState::reads_pods(&j) {
                    list_pods(client, ns, &format!("batch.kubernetes.io/job-name={job}")).await?
                } else {
                    Vec::new()
                };
                Some(JobState::of(&j, &pods))
            }
            None => None,
        }
    } else {
        None
    };
    let migration_step = next_step(&key, running.as_deref(), &record, job_state.as_ref(), now);

    let live_revision = live_template.and_then(revision_of);
    let new_pods = if judges_pods(&record, &revision, live_revision) {
        let pods = list_pods(client, ns, &label_selector(&owner.labels("auth-server"))).await?;
        PodHealth::of_revision(&pods, &revision)
    } else {
        Vec::new()
    };
    let settings = Settings {
        auto_rollback: spec.rollout.auto_rollback,
        progress_deadline: Duration::from_secs(spec.rollout.progress_deadline_seconds.max(0) as u64),
        max_restarts: spec.rollout.max_restarts,
    };
    let plan = plan::plan(&PlanInput {
        desired: Desired {
            template: &template,
            revision: &revision,
            image: &image,
        },
        record: &record,
        migration: Migration {
            key: &key,
            job: &job,
            step: migration_step,
        },
        live_template,
        progress: progress.as_ref(),
        new_pods: &new_pods,
        settings: &settings,
        now,
    });

    // Remember first, then act: a crash in between repeats the step instead of losing it.
    if plan.record != record || record_cm.is_none() {
        write_record(ctx, owner, &plan.record, record_cm.as_deref()).await?;
    }
    match plan.job {
        Some(JobAction::Create) => {
            ctx.applier
                .create_if_absent(ns, render_migration_job(owner, &migration_input))
                .await?;
        }
        Some(JobAction::Delete) => {
            ctx.applier
                .delete_owned::<Job>(ns, &job, &owner.reference.uid)
                .await?;
        }
        None => {}
    }
    // The Deployment as the API server returned it when applied, else as read.
    let mut observed = live.clone();
    if let Some(t) = plan.template.clone() {
        let deployment = render_deployment(owner, &desired::deployment_input(spec), t);
        if let Some(applied) = ctx.applier.apply(ns, deployment).await? {
            observed = Some(applied);
        }
    }
    report_outcomes(ctx, ap, &plan, &image, &revision, &job);

    let in_flight = plan.record.in_flight.clone();
    let busy = in_flight.is_some() || plan.report.waiting.is_some() || plan.job.is_some();
    let deadline = in_flight.map(|f| {
        f.started_at + chrono::Duration::from_std(settings.progress_deadline).unwrap_or_default()
    });
    Ok(Stepped {
        report: plan.report,
        busy,
        deadline,
        deployment: observed,
    })
}

fn count_rollout(ctx: &Context, outcome: &'static str) {
    ctx.metrics
        .rollouts
        .get_or_create(&OutcomeLabels { outcome })
        .inc();
}

fn report_outcomes(
    ctx: &Context,
    ap: &AuthProvider,
    plan: &plan::Plan,
    image: &str,
    revision: &str,
    job: &str,
) {
    let degraded = plan
        .report
        .degraded
        .as_ref()
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    for outcome in &plan.outcomes {
        let (type_, reason, note) = match outcome {
            Outcome::Started => (
                EventType::Normal,
                "RolloutStarted",
                format!("rolling out revision {revision} (image {image})"),
            ),
            Outcome::Succeeded => {
                count_rollout(ctx, "succeeded");
                (
                    EventType::Normal,
                    "RolloutSucceeded",
                    format!("revision {revision} (image {image}) is rolled out and is the last good revision"),
                )
            }
            Outcome::RolledBack(kind) => {
                count_rollout(ctx, "rolled_back");
                ctx.metrics.rollbacks.inc();
                (
                    EventType::Warning,
                    "RolledBack",
                    format!("{}: {degraded}", kind.as_str()),
                )
            }
            Outcome::Failed(kind) => {
                count_rollout(ctx, "failed");
                (
                    EventType::Warning,
                    "RolloutFailed",
                    format!("{}: {degraded}", kind.as_str()),
                )
            }
            Outcome::Superseded => {
                count_rollout(ctx, "superseded");
                continue;
            }
            Outcome::MigrationStarted => (
                EventType::Normal,
                "MigrationStarted",
                format!("created Job {job} to migrate the database for image {image} before rolling it out"),
            ),
            Outcome::MigrationSucceeded(version) => {
                ctx.metrics
                    .migration_jobs
                    .get_or_create(&OutcomeLabels { outcome: "succeeded" })
                    .inc();
                (
                    EventType::Normal,
                    "MigrationSucceeded",
                    match version {
                        Some(v) => format!("Job {job} migrated the database to schema version {v} for image {image}"),
                        None => format!("Job {job} migrated the database for image {image} (it reported no schema version)"),
                    },
                )
            }
            Outcome::MigrationFailed(_) => {
                ctx.metrics
                    .migration_jobs
                    .get_or_create(&OutcomeLabels { outcome: "failed" })
                    .inc();
                (EventType::Warning, "MigrationFailed", degraded.clone())
            }
            Outcome::MigrationRetried => (
                EventType::Normal,
                "MigrationRetried",
                format!("deleted the failed Job {job} after the back-off; it runs again for image {image}"),
            ),
        };
        ctx.event(ap, type_, reason, "Rollout", note);
    }
}
