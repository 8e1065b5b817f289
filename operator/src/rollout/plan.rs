//! One rollout step, decided purely: given the desired pod template, the operator's record,
//! the migration gate and what the Deployment and its new pods report, which template to
//! apply, what to remember, what happened (for events and metrics) and what the status says.

use super::decision::{
    self, DeploymentProgress, FailureKind, PodHealth, RolloutObservation, Verdict,
};
use super::migration::MigrationStep;
use super::record::{FailedMigration, FailedRevision, GoodRevision, InFlight, RolloutRecord};
use super::revision::{image_of, revision_of};
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use std::time::Duration;

/// The pod template the spec asks for.
#[derive(Clone, Debug)]
pub struct Desired<'a> {
    pub template: &'a PodTemplateSpec,
    pub revision: &'a str,
    pub image: &'a str,
}

/// `spec.rollout`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub auto_rollback: bool,
    pub progress_deadline: Duration,
    pub max_restarts: i32,
}

/// The migration gate of the desired image.
#[derive(Clone, Debug)]
pub struct Migration<'a> {
    pub key: &'a str,
    pub job: &'a str,
    pub step: MigrationStep,
}

/// Everything one step looks at.
#[derive(Clone, Debug)]
pub struct PlanInput<'a> {
    pub desired: Desired<'a>,
    pub record: &'a RolloutRecord,
    pub migration: Migration<'a>,
    /// The live Deployment's pod template and progress, if it exists.
    pub live_template: Option<&'a PodTemplateSpec>,
    pub progress: Option<&'a DeploymentProgress>,
    /// Pods of the desired revision.
    pub new_pods: &'a [PodHealth],
    pub settings: &'a Settings,
    pub now: DateTime<Utc>,
}

/// What to do with the migration Job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobAction {
    Create,
    /// Delete the failed Job (back-off passed); it is created again on the next step.
    Delete,
}

/// Something that happened in this step, for events and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The desired revision is applied for the first time.
    Started,
    Succeeded,
    /// Failed and the last good revision was re-applied.
    RolledBack(FailureKind),
    /// Failed and left as it is (autoRollback off, or nothing to go back to).
    Failed(FailureKind),
    /// A new spec replaced an unfinished rollout.
    Superseded,
    MigrationStarted,
    MigrationSucceeded(Option<i64>),
    MigrationFailed(String),
    MigrationRetried,
}

/// What the status says about rollouts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// `Degraded=True` reason and message.
    pub degraded: Option<(&'static str, String)>,
    /// `RolledBack` status, reason and message.
    pub rolled_back: (bool, &'static str, String),
    /// Why the rollout waits, when it waits for something other than the pods.
    pub waiting: Option<String>,
    pub last_good_revision: Option<String>,
    pub failed_revision: Option<String>,
    pub schema_version: Option<i64>,
}

/// The result of one step.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The pod template to apply; `None`: do not create or change the Deployment's template.
    pub template: Option<PodTemplateSpec>,
    pub record: RolloutRecord,
    pub job: Option<JobAction>,
    pub outcomes: Vec<Outcome>,
    pub report: Report,
}

fn failure_message(
    f: &FailedRevision,
    last_good: Option<&GoodRevision>,
    deadline: Duration,
) -> String {
    let why = match f.reason.as_str() {
        "ProgressDeadlineExceeded" => format!(
            "the Deployment made no progress within {}s",
            deadline.as_secs()
        ),
        "RestartsExceeded" => "its pods restarted more than maxRestarts times".to_string(),
        _ => format!("its pods were not all ready within {}s", deadline.as_secs()),
    };
    let then = match (f.rolled_back, last_good) {
        (true, Some(g)) => format!(
            "; rolled back to revision {} (image {}). It is not tried again until the spec changes",
            g.revision, g.image
        ),
        (false, Some(_)) => "; left as it is because spec.rollout.autoRollback is false".into(),
        (_, None) => "; there is no earlier good revision to roll back to".into(),
    };
    format!(
        "revision {} (image {}) failed: {why}{then}",
        f.revision, f.image
    )
}

fn reason_of(f: &FailedRevision) -> &'static str {
    match f.reason.as_str() {
        "ProgressDeadlineExceeded" => FailureKind::ProgressDeadlineExceeded.as_str(),
        "RestartsExceeded" => FailureKind::RestartsExceeded.as_str(),
        _ => FailureKind::NotReadyInTime.as_str(),
    }
}

