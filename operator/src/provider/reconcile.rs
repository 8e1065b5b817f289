//! The AuthProvider reconcile, top to bottom: check referenced Secrets, ensure generated
//! Secrets and keys, apply every owned object, then report status. Decisions live in
//! `desired`, `status` and the renderers; this file only reads, calls and writes.

use super::desired;
use super::keys::{ensure_keys, KeysError, ROTATE_ANNOTATION};
use super::status::{self, DeploymentObservation, KeysObservation, Observed, SecretCheck};
use crate::apply::Applier;
use crate::context::Context;
use crate::crd::auth_provider::{AuthProvider, AuthProviderStatus, SecretKeyRef};
use crate::render::{self, owner::Owner};
use chrono::Utc;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::ResourceExt;
use std::sync::Arc;
use std::time::Duration;

/// Reconcile errors; each maps to a metric reason and a retry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the AuthProvider has no namespace or uid")]
    NotStored,
}

impl Error {
    /// Short reason for metrics.
    pub fn reason(&self) -> String {
        match self {
            Error::Kube(kube::Error::Api(e)) => format!("api_{}", e.code),
            Error::Kube(_) => "api".into(),
            Error::NotStored => "not_stored".into(),
        }
    }
}

/// How often a healthy provider is looked at again even if nothing happens.
const RESYNC: Duration = Duration::from_secs(300);
/// How soon to look again while something is in progress.
const SOON: Duration = Duration::from_secs(5);

async fn check_secret(
    applier: &Applier,
    namespace: &str,
    r: &SecretKeyRef,
) -> Result<SecretCheck, kube::Error> {
    let secret = applier.peek::<Secret>(namespace, &r.name).await?;
    let has_key = secret.as_ref().is_some_and(|s| {
        s.data.as_ref().is_some_and(|d| d.contains_key(&r.key))
            || s.string_data
                .as_ref()
                .is_some_and(|d| d.contains_key(&r.key))
    });
    Ok(if has_key {
        SecretCheck::Present
    } else {
        SecretCheck::Missing {
            namespace: namespace.into(),
            name: r.name.clone(),
            key: r.key.clone(),
            secret_exists: secret.is_some(),
        }
    })
}

/// Reconciles one AuthProvider.
pub async fn reconcile(ap: Arc<AuthProvider>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = crate::backoff::key(ap.as_ref());
    let result = reconcile_steps(ap, ctx.clone()).await;
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    result
}

