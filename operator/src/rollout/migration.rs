//! The migration gate: before pods of a new image serve, the image's `migrate` runs once as a
//! Job. A pure decision of the migration key, what the operator remembers, the Job's state and
//! the clock.

use super::record::RolloutRecord;
use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::api::core::v1::Pod;
use palisade_wire::contract::migration;

/// How long a failed migration Job is left alone before it is deleted and run once more. Until
/// then (or until the spec asks for another image or database) the failure stands.
pub const RETRY_AFTER: chrono::Duration = chrono::Duration::minutes(10);

/// What a migration Job is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    Running,
    /// `schema_version` is what `migrate` reported in its termination message, if it did.
    Succeeded {
        schema_version: Option<i64>,
    },
    Failed {
        message: String,
        at: DateTime<Utc>,
    },
}

/// The Job's condition `type_` (`Complete`, `Failed`) when it is True.
fn condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

impl JobState {
    /// Whether the Job has finished, so that [`JobState::of`] reads its pods' termination
    /// messages; a running Job's pods say nothing yet and need not be listed.
    pub fn reads_pods(job: &Job) -> bool {
        condition(job, "Complete").is_some() || condition(job, "Failed").is_some()
    }

    /// Reads a Job's state; `pods` are its pods (for the termination messages).
    pub fn of(job: &Job, pods: &[Pod]) -> JobState {
        let messages: Vec<String> = pods
            .iter()
            .filter_map(|p| p.status.as_ref()?.container_statuses.clone())
            .flatten()
            .filter_map(|c| c.state?.terminated?.message)
            .filter(|m| !m.trim().is_empty())
            .collect();
        let finished = |type_: &str| condition(job, type_);
        if finished("Complete").is_some() {
            return JobState::Succeeded {
                schema_version: messages.iter().find_map(|m| migration::parse_report(m)),
            };
        }
        if let Some(c) = finished("Failed") {
            let mut message = c
                .message
                .clone()
                .or(c.reason.clone())
                .unwrap_or_else(|| "the migration Job failed".into());
            if let Some(last) = messages.last() {
                let last = last.trim();
                let tail: String = last
                    .chars()
                    .skip(last.chars().count().saturating_sub(300))
                    .collect();
                message = format!("{message}; the migration said: {tail}");
            }
            let at = c
                .last_transition_time
                .as_ref()
                .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0))
                .unwrap_or(DateTime::UNIX_EPOCH);
            return JobState::Failed { message, at };
        }
        JobState::Running
    }
}

/// What to do about the migration before the new pods may start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MigrationStep {
    /// This image already ran its migration here (or already serves): go ahead.
    NotNeeded,
    /// Create the Job.
    Create,
    /// The Job runs; keep the current revision.
    Waiting,
    /// The Job just succeeded: remember it and go ahead.
    Succeeded { schema_version: Option<i64> },
    /// The Job failed: keep the current revision.
    Failed { message: String },
    /// The back-off has passed: delete the failed Job so that it runs again.
    Retry,
}

/// Whether the migration `key` still needs its Job looked at: it is neither recorded as done
/// nor what the live Deployment already runs.
pub fn job_needed(key: &str, running_key: Option<&str>, record: &RolloutRecord) -> bool {
    !record.is_migrated(key) && running_key != Some(key)
}

/// Decides the migration step for the migration `key`. `running_key` is the key of the image
/// and database the live Deployment runs (they need nothing), `job` the state of the Job named
/// for `key`.
pub fn next_step(
    key: &str,
    running_key: Option<&str>,
    record: &RolloutRecord,
    job: Option<&JobState>,
    now: DateTime<Utc>,
) -> MigrationStep {
    if !job_needed(key, running_key, record) {
        return MigrationStep::NotNeeded;
    }
    match job {
        None => MigrationStep::Create,
        Some(JobState::Running) => MigrationStep::Waiting,
        Some(JobState::Succeeded { schema_version }) => MigrationStep::Succeeded {
            schema_version: *schema_version,
        },
        Some(JobState::Failed { message, at }) => {
            if now - *at >= RETRY_AFTER {
                MigrationStep::Retry
            } else {
                MigrationStep::Failed {
                    message: message.clone(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
    };

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn job(type_: &str, message: Option<&str>) -> Job {
        Job {
            status: Some(JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: type_.into(),
                    status: "True".into(),
                    message: message.map(String::from),
                    last_transition_time: Some(crate::provider::status::to_time(t(0))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod_with_message(message: &str) -> Pod {
        Pod {
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 0,
                            message: Some(message.into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn job_state_reads_the_reported_schema_version_and_failure_messages() {
        assert_eq!(
            JobState::of(
                &job("Complete", None),
                &[pod_with_message("schema version 4")]
            ),
            JobState::Succeeded {
                schema_version: Some(4)
            }
        );
        assert_eq!(
            JobState::of(&job("Complete", None), &[]),
            JobState::Succeeded {
                schema_version: None
            },
            "no report, no version: unknown rather than guessed"
        );
        let failed = JobState::of(
            &job(
                "Failed",
                Some("Job has reached the specified backoff limit"),
            ),
            &[pod_with_message("error: relation \"clients\" is locked")],
        );
        match failed {
            JobState::Failed { message, at } => {
                assert!(message.contains("backoff limit"), "{message}");
                assert!(message.contains("is locked"), "{message}");
                assert_eq!(at, t(0));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(JobState::of(&Job::default(), &[]), JobState::Running);
        assert!(JobState::reads_pods(&job("Complete", None)));
        assert!(JobState::reads_pods(&job("Failed", Some("x"))));
        assert!(!JobState::reads_pods(&Job::default()));
        assert!(!JobState::reads_pods(&job("Suspended", None)));
    }

    #[test]
    fn an_image_is_migrated_once() {
        let mut record = RolloutRecord::default();
        assert_eq!(
            next_step("k", None, &record, None, t(0)),
            MigrationStep::Create
        );
        assert_eq!(
            next_step("k", None, &record, Some(&JobState::Running), t(0)),
            MigrationStep::Waiting
        );
        assert!(job_needed("k", None, &record));
        assert!(job_needed("k", Some("other"), &record));
        record.add_migrated("k");
        assert!(
            !job_needed("k", None, &record),
            "recorded: the Job is not read"
        );
        assert!(!job_needed("live", Some("live"), &RolloutRecord::default()));
        // Even once the finished Job is gone, the image is not migrated again.
        assert_eq!(
            next_step("k", None, &record, None, t(0)),
            MigrationStep::NotNeeded
        );
        // The image the Deployment runs already needs nothing.
        assert_eq!(
            next_step("live", Some("live"), &RolloutRecord::default(), None, t(0)),
            MigrationStep::NotNeeded
        );
    }

    #[test]
    fn a_failed_job_is_not_recreated_until_the_back_off_has_passed() {
        let record = RolloutRecord::default();
        let failed = JobState::Failed {
            message: "boom".into(),
            at: t(0),
        };
        assert_eq!(
            next_step("k", None, &record, Some(&failed), t(599)),
            MigrationStep::Failed {
                message: "boom".into()
            }
        );
        assert_eq!(
            next_step("k", None, &record, Some(&failed), t(600)),
            MigrationStep::Retry
        );
    }
}