/// Whether a step judges the health of the desired revision's pods, so that the caller needs
/// to list them: only while that revision runs and is not yet the last good one. A settled
/// provider (the steady state, and every resync) costs no pod list.
pub fn judges_pods(
    record: &RolloutRecord,
    desired_revision: &str,
    live_revision: Option<&str>,
) -> bool {
    live_revision == Some(desired_revision)
        && record
            .last_good
            .as_ref()
            .is_none_or(|g| g.revision != desired_revision)
}

/// Whether a step may keep, re-apply or record the live pod template as it is, so that the
/// caller must pass the whole live template rather than the cache's trimmed copy (see
/// `trim`): while no good revision is recorded (the live one may become it), while the desired
/// revision is held as failed, and while the desired image's migration is open (`job_needed`:
/// the Deployment keeps what runs). Otherwise a step applies the desired or the last good
/// template from the record, and reads of the live template only its revision and image.
pub fn needs_live_template(
    record: &RolloutRecord,
    desired_revision: &str,
    job_needed: bool,
) -> bool {
    record.last_good.is_none()
        || record
            .failed
            .as_ref()
            .is_some_and(|f| f.revision == desired_revision)
        || job_needed
}

/// Decides one rollout step.
pub fn plan(input: &PlanInput) -> Plan {
    let mut record = input.record.clone();
    let mut outcomes = Vec::new();
    let mut job = None;
    let mut waiting = None;
    let desired = &input.desired;
    let live_revision = input.live_template.and_then(revision_of);
    let settings = input.settings;

    // No record of a good revision (a provider created before rollouts were tracked, or a
    // lost record): what the Deployment runs completely, and is not our own unfinished
    // rollout, is the revision to roll back to.
    if record.last_good.is_none() {
        if let (Some(live), Some(rev), Some(p)) =
            (input.live_template, live_revision, input.progress)
        {
            let ours = record.in_flight.as_ref().is_some_and(|f| f.revision == rev)
                || record.failed.as_ref().is_some_and(|f| f.revision == rev);
            if !ours && p.settled() && p.template_revision.as_deref() == Some(rev) {
                record.last_good = Some(GoodRevision {
                    revision: rev.into(),
                    image: image_of(live).unwrap_or_default().into(),
                    template: live.clone(),
                });
            }
        }
    }
    // A rollout of another revision is no longer judged once the spec asks for this one.
    if record
        .in_flight
        .as_ref()
        .is_some_and(|f| f.revision != desired.revision)
    {
        record.in_flight = None;
        outcomes.push(Outcome::Superseded);
    }
    // The last good revision ran on this database before: going back to it needs no
    // migration (migrations are backward compatible), whatever image it has.
    let back_to_good = record
        .last_good
        .as_ref()
        .is_some_and(|g| g.revision == desired.revision);
    let migration_step = if back_to_good {
        MigrationStep::NotNeeded
    } else {
        input.migration.step.clone()
    };
    // A failed migration of another image is history.
    if record
        .failed_migration
        .as_ref()
        .is_some_and(|m| m.key != input.migration.key)
    {
        record.failed_migration = None;
    }

    let held = record
        .failed
        .as_ref()
        .is_some_and(|f| f.revision == desired.revision);
    let template = if held {
        let failed = record.failed.clone().expect("held");
        if failed.rolled_back {
            // Keep the last good revision until the spec asks for something else.
            record.last_good.as_ref().map(|g| g.template.clone())
        } else {
            // Reported, not rolled back: leave the Deployment as it is, but notice a late
            // success (pods that became ready after all).
            let done = input.progress.is_some_and(|p| {
                decision::decide(&RolloutObservation {
                    desired_revision: desired.revision,
                    last_good_revision: None,
                    deployment: p,
                    new_pods: input.new_pods,
                    started_at: input.now,
                    progress_deadline: settings.progress_deadline,
                    max_restarts: i32::MAX,
                    now: input.now,
                }) == Verdict::Succeeded
            });
            if done {
                record.last_good = Some(GoodRevision {
                    revision: desired.revision.into(),
                    image: desired.image.into(),
                    template: desired.template.clone(),
                });
                record.failed = None;
                outcomes.push(Outcome::Succeeded);
            }
            Some(
                input
                    .live_template
                    .cloned()
                    .unwrap_or_else(|| desired.template.clone()),
            )
        }
    } else {
        // The migration gate: the new image's migration must have run.
        let proceed = match &migration_step {
            MigrationStep::NotNeeded => true,
            MigrationStep::Succeeded { schema_version } => {
                record.add_migrated(input.migration.key);
                if schema_version.is_some() {
                    record.schema_version = *schema_version;
                }
                outcomes.push(Outcome::MigrationSucceeded(*schema_version));
                true
            }
            MigrationStep::Create => {
                job = Some(JobAction::Create);
                outcomes.push(Outcome::MigrationStarted);
                waiting = Some(format!(
                    "waiting for migration Job {} (image {}) before rolling out revision {}",
                    input.migration.job, desired.image, desired.revision
                ));
                false
            }
            MigrationStep::Waiting => {
                waiting = Some(format!(
                    "waiting for migration Job {} (image {}) before rolling out revision {}",
                    input.migration.job, desired.image, desired.revision
                ));
                false
            }
            MigrationStep::Retry => {
                job = Some(JobAction::Delete);
                outcomes.push(Outcome::MigrationRetried);
                false
            }
            MigrationStep::Failed { message } => {
                let failure = FailedMigration {
                    key: input.migration.key.into(),
                    job: input.migration.job.into(),
                    image: desired.image.into(),
                    message: message.clone(),
                };
                if record.failed_migration.as_ref() != Some(&failure) {
                    outcomes.push(Outcome::MigrationFailed(message.clone()));
                    record.failed_migration = Some(failure);
                }
                false
            }
        };
        if !proceed {
            // Keep what runs (nothing, on a first rollout).
            input.live_template.cloned()
        } else {
            if record.failed_migration.is_some() {
                record.failed_migration = None;
            }
            let already_good = record
                .last_good
                .as_ref()
                .is_some_and(|g| g.revision == desired.revision);
            let in_flight = record
                .in_flight
                .as_ref()
                .is_some_and(|f| f.revision == desired.revision);
            if already_good {
                // Back on the last good revision (a revert in Git): once it runs completely,
                // an earlier failure is history.
                let settled = input.progress.is_some_and(|p| {
                    p.settled() && p.template_revision.as_deref() == Some(desired.revision)
                });
                if settled && record.failed.is_some() {
                    record.failed = None;
                }
            } else if !in_flight {
                record.in_flight = Some(InFlight {
                    revision: desired.revision.into(),
                    image: desired.image.into(),
                    started_at: input.now,
                });
                outcomes.push(Outcome::Started);
            } else if live_revision != Some(desired.revision) {
                // Recorded but not running yet (the apply failed, or another template was
                // put back meanwhile): the deadline counts from now, when it is applied.
                if let Some(f) = record.in_flight.as_mut() {
                    f.started_at = input.now;
                }
            }
            let mut template = desired.template.clone();
            if let (Some(flight), Some(progress), Some(_)) = (
                record.in_flight.clone(),
                input.progress,
                live_revision.filter(|r| *r == desired.revision),
            ) {
                let verdict = decision::decide(&RolloutObservation {
                    desired_revision: desired.revision,
                    last_good_revision: record.last_good.as_ref().map(|g| g.revision.as_str()),
                    deployment: progress,
                    new_pods: input.new_pods,
                    started_at: flight.started_at,
                    progress_deadline: settings.progress_deadline,
                    max_restarts: settings.max_restarts,
                    now: input.now,
                });
                match verdict {
                    Verdict::KeepWaiting => {}
                    Verdict::Succeeded => {
                        record.last_good = Some(GoodRevision {
                            revision: desired.revision.into(),
                            image: desired.image.into(),
                            template: desired.template.clone(),
                        });
                        record.in_flight = None;
                        record.failed = None;
                        outcomes.push(Outcome::Succeeded);
                    }
                    Verdict::RollBack { reason } => {
                        let back_to = record.last_good.as_ref().filter(|_| settings.auto_rollback);
                        record.failed = Some(FailedRevision {
                            revision: desired.revision.into(),
                            image: desired.image.into(),
                            reason: reason.as_str().into(),
                            rolled_back: back_to.is_some(),
                        });
                        record.in_flight = None;
                        match back_to {
                            Some(g) => {
                                template = g.template.clone();
                                outcomes.push(Outcome::RolledBack(reason));
                            }
                            None => {
                                // Leave the failed template in place.
                                outcomes.push(Outcome::Failed(reason));
                            }
                        }
                    }
                }
            }
            Some(template)
        }
    };

    let mut report = Report {
        rolled_back: (false, "NoRollback", "no rollback has happened".into()),
        waiting,
        last_good_revision: record.last_good.as_ref().map(|g| g.revision.clone()),
        failed_revision: record.failed.as_ref().map(|f| f.revision.clone()),
        schema_version: record.schema_version,
        degraded: None,
    };
    if let Some(f) = &record.failed {
        let message = failure_message(f, record.last_good.as_ref(), settings.progress_deadline);
        if f.rolled_back {
            report.rolled_back = (true, reason_of(f), message.clone());
        }
        // A failure of an older revision is history once another revision is asked for; it
        // stays visible in RolledBack until a rollout succeeds.
        if f.revision == desired.revision {
            report.degraded = Some((reason_of(f), message));
        }
    } else if record.last_good.is_some() {
        report.rolled_back = (
            false,
            "RolloutComplete",
            "the last rollout completed without a rollback".into(),
        );
    }
    if let Some(m) = &record.failed_migration {
        report.degraded = Some((
            "MigrationFailed",
            format!(
                "migration Job {} for image {} failed: {}; the Deployment keeps its current revision. Retried in {} minutes, or at once when the Job is deleted or the spec changes",
                m.job,
                m.image,
                m.message,
                super::migration::RETRY_AFTER.num_minutes()
            ),
        ));
    }
    Plan {
        template,
        record,
        job,
        outcomes,
        report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::revision;
    use k8s_openapi::api::core::v1::{Container, EnvVar, EnvVarSource, PodSpec, SecretKeySelector};

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    /// A template with more than the cache keeps of it (see `trim`), so that a step using a
    /// trimmed copy where it needs the whole one shows.
    fn template(image: &str) -> (PodTemplateSpec, String) {
        let mut t = PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "auth-server".into(),
                    image: Some(image.into()),
                    env: Some(vec![
                        EnvVar {
                            name: "PALISADE_ISSUER".into(),
                            value: Some("https://id.example.com".into()),
                            ..Default::default()
                        },
                        EnvVar {
                            name: palisade_wire::contract::env::DATABASE_URL.into(),
                            value_from: Some(EnvVarSource {
                                secret_key_ref: Some(SecretKeySelector {
                                    name: "db".into(),
                                    key: "uri".into(),
                                    optional: None,
                                }),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }],
                service_account_name: Some("dev".into()),
                ..Default::default()
            }),
        };
        let r = revision::stamp(&mut t);
        (t, r)
    }

    fn settings(auto_rollback: bool) -> Settings {
        Settings {
            auto_rollback,
            progress_deadline: Duration::from_secs(30),
            max_restarts: 3,
        }
    }

    #[derive(Clone)]
    struct World {
        desired: (PodTemplateSpec, String),
        image: String,
        record: RolloutRecord,
        live: Option<PodTemplateSpec>,
        progress: Option<DeploymentProgress>,
        pods: Vec<PodHealth>,
        migration: MigrationStep,
        settings: Settings,
    }

    impl World {
        /// One step; also checks, in every scenario, that a step for which [`judges_pods`]
        /// says no decides the same whatever the pods report.
        fn step(&self, now: i64) -> Plan {
            let planned = self.step_with(now, &self.pods);
            let job_needed = self.migration != MigrationStep::NotNeeded;
            if !needs_live_template(&self.record, &self.desired.1, job_needed) {
                let mut trimmed = self.live.clone();
                if let Some(t) = trimmed.as_mut() {
                    crate::trim::trim_pod_template(t);
                }
                let with_trimmed = World {
                    live: trimmed,
                    ..self.clone()
                };
                assert_eq!(
                    format!("{:?}", with_trimmed.step_with(now, &self.pods)),
                    format!("{planned:?}"),
                    "a step that needs no whole live template depends on it"
                );
            }
            let live_revision = self.live.as_ref().and_then(revision_of);
            if !judges_pods(&self.record, &self.desired.1, live_revision) {
                let crashing = [PodHealth {
                    restarts: 99,
                    ready: false,
                }; 3];
                for pods in [&[][..], &crashing[..]] {
                    assert_eq!(
                        format!("{:?}", self.step_with(now, pods)),
                        format!("{planned:?}"),
                        "a step that judges no pods depends on them"
                    );
                }
            }
            planned
        }

        fn step_with(&self, now: i64, pods: &[PodHealth]) -> Plan {
            plan(&PlanInput {
                desired: Desired {
                    template: &self.desired.0,
                    revision: &self.desired.1,
                    image: &self.image,
                },
                record: &self.record,
                migration: Migration {
                    key: "key2",
                    job: "dev-migrate-key2",
                    step: self.migration.clone(),
                },
                live_template: self.live.as_ref(),
                progress: self.progress.as_ref(),
                new_pods: pods,
                settings: &self.settings,
                now: t(now),
            })
        }
    }

    /// img:1 is good and live; the spec now asks for `image`.
    fn upgrade_to(image: &str) -> World {
        let (good, good_rev) = template("img:1");
        World {
            desired: template(image),
            image: image.into(),
            record: RolloutRecord {
                last_good: Some(GoodRevision {
                    revision: good_rev.clone(),
                    image: "img:1".into(),
                    template: good.clone(),
                }),
                ..Default::default()
            },
            live: Some(good),
            progress: Some(DeploymentProgress {
                template_revision: Some(good_rev),
                generation: Some(1),
                observed_generation: Some(1),
                replicas: 3,
                updated: 3,
                ready: 3,
                available: 3,
                deadline_exceeded: false,
            }),
            pods: vec![],
            migration: MigrationStep::NotNeeded,
            settings: settings(true),
        }
    }

    /// The world after the desired template was applied and the pods report `ready` of 3.
    fn applied(mut w: World, plan: Plan, ready: i32) -> World {
        w.record = plan.record;
        w.live = Some(w.desired.0.clone());
        w.progress = Some(DeploymentProgress {
            template_revision: Some(w.desired.1.clone()),
            generation: Some(2),
            observed_generation: Some(2),
            replicas: 3,
            updated: 3,
            ready,
            available: ready,
            deadline_exceeded: false,
        });
        w.pods = (0..3)
            .map(|i| PodHealth {
                restarts: 0,
                ready: i < ready,
            })
            .collect();
        w
    }

    #[test]
    fn a_healthy_upgrade_becomes_the_last_good_revision() {
        let w = upgrade_to("img:2");
        let p = w.step(0);
        assert_eq!(p.outcomes, [Outcome::Started]);
        assert_eq!(p.template.as_ref(), Some(&w.desired.0));
        let w = applied(w, p, 3);
        let p = w.step(5);
        assert_eq!(p.outcomes, [Outcome::Succeeded]);
        assert_eq!(
            p.report.last_good_revision.as_deref(),
            Some(w.desired.1.as_str())
        );
        assert_eq!(p.record.in_flight, None);
        assert_eq!(p.report.degraded, None);
    }

    #[test]
    fn a_broken_upgrade_is_rolled_back_and_held_until_the_spec_changes() {
        let w = upgrade_to("img:2-broken");
        let good = w.live.clone().unwrap();
        let p = w.step(0);
        let w = applied(w, p, 0);
        assert!(w.step(29).outcomes.is_empty(), "still within the deadline");
        let p = w.step(30);
        assert_eq!(
            p.outcomes,
            [Outcome::RolledBack(FailureKind::NotReadyInTime)]
        );
        assert_eq!(
            p.template.as_ref(),
            Some(&good),
            "the last good template again"
        );
        assert!(p.report.rolled_back.0);
        let (reason, message) = p.report.degraded.clone().unwrap();
        assert_eq!(reason, "NotReadyInTime");
        assert!(
            message.contains("img:2-broken") && message.contains(&w.desired.1),
            "{message}"
        );
        // Next steps keep the good template and report the same, without new outcomes.
        let mut held = w;
        held.record = p.record;
        held.live = Some(good.clone());
        let again = held.step(100);
        assert!(again.outcomes.is_empty());
        assert_eq!(again.template.as_ref(), Some(&good));
        assert_eq!(
            again.report.failed_revision.as_deref(),
            Some(held.desired.1.as_str())
        );
        // A new spec is rolled out; RolledBack stays True until it succeeds.
        held.desired = template("img:3");
        held.image = "img:3".into();
        let p = held.step(120);
        assert_eq!(p.outcomes, [Outcome::Started]);
        assert!(p.report.rolled_back.0);
        assert_eq!(p.report.degraded, None);
        let w = applied(held, p, 3);
        let p = w.step(125);
        assert_eq!(p.outcomes, [Outcome::Succeeded]);
        assert!(!p.report.rolled_back.0);
        assert_eq!(p.report.failed_revision, None);
    }

    #[test]
    fn without_auto_rollback_the_failure_is_reported_and_the_deployment_left_alone() {
        let mut w = upgrade_to("img:2-broken");
        w.settings = settings(false);
        let p = w.step(0);
        let w = applied(w, p, 0);
        let p = w.step(31);
        assert_eq!(p.outcomes, [Outcome::Failed(FailureKind::NotReadyInTime)]);
        assert_eq!(p.template.as_ref(), Some(&w.desired.0));
        assert!(!p.report.rolled_back.0);
        assert!(p
            .report
            .degraded
            .unwrap()
            .1
            .contains("autoRollback is false"));
    }

    #[test]
    fn a_running_or_failed_migration_keeps_the_current_revision() {
        let mut w = upgrade_to("img:2");
        let good = w.live.clone();
        w.migration = MigrationStep::Create;
        let p = w.step(0);
        assert_eq!(p.job, Some(JobAction::Create));
        assert_eq!(p.template, good);
        assert!(p.report.waiting.unwrap().contains("dev-migrate-key2"));
        w.migration = MigrationStep::Failed {
            message: "backoff limit".into(),
        };
        let p = w.step(10);
        assert_eq!(p.template, good);
        assert_eq!(
            p.outcomes,
            [Outcome::MigrationFailed("backoff limit".into())]
        );
        let (reason, message) = p.report.degraded.clone().unwrap();
        assert_eq!(reason, "MigrationFailed");
        assert!(message.contains("dev-migrate-key2") && message.contains("backoff limit"));
        // Seen again: no second event.
        w.record = p.record;
        assert!(w.step(20).outcomes.is_empty());
        // Success remembers the key and the reported schema version, then the rollout starts.
        w.migration = MigrationStep::Succeeded {
            schema_version: Some(2),
        };
        let p = w.step(30);
        assert_eq!(
            p.outcomes,
            [Outcome::MigrationSucceeded(Some(2)), Outcome::Started]
        );
        assert!(p.record.is_migrated("key2"));
        assert_eq!(p.report.schema_version, Some(2));
        assert_eq!(p.report.degraded, None);
        assert_eq!(p.template.as_ref(), Some(&w.desired.0));
    }

    #[test]
    fn a_first_rollout_waits_for_its_migration_before_any_deployment() {
        let (t1, r1) = template("img:1");
        let w = World {
            desired: (t1, r1),
            image: "img:1".into(),
            record: RolloutRecord::default(),
            live: None,
            progress: None,
            pods: vec![],
            migration: MigrationStep::Waiting,
            settings: settings(true),
        };
        assert_eq!(w.step(0).template, None);
    }

    #[test]
    fn a_failed_first_rollout_has_nothing_to_roll_back_to() {
        let (t1, r1) = template("img:1-broken");
        let w = World {
            desired: (t1, r1),
            image: "img:1-broken".into(),
            record: RolloutRecord::default(),
            live: None,
            progress: None,
            pods: vec![],
            migration: MigrationStep::NotNeeded,
            settings: settings(true),
        };
        let p = w.step(0);
        let w = applied(w, p, 0);
        let p = w.step(40);
        assert_eq!(p.outcomes, [Outcome::Failed(FailureKind::NotReadyInTime)]);
        assert_eq!(p.template.as_ref(), Some(&w.desired.0));
        assert!(p
            .report
            .degraded
            .unwrap()
            .1
            .contains("no earlier good revision"));
    }

    #[test]
    fn a_rollout_left_for_another_revision_is_superseded_and_restarts_its_clock_later() {
        // img:2 is rolling out (not ready yet) when the spec moves to img:3, whose migration
        // has not run: img:2 is no longer judged, so it cannot be rolled back or loop.
        let w = upgrade_to("img:2");
        let img2 = w.desired.clone();
        let p = w.step(0);
        let mut w = applied(w, p, 1);
        w.desired = template("img:3");
        w.image = "img:3".into();
        w.migration = MigrationStep::Waiting;
        let p = w.step(10);
        assert_eq!(p.outcomes, [Outcome::Superseded]);
        assert_eq!(p.record.in_flight, None);
        assert!(p.report.waiting.is_some());
        // Back to img:2 long after: a fresh rollout with a fresh deadline.
        w.record = p.record;
        w.desired = img2;
        w.image = "img:2".into();
        w.migration = MigrationStep::NotNeeded;
        let p = w.step(1000);
        assert_eq!(p.outcomes, [Outcome::Started]);
        assert_eq!(p.record.in_flight.as_ref().unwrap().started_at, t(1000));
        let later = applied(w, p, 0);
        assert!(
            later.step(1020).outcomes.is_empty(),
            "within the deadline counted from the new start"
        );
    }

    #[test]
    fn without_a_record_the_running_revision_becomes_the_rollback_target() {
        // An operator upgrade: no record, img:1 fully running, the spec asks for img:2.
        let mut w = upgrade_to("img:2-broken");
        let good = w.live.clone().unwrap();
        w.record = RolloutRecord::default();
        let p = w.step(0);
        assert_eq!(p.outcomes, [Outcome::Started]);
        assert_eq!(
            p.record.last_good.as_ref().map(|g| g.image.as_str()),
            Some("img:1")
        );
        let w = applied(w, p, 0);
        let p = w.step(30);
        assert_eq!(
            p.outcomes,
            [Outcome::RolledBack(FailureKind::NotReadyInTime)]
        );
        assert_eq!(p.template.as_ref(), Some(&good));
    }

    #[test]
    fn a_first_rollout_is_not_mistaken_for_a_running_good_revision() {
        let mut w = upgrade_to("img:1");
        w.record = RolloutRecord::default();
        w.live = None;
        w.progress = None;
        let p = w.step(0);
        assert_eq!(p.outcomes, [Outcome::Started]);
        let w = applied(w, p, 3);
        assert_eq!(w.step(5).outcomes, [Outcome::Succeeded]);
    }

    #[test]
    fn reverting_to_the_last_good_revision_needs_no_migration_and_clears_the_failure() {
        let w = upgrade_to("img:2-broken");
        let good_template = w.live.clone().unwrap();
        let good_revision = w.record.last_good.clone().unwrap().revision;
        let p = w.step(0);
        let w = applied(w, p, 0);
        let p = w.step(30);
        assert!(p.report.rolled_back.0);
        // The spec goes back to img:1 in Git; its image was never migrated by a Job.
        let mut w = w;
        w.record = p.record;
        w.desired = (good_template.clone(), good_revision.clone());
        w.image = "img:1".into();
        w.migration = MigrationStep::Create;
        w.live = Some(good_template.clone());
        {
            // The good pods run completely again.
            let progress = w.progress.as_mut().unwrap();
            progress.template_revision = Some(good_revision);
            (progress.updated, progress.ready, progress.available) = (3, 3, 3);
        }
        let p = w.step(40);
        assert_eq!(p.job, None, "no migration Job for the last good revision");
        assert_eq!(p.template.as_ref(), Some(&good_template));
        assert_eq!(p.report.failed_revision, None);
        assert!(!p.report.rolled_back.0, "{:?}", p.report.rolled_back);
        assert_eq!(p.report.degraded, None);
    }

    #[test]
    fn a_failed_migration_of_another_image_is_not_reported_for_this_one() {
        let mut w = upgrade_to("img:2");
        w.migration = MigrationStep::Failed {
            message: "relation missing".into(),
        };
        let p = w.step(0);
        assert_eq!(p.report.degraded.as_ref().unwrap().0, "MigrationFailed");
        // The spec moves to img:3 (another key); its Job is being created.
        w.record = p.record;
        w.desired = template("img:3");
        w.image = "img:3".into();
        w.migration = MigrationStep::Create;
        let p = plan(&PlanInput {
            desired: Desired {
                template: &w.desired.0,
                revision: &w.desired.1,
                image: &w.image,
            },
            record: &w.record,
            migration: Migration {
                key: "key3",
                job: "dev-migrate-key3",
                step: MigrationStep::Create,
            },
            live_template: w.live.as_ref(),
            progress: w.progress.as_ref(),
            new_pods: &w.pods,
            settings: &w.settings,
            now: t(5),
        });
        assert_eq!(p.record.failed_migration, None);
        assert_eq!(p.report.degraded, None);
        assert_eq!(p.job, Some(JobAction::Create));
    }
}