async fn reconcile_steps(ap: Arc<AuthProvider>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started("authprovider");
    let owner = Owner::of(ap.as_ref()).ok_or(Error::NotStored)?;
    let ns = owner.namespace.clone();
    let spec = &ap.spec;
    let now = Utc::now();
    let applier = &ctx.applier;

    // 1. The user's Secrets. Without the database URL no pod can start, so stop here.
    let database = check_secret(applier, &ns, &spec.database.url_secret_ref).await?;
    let redis = match &spec.redis {
        Some(r) => Some(check_secret(applier, &ns, &r.url_secret_ref).await?),
        None => None,
    };
    let mut upstream_secrets = Vec::with_capacity(spec.upstreams.len());
    for u in &spec.upstreams {
        let check = check_secret(applier, &ns, &u.client_secret_ref).await?;
        upstream_secrets.push((u.name.clone(), check));
    }
    let scale = desired::scale(spec);

    // 2. Generated Secrets: created once; generated again only when deleted, and then said.
    let created = applier
        .create_if_absent(
            &ns,
            render::secrets::render_internal_secret(
                &owner,
                &render::secrets::InternalTokens::generate(),
            ),
        )
        .await?;
    if created && ap.status.is_some() {
        let internal = render::secrets::internal_secret_name(&owner);
        ctx.event(ap.as_ref(), EventType::Warning, "InternalSecretRegenerated", "Create",
            format!("Secret {internal} was missing and was generated again: restore it from a backup if you have one (stored passwords and TOTP enrolments need its old password-pepper), then restart the auth-server pods (kubectl rollout restart deployment/{}) so that they use it", owner.name));
    }
    let rotate_request = ap.annotations().get(ROTATE_ANNOTATION).map(String::as_str);
    let policy = desired::key_policy(spec);
    let keys = match ensure_keys(
        applier,
        &ctx.settled_keys,
        &owner,
        &policy,
        rotate_request,
        now,
    )
    .await
    {
        Err(KeysError::Kube(e)) => return Err(e.into()),
        other => other,
    };
    let keys_obs = match &keys {
        Ok(k) => {
            if k.emergency {
                ctx.metrics.key_rotations.inc();
                ctx.event(ap.as_ref(), EventType::Warning, "EmergencyKeyRotation", "RotateKeys",
                    format!("emergency rotation requested by annotation {ROTATE_ANNOTATION}: key {} signs now; every earlier key left JWKS and tokens they signed no longer verify", k.active_kid));
            } else if ap
                .status
                .as_ref()
                .and_then(|s| s.active_key_id.as_deref())
                .is_some_and(|old| old != k.active_kid)
            {
                ctx.metrics.key_rotations.inc();
                ctx.event(
                    ap.as_ref(),
                    EventType::Normal,
                    "KeyRotated",
                    "RotateKeys",
                    format!("key {} signs now", k.active_kid),
                );
            }
            Some(KeysObservation::Ready {
                active_kid: k.active_kid.clone(),
                until: k.until,
            })
        }
        Err(e) => Some(KeysObservation::Invalid {
            message: e.to_string(),
        }),
    };

    // 3. Owned objects (each write skipped when unchanged).
    applier
        .apply(&ns, render::service_account::render_service_account(&owner))
        .await?;
    applier
        .apply(&ns, render::service::render_public_service(&owner))
        .await?;
    applier
        .apply(&ns, render::service::render_admin_service(&owner))
        .await?;
    applier
        .apply(
            &ns,
            render::network_policy::render_network_policy(
                &owner,
                &ctx.config.operator_namespace,
                ctx.config.metrics_namespace.as_deref(),
            ),
        )
        .await?;
    match desired::ingress_input(spec) {
        Some(input) => {
            applier
                .apply(&ns, render::ingress::render_ingress(&owner, &input))
                .await?;
        }
        None => {
            applier
                .delete_owned::<Ingress>(&ns, &owner.name, &owner.reference.uid)
                .await?;
        }
    }

    // A pod whose secretKeyRef points nowhere cannot start, so a missing upstream secret
    // holds the rollout like a missing database Secret does.
    let can_run = database == SecretCheck::Present
        && redis.as_ref().is_none_or(|r| *r == SecretCheck::Present)
        && upstream_secrets
            .iter()
            .all(|(_, c)| *c == SecretCheck::Present);
    // The Deployment, through the rollout step (migration gate, rollback).
    let rollout = if can_run && keys.is_ok() {
        Some(super::rollout::step(&ctx, ap.as_ref(), &owner, now).await?)
    } else {
        None
    };
    match &scale.autoscaling {
        Some(input) => {
            applier
                .apply(&ns, render::hpa::render_hpa(&owner, input))
                .await?;
        }
        None => {
            applier
                .delete_owned::<HorizontalPodAutoscaler>(&ns, &owner.name, &owner.reference.uid)
                .await?;
        }
    }
    if render::pdb::wants_pdb(scale.max_replicas) {
        applier.apply(&ns, render::pdb::render_pdb(&owner)).await?;
    } else {
        applier
            .delete_owned::<PodDisruptionBudget>(&ns, &owner.name, &owner.reference.uid)
            .await?;
    }

    // 4. Status.
    let deployment = match &rollout {
        Some(r) => r.deployment.clone(),
        None => ctx
            .applier
            .get::<Deployment>(&ns, &owner.name)
            .await?
            .map(|d| d.as_ref().clone()),
    };
    let deployment_obs = deployment.as_ref().map(observe_deployment);
    let observed = Observed {
        generation: ap.metadata.generation,
        issuer: spec.issuer.clone(),
        database: database.clone(),
        redis,
        upstream_secrets,
        limited_without_redis: scale.limited_without_redis,
        deployment: deployment_obs.clone(),
        keys: keys_obs,
        rollout: rollout.as_ref().map(|r| r.report.clone()),
    };
    let verdicts = status::decide(&observed);
    let previous = ap.status.clone().unwrap_or_default();
    let new_status = AuthProviderStatus {
        observed_generation: ap.metadata.generation,
        conditions: status::merge(&previous.conditions, &verdicts, ap.metadata.generation, now),
        issuer: Some(spec.issuer.clone()),
        discovery_url: Some(desired::discovery_url(&spec.issuer)),
        upstream_redirect_uris: desired::upstream_redirect_uris(spec),
        replicas: deployment_obs.as_ref().map(|d| d.desired),
        ready_replicas: deployment_obs.as_ref().map(|d| d.ready),
        current_revision: deployment
            .as_ref()
            .and_then(|d| d.spec.as_ref())
            .and_then(|s| render::deployment::revision_of(&s.template).map(String::from)),
        last_good_revision: match &rollout {
            Some(r) => r.report.last_good_revision.clone(),
            None => previous.last_good_revision.clone(),
        },
        failed_revision: match &rollout {
            Some(r) => r.report.failed_revision.clone(),
            None => previous.failed_revision.clone(),
        },
        schema_version: rollout
            .as_ref()
            .and_then(|r| r.report.schema_version)
            .or(previous.schema_version),
        active_key_id: keys
            .as_ref()
            .ok()
            .map(|k| k.active_kid.clone())
            .or(previous.active_key_id.clone()),
        next_rotation: keys
            .as_ref()
            .ok()
            .map(|k| k.until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .or(previous.next_rotation.clone()),
    };
    if let Ok(k) = &keys {
        let labels = crate::metrics::ProviderLabels {
            namespace: ns.clone(),
            name: owner.name.clone(),
        };
        ctx.metrics
            .seconds_until_next_rotation
            .get_or_create(&labels)
            .set((k.until - now).num_milliseconds() as f64 / 1000.0);
        ctx.metrics
            .active_key_age_seconds
            .get_or_create(&labels)
            .set((now - k.active_since).num_milliseconds() as f64 / 1000.0);
        ctx.metrics
            .next_rotation_timestamp_seconds
            .get_or_create(&labels)
            .set(k.until.timestamp_millis() as f64 / 1000.0);
    }
    ctx.metrics.record_provider_status(
        &ns,
        &owner.name,
        new_status.is_ready(),
        now.timestamp_millis() as f64 / 1000.0,
    );
    if new_status != previous {
        let was_ready = previous.is_ready();
        write_status(&ctx, &ap, &new_status).await?;
        if new_status.is_ready() && !was_ready {
            ctx.event(
                ap.as_ref(),
                EventType::Normal,
                "Ready",
                "Reconcile",
                format!("issuer {} is ready", spec.issuer),
            );
        }
        if let (Some(msg), true) = (
            not_ready_cause(&new_status),
            was_ready || previous.conditions.is_empty(),
        ) {
            ctx.event(
                ap.as_ref(),
                EventType::Warning,
                "NotReady",
                "Reconcile",
                msg,
            );
        }
    }

    // 5. When to look again: the next key instant, sooner while not ready.
    let mut wait = RESYNC;
    if let Ok(k) = &keys {
        let until_keys = (k.next_wake - now)
            .to_std()
            .unwrap_or(Duration::from_secs(1));
        wait = wait.min(until_keys + Duration::from_millis(200));
    }
    if !new_status.is_ready() || rollout.as_ref().is_some_and(|r| r.busy) {
        wait = wait.min(SOON);
    }
    if let Some(deadline) = rollout.as_ref().and_then(|r| r.deadline) {
        let until = (deadline - now).to_std().unwrap_or_default();
        wait = wait.min(until + Duration::from_millis(500));
    }
    Ok(Action::requeue(wait))
}

fn observe_deployment(d: &Deployment) -> DeploymentObservation {
    let status = d.status.clone().unwrap_or_default();
    DeploymentObservation {
        desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        updated: status.updated_replicas.unwrap_or(0),
        ready: status.ready_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
        caught_up: status.observed_generation >= d.metadata.generation,
    }
}

/// The Ready condition's message when it is False for a reason a person must act on.
fn not_ready_cause(s: &AuthProviderStatus) -> Option<String> {
    s.conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "False" && c.reason.ends_with("Missing"))
        .map(|c| c.message.clone())
}

async fn write_status(
    ctx: &Context,
    ap: &AuthProvider,
    status: &AuthProviderStatus,
) -> Result<(), kube::Error> {
    let api: Api<AuthProvider> =
        Api::namespaced(ctx.client.clone(), &ap.namespace().unwrap_or_default());
    let patch = crate::status_patch::replace_status(ap.status.as_ref(), status);
    ctx.metrics.count_write("AuthProvider", "patch_status");
    api.patch_status(
        &ap.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Retry policy after an error.
pub fn error_policy(ap: Arc<AuthProvider>, error: &Error, ctx: Arc<Context>) -> Action {
    let retry = ctx
        .backoff
        .failed(crate::backoff::key(ap.as_ref()), std::time::Instant::now());
    tracing::warn!(%error, retry_in_seconds = retry.as_secs(), "reconcile failed");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&crate::metrics::ErrorLabels {
            controller: "authprovider",
            reason: error.reason(),
        })
        .inc();
    Action::requeue(retry)
}
