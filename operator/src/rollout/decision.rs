//! Whether a rollout succeeded, failed or needs more time: a pure function of the Deployment's
//! status, the new pods' health, when the rollout started, the limits from the spec, and the
//! clock.

use super::revision::{revision_of, REVISION_ANNOTATION};
use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use std::time::Duration;

/// Why a rollout failed. The names are the `Degraded` condition's reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The Deployment controller reported `Progressing=False` / `ProgressDeadlineExceeded`.
    ProgressDeadlineExceeded,
    /// A new pod restarted more than `maxRestarts` times.
    RestartsExceeded,
    /// The new pods were not all ready within `progressDeadlineSeconds` of the rollout start.
    NotReadyInTime,
}

impl FailureKind {
    /// The condition reason and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            FailureKind::RestartsExceeded => "RestartsExceeded",
            FailureKind::NotReadyInTime => "NotReadyInTime",
        }
    }
}

/// The outcome of looking at a rollout once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not finished and not failed yet.
    KeepWaiting,
    /// Every replica runs the new revision and is available.
    Succeeded,
    /// The revision failed; go back to the last good one.
    RollBack { reason: FailureKind },
}

/// What the Deployment reports about its rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploymentProgress {
    /// The revision of the live pod template.
    pub template_revision: Option<String>,
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    /// Desired replicas.
    pub replicas: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    /// `Progressing=False` with reason `ProgressDeadlineExceeded`.
    pub deadline_exceeded: bool,
}

impl DeploymentProgress {
    /// Reads the progress out of a live Deployment.
    pub fn of(d: &Deployment) -> DeploymentProgress {
        let spec = d.spec.as_ref();
        let status = d.status.clone().unwrap_or_default();
        DeploymentProgress {
            template_revision: spec
                .and_then(|s| revision_of(&s.template))
                .map(String::from),
            generation: d.metadata.generation,
            observed_generation: status.observed_generation,
            replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
            updated: status.updated_replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            deadline_exceeded: status.conditions.unwrap_or_default().iter().any(|c| {
                c.type_ == "Progressing"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            }),
        }
    }

    /// Every replica runs the live template and is ready and available, and the controller
    /// has seen the latest spec.
    pub fn settled(&self) -> bool {
        self.caught_up()
            && !self.deadline_exceeded
            && self.updated >= self.replicas
            && self.ready >= self.replicas
            && self.available >= self.replicas
    }

    /// The Deployment controller has seen the latest spec.
    pub fn caught_up(&self) -> bool {
        match (self.observed_generation, self.generation) {
            (Some(o), Some(g)) => o >= g,
            (_, None) => true,
            (None, Some(_)) => false,
        }
    }
}

/// Health of one pod of the new revision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PodHealth {
    /// Restarts summed over its containers.
    pub restarts: i32,
    pub ready: bool,
}

impl PodHealth {
    /// Reads a pod's health.
    pub fn of(pod: &Pod) -> PodHealth {
        let status = pod.status.clone().unwrap_or_default();
        PodHealth {
            restarts: status
                .container_statuses
                .unwrap_or_default()
                .iter()
                .map(|c| c.restart_count)
                .sum(),
            ready: status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
        }
    }

    /// The health of the pods in `pods` that run `revision` (pods carry their template's
    /// revision annotation).
    pub fn of_revision(pods: &[Pod], revision: &str) -> Vec<PodHealth> {
        pods.iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(REVISION_ANNOTATION))
                        .is_some_and(|r| r == revision)
            })
            .map(PodHealth::of)
            .collect()
    }
}

/// Everything the rollback decision looks at.
#[derive(Clone, Debug)]
pub struct RolloutObservation<'a> {
    /// The revision being rolled out.
    pub desired_revision: &'a str,
    pub last_good_revision: Option<&'a str>,
    pub deployment: &'a DeploymentProgress,
    /// Pods of the desired revision.
    pub new_pods: &'a [PodHealth],
    /// When the desired revision was applied.
    pub started_at: DateTime<Utc>,
    /// `spec.rollout.progressDeadlineSeconds`.
    pub progress_deadline: Duration,
    /// `spec.rollout.maxRestarts`.
    pub max_restarts: i32,
    pub now: DateTime<Utc>,
}

/// Decides the state of a rollout.
pub fn decide(obs: &RolloutObservation) -> Verdict {
    if obs.last_good_revision == Some(obs.desired_revision) {
        return Verdict::Succeeded;
    }
    let d = obs.deployment;
    let applied = d.template_revision.as_deref() == Some(obs.desired_revision);
    if applied && obs.new_pods.iter().any(|p| p.restarts > obs.max_restarts) {
        return Verdict::RollBack {
            reason: FailureKind::RestartsExceeded,
        };
    }
    let current = applied && d.caught_up();
    if current
        && d.updated >= d.replicas
        && d.available >= d.replicas
        && d.ready >= d.replicas
        && obs.new_pods.iter().filter(|p| p.ready).count() as i32 >= d.replicas
    {
        return Verdict::Succeeded;
    }
    // Conditions from before the controller saw this template describe an older revision.
    if current && d.deadline_exceeded {
        return Verdict::RollBack {
            reason: FailureKind::ProgressDeadlineExceeded,
        };
    }
    let deadline =
        chrono::Duration::from_std(obs.progress_deadline).unwrap_or(chrono::Duration::MAX);
    if obs.now - obs.started_at >= deadline {
        return Verdict::RollBack {
            reason: FailureKind::NotReadyInTime,
        };
    }
    Verdict::KeepWaiting
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn progress(updated: i32, ready: i32) -> DeploymentProgress {
        DeploymentProgress {
            template_revision: Some("new".into()),
            generation: Some(4),
            observed_generation: Some(4),
            replicas: 3,
            updated,
            ready,
            available: ready,
            deadline_exceeded: false,
        }
    }

    fn healthy_pods(n: usize) -> Vec<PodHealth> {
        vec![
            PodHealth {
                restarts: 0,
                ready: true
            };
            n
        ]
    }

    fn observe<'a>(
        d: &'a DeploymentProgress,
        pods: &'a [PodHealth],
        now: i64,
    ) -> RolloutObservation<'a> {
        RolloutObservation {
            desired_revision: "new",
            last_good_revision: Some("old"),
            deployment: d,
            new_pods: pods,
            started_at: t(0),
            progress_deadline: Duration::from_secs(30),
            max_restarts: 3,
            now: t(now),
        }
    }

    #[test]
    fn all_replicas_updated_and_available_is_success() {
        let d = progress(3, 3);
        let pods = healthy_pods(3);
        assert_eq!(decide(&observe(&d, &pods, 12)), Verdict::Succeeded);
    }

    #[test]
    fn within_the_deadline_a_partial_rollout_keeps_waiting() {
        let d = progress(2, 2);
        let pods = healthy_pods(2);
        assert_eq!(decide(&observe(&d, &pods, 29)), Verdict::KeepWaiting);
    }

    #[test]
    fn a_controller_that_has_not_seen_the_template_is_not_success() {
        let mut d = progress(3, 3);
        d.observed_generation = Some(3);
        let pods = healthy_pods(3);
        assert_eq!(decide(&observe(&d, &pods, 5)), Verdict::KeepWaiting);
        d.template_revision = Some("old".into());
        d.observed_generation = Some(4);
        assert_eq!(decide(&observe(&d, &pods, 5)), Verdict::KeepWaiting);
    }

    #[test]
    fn not_ready_at_the_deadline_rolls_back() {
        let d = progress(1, 0);
        let pods = vec![PodHealth {
            restarts: 0,
            ready: false,
        }];
        assert_eq!(
            decide(&observe(&d, &pods, 30)),
            Verdict::RollBack {
                reason: FailureKind::NotReadyInTime
            }
        );
    }

    #[test]
    fn restarts_beyond_the_limit_roll_back_before_the_deadline() {
        let d = progress(3, 2);
        let mut pods = healthy_pods(2);
        pods.push(PodHealth {
            restarts: 4,
            ready: false,
        });
        assert_eq!(
            decide(&observe(&d, &pods, 3)),
            Verdict::RollBack {
                reason: FailureKind::RestartsExceeded
            }
        );
        pods[2].restarts = 3;
        assert_eq!(
            decide(&observe(&d, &pods, 3)),
            Verdict::KeepWaiting,
            "3 of 3 allowed"
        );
    }

    #[test]
    fn the_deployment_controllers_deadline_rolls_back() {
        let deployment = Deployment {
            metadata: ObjectMeta {
                generation: Some(4),
                annotations: None,
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(3),
                template: k8s_openapi::api::core::v1::PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        annotations: Some(BTreeMap::from([(
                            REVISION_ANNOTATION.to_string(),
                            "new".to_string(),
                        )])),
                        ..Default::default()
                    }),
                    spec: None,
                },
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(4),
                replicas: Some(4),
                updated_replicas: Some(1),
                ready_replicas: Some(3),
                available_replicas: Some(3),
                conditions: Some(vec![DeploymentCondition {
                    type_: "Progressing".into(),
                    status: "False".into(),
                    reason: Some("ProgressDeadlineExceeded".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        };
        let d = DeploymentProgress::of(&deployment);
        assert!(d.deadline_exceeded);
        assert_eq!(d.template_revision.as_deref(), Some("new"));
        let pods = vec![PodHealth::default()];
        assert_eq!(
            decide(&observe(&d, &pods, 10)),
            Verdict::RollBack {
                reason: FailureKind::ProgressDeadlineExceeded
            }
        );
        // The same condition before the controller saw the new template is about the old one.
        let mut stale = d.clone();
        stale.observed_generation = Some(3);
        assert_eq!(decide(&observe(&stale, &pods, 10)), Verdict::KeepWaiting);
    }

    #[test]
    fn the_last_good_revision_is_never_rolled_back() {
        let d = progress(0, 0);
        let mut obs = observe(&d, &[], 1000);
        obs.last_good_revision = Some("new");
        assert_eq!(decide(&obs), Verdict::Succeeded);
    }

    #[test]
    fn pod_health_reads_restarts_readiness_and_revision() {
        let pod = |rev: &str, restarts: i32, ready: &str| Pod {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(
                    REVISION_ANNOTATION.to_string(),
                    rev.to_string(),
                )])),
                ..Default::default()
            },
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    restart_count: restarts,
                    ..Default::default()
                }]),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pods = [
            pod("old", 9, "True"),
            pod("new", 2, "False"),
            pod("new", 0, "True"),
        ];
        assert_eq!(
            PodHealth::of_revision(&pods, "new"),
            [
                PodHealth {
                    restarts: 2,
                    ready: false
                },
                PodHealth {
                    restarts: 0,
                    ready: true
                }
            ]
        );
    }
}
