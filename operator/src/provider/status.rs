//! Status decisions for an AuthProvider, as pure functions of what was observed and the clock.
//! Reasons form a small vocabulary users can search for:
//! `Available`, `Progressing`, `DatabaseSecretMissing`, `RedisSecretMissing`,
//! `UpstreamSecretMissing`,
//! `SingleReplicaWithoutRedis`, `RolloutComplete`, `RolloutInProgress`, `WaitingForMigration`,
//! `AsExpected`, `KeySetCurrent`, `KeySetInvalid`, and for rollouts `ProgressDeadlineExceeded`,
//! `RestartsExceeded`, `NotReadyInTime`, `MigrationFailed`, `NoRollback`.

use crate::rollout::plan::Report;
use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A Secret key the provider needs, and whether it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretCheck {
    Present,
    /// The Secret or the key is missing.
    Missing {
        namespace: String,
        name: String,
        key: String,
        secret_exists: bool,
    },
}

/// What the Deployment reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploymentObservation {
    pub desired: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    /// The Deployment controller has seen the latest spec.
    pub caught_up: bool,
}

/// What the signing-key step reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeysObservation {
    Ready {
        active_kid: String,
        until: DateTime<Utc>,
    },
    Invalid {
        message: String,
    },
}

/// Everything the conditions depend on.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub generation: Option<i64>,
    pub issuer: String,
    pub database: SecretCheck,
    pub redis: Option<SecretCheck>,
    /// Each upstream provider's client-secret check, by upstream name.
    pub upstream_secrets: Vec<(String, SecretCheck)>,
    pub limited_without_redis: bool,
    pub deployment: Option<DeploymentObservation>,
    pub keys: Option<KeysObservation>,
    /// What the rollout step reports (absent while the provider cannot run at all).
    pub rollout: Option<Report>,
}

/// One condition's desired content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub type_: &'static str,
    pub ok: bool,
    pub reason: &'static str,
    pub message: String,
}

fn verdict(
    type_: &'static str,
    ok: bool,
    reason: &'static str,
    message: impl Into<String>,
) -> Verdict {
    Verdict {
        type_,
        ok,
        reason,
        message: message.into(),
    }
}

fn missing_message(what: &str, check: &SecretCheck) -> Option<String> {
    secret_missing_message(
        &format!("{what} Secret"),
        &format!("{what}.urlSecretRef.key"),
        &format!("the {what} URL"),
        check,
    )
}

/// The message of the first upstream whose client secret is missing.
fn upstream_missing_message(checks: &[(String, SecretCheck)]) -> Option<String> {
    checks.iter().find_map(|(upstream, check)| {
        secret_missing_message(
            &format!("upstream {upstream}: client-secret Secret"),
            "upstreams[].clientSecretRef.key",
            "the client secret",
            check,
        )
    })
}

/// What to do about a missing Secret (`secret` names it) or key (`key_field` names the field
/// choosing it; `content` is what belongs under the key).
fn secret_missing_message(
    secret: &str,
    key_field: &str,
    content: &str,
    check: &SecretCheck,
) -> Option<String> {
    match check {
        SecretCheck::Present => None,
        SecretCheck::Missing {
            namespace,
            name,
            key,
            secret_exists,
        } => Some(if *secret_exists {
            format!("{secret} {namespace}/{name} has no key \"{key}\"; add the key or change {key_field}")
        } else {
            format!("{secret} {namespace}/{name} does not exist; create it with {content} under key \"{key}\"")
        }),
    }
}

/// Decides the Ready, Progressing, Degraded and KeysReady conditions.
pub fn decide(obs: &Observed) -> Vec<Verdict> {
    let mut out = Vec::new();
    let db_missing = missing_message("database", &obs.database);
    let redis_missing = obs.redis.as_ref().and_then(|c| missing_message("redis", c));
    let rollout_done = obs.deployment.as_ref().map(|d| {
        d.caught_up
            && d.updated >= d.desired
            && d.ready >= d.desired
            && d.available >= d.desired
            && d.desired > 0
    });
    // Ready means the issuer is served at full strength, whichever revision serves it: during a
    // rollout (old pods stay until new ones are available) and after a failed one left as it
    // is, the provider stays Ready and Progressing or Degraded tell the rest.
    let serving = obs
        .deployment
        .as_ref()
        .map(|d| d.ready >= d.desired && d.available >= d.desired && d.desired > 0);

    let waiting = obs.rollout.as_ref().and_then(|r| r.waiting.clone());
    out.push(if let Some(msg) = db_missing {
        verdict("Ready", false, "DatabaseSecretMissing", msg)
    } else if let Some(msg) = redis_missing {
        verdict("Ready", false, "RedisSecretMissing", msg)
    } else if let Some(msg) = upstream_missing_message(&obs.upstream_secrets) {
        verdict("Ready", false, "UpstreamSecretMissing", msg)
    } else {
        match (&obs.deployment, serving) {
            (Some(d), Some(true)) => verdict(
                "Ready",
                true,
                "Available",
                format!(
                    "issuer {} is served by {} ready replica(s)",
                    obs.issuer, d.ready
                ),
            ),
            (Some(d), _) => verdict(
                "Ready",
                false,
                "Progressing",
                format!(
                    "{} of {} replica(s) ready; waiting for the auth-server pods",
                    d.ready, d.desired
                ),
            ),
            (None, _) => verdict(
                "Ready",
                false,
                "Progressing",
                waiting
                    .clone()
                    .unwrap_or_else(|| "creating the auth-server Deployment".into()),
            ),
        }
    });

    out.push(match (&obs.deployment, rollout_done) {
        _ if waiting.is_some() => verdict(
            "Progressing",
            true,
            "WaitingForMigration",
            waiting.clone().unwrap_or_default(),
        ),
        (Some(_), Some(true)) => verdict(
            "Progressing",
            false,
            "RolloutComplete",
            "all replicas run the current revision",
        ),
        (Some(d), _) => verdict(
            "Progressing",
            true,
            "RolloutInProgress",
            format!(
                "{} of {} replica(s) updated, {} ready",
                d.updated, d.desired, d.ready
            ),
        ),
        (None, _) => verdict(
            "Progressing",
            true,
            "RolloutInProgress",
            "waiting for the Deployment",
        ),
    });

    let rollout_degraded = obs.rollout.as_ref().and_then(|r| r.degraded.clone());
    out.push(if let Some((reason, message)) = rollout_degraded {
        verdict("Degraded", true, reason, message)
    } else if obs.limited_without_redis {
        verdict(
            "Degraded",
            true,
            "SingleReplicaWithoutRedis",
            "running 1 replica because spec.redis is not set: replicas share rate limits and state through Redis; set spec.redis to scale out",
        )
    } else {
        verdict("Degraded", false, "AsExpected", "no problems found")
    });

    if let Some(r) = &obs.rollout {
        let (rolled_back, reason, message) = &r.rolled_back;
        out.push(verdict("RolledBack", *rolled_back, reason, message.clone()));
    }
    if let Some(keys) = &obs.keys {
        out.push(match keys {
            KeysObservation::Ready { active_kid, until } => verdict(
                "KeysReady",
                true,
                "KeySetCurrent",
                format!(
                    "key {active_kid} signs until {}; its successor is scheduled and published ahead of it",
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            ),
            KeysObservation::Invalid { message } => {
                verdict("KeysReady", false, "KeySetInvalid", message.clone())
            }
        });
    }
    out
}

/// Converts the clock's instant to a Kubernetes `Time` (whole seconds, as the API stores it).
pub fn to_time(t: DateTime<Utc>) -> Time {
    Time(
        k8s_openapi::jiff::Timestamp::from_second(t.timestamp())
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

/// Merges verdicts into the previous conditions: `lastTransitionTime` moves only when a
/// condition's status changes; conditions not decided here are kept.
pub fn merge(
    previous: &[Condition],
    verdicts: &[Verdict],
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = previous
        .iter()
        .filter(|c| !verdicts.iter().any(|v| v.type_ == c.type_))
        .cloned()
        .collect();
    for v in verdicts {
        let status = if v.ok { "True" } else { "False" };
        let since = previous
            .iter()
            .find(|c| c.type_ == v.type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| to_time(now));
        out.push(Condition {
            type_: v.type_.to_string(),
            status: status.to_string(),
            reason: v.reason.to_string(),
            message: v.message.clone(),
            last_transition_time: since,
            observed_generation: generation,
        });
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_secret_messages_say_what_to_create_or_change() {
        let missing = |secret_exists| SecretCheck::Missing {
            namespace: "ns".into(),
            name: "pg".into(),
            key: "uri".into(),
            secret_exists,
        };
        assert_eq!(
            missing_message("database", &missing(false)).unwrap(),
            "database Secret ns/pg does not exist; create it with the database URL under key \"uri\""
        );
        assert_eq!(
            missing_message("database", &missing(true)).unwrap(),
            "database Secret ns/pg has no key \"uri\"; add the key or change database.urlSecretRef.key"
        );
        assert_eq!(
            upstream_missing_message(&[("corp".into(), missing(true))]).unwrap(),
            "upstream corp: client-secret Secret ns/pg has no key \"uri\"; add the key or change upstreams[].clientSecretRef.key"
        );
        assert_eq!(missing_message("redis", &SecretCheck::Present), None);
    }

    fn healthy() -> Observed {
        Observed {
            generation: Some(3),
            issuer: "https://id.example.com".into(),
            database: SecretCheck::Present,
            redis: Some(SecretCheck::Present),
            upstream_secrets: vec![("google".into(), SecretCheck::Present)],
            limited_without_redis: false,
            deployment: Some(DeploymentObservation {
                desired: 2,
                updated: 2,
                ready: 2,
                available: 2,
                caught_up: true,
            }),
            keys: Some(KeysObservation::Ready {
                active_kid: "k1".into(),
                until: DateTime::from_timestamp(0, 0).unwrap(),
            }),
            rollout: None,
        }
    }

    fn find<'a>(v: &'a [Verdict], t: &str) -> &'a Verdict {
        v.iter().find(|x| x.type_ == t).unwrap()
    }

    #[test]
    fn healthy_provider_is_ready_and_not_progressing() {
        let v = decide(&healthy());
        assert!(find(&v, "Ready").ok);
        assert_eq!(find(&v, "Ready").reason, "Available");
        assert!(!find(&v, "Progressing").ok);
        assert!(!find(&v, "Degraded").ok);
        assert!(find(&v, "KeysReady").ok);
    }

    #[test]
    fn missing_database_key_names_the_secret_and_key() {
        let mut obs = healthy();
        obs.database = SecretCheck::Missing {
            namespace: "ns".into(),
            name: "pg".into(),
            key: "uri".into(),
            secret_exists: true,
        };
        let ready = find(&decide(&obs), "Ready").clone();
        assert!(!ready.ok);
        assert_eq!(ready.reason, "DatabaseSecretMissing");
        assert!(
            ready.message.contains("ns/pg") && ready.message.contains("\"uri\""),
            "{}",
            ready.message
        );
    }

    #[test]
    fn missing_upstream_secret_names_the_upstream_secret_and_key() {
        let mut obs = healthy();
        obs.upstream_secrets.push((
            "entra".into(),
            SecretCheck::Missing {
                namespace: "ns".into(),
                name: "entra-oidc".into(),
                key: "client-secret".into(),
                secret_exists: false,
            },
        ));
        let ready = find(&decide(&obs), "Ready").clone();
        assert!(!ready.ok);
        assert_eq!(ready.reason, "UpstreamSecretMissing");
        assert!(
            ready.message.contains("upstream entra")
                && ready.message.contains("ns/entra-oidc")
                && ready.message.contains("does not exist")
                && ready.message.contains("\"client-secret\""),
            "{}",
            ready.message
        );
    }

    #[test]
    fn a_rollout_served_at_full_strength_stays_ready() {
        let mut obs = healthy();
        obs.deployment = Some(DeploymentObservation {
            desired: 2,
            updated: 1,
            ready: 2,
            available: 2,
            caught_up: true,
        });
        let v = decide(&obs);
        assert!(
            find(&v, "Ready").ok,
            "the old pods serve until new ones are available"
        );
        assert_eq!(find(&v, "Progressing").reason, "RolloutInProgress");
        obs.deployment.as_mut().unwrap().caught_up = false;
        assert!(
            find(&decide(&obs), "Ready").ok,
            "a spec the Deployment has not seen yet"
        );
    }

    #[test]
    fn a_replica_short_is_not_ready() {
        let mut obs = healthy();
        obs.deployment = Some(DeploymentObservation {
            desired: 2,
            updated: 1,
            ready: 1,
            available: 1,
            caught_up: true,
        });
        let v = decide(&obs);
        assert!(!find(&v, "Ready").ok);
        assert!(find(&v, "Progressing").ok);
        assert!(find(&v, "Ready").message.contains("1 of 2"));
    }

    #[test]
    fn single_replica_without_redis_is_explained() {
        let mut obs = healthy();
        obs.limited_without_redis = true;
        let d = find(&decide(&obs), "Degraded").clone();
        assert!(d.ok);
        assert_eq!(d.reason, "SingleReplicaWithoutRedis");
    }

    #[test]
    fn a_rollback_is_degraded_and_rolled_back_while_the_old_revision_serves() {
        let mut obs = healthy();
        obs.limited_without_redis = true;
        obs.rollout = Some(Report {
            degraded: Some((
                "NotReadyInTime",
                "revision abc (image x-broken) failed".into(),
            )),
            rolled_back: (
                true,
                "NotReadyInTime",
                "revision abc (image x-broken) failed".into(),
            ),
            ..Default::default()
        });
        let v = decide(&obs);
        let degraded = find(&v, "Degraded");
        assert!(degraded.ok);
        assert_eq!(
            degraded.reason, "NotReadyInTime",
            "the rollout failure comes first"
        );
        assert!(find(&v, "RolledBack").ok);
        assert!(find(&v, "Ready").ok, "the last good revision serves");
    }

    #[test]
    fn a_running_migration_is_progress_not_readiness() {
        let mut obs = healthy();
        obs.deployment = None;
        obs.rollout = Some(Report {
            waiting: Some("waiting for migration Job dev-migrate-1".into()),
            ..Default::default()
        });
        let v = decide(&obs);
        assert_eq!(find(&v, "Progressing").reason, "WaitingForMigration");
        assert!(!find(&v, "Ready").ok);
        assert!(find(&v, "Ready").message.contains("dev-migrate-1"));
        assert!(!find(&v, "RolledBack").ok);
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let t1 = DateTime::from_timestamp(1_000, 0).unwrap();
        let t2 = DateTime::from_timestamp(2_000, 0).unwrap();
        let first = merge(&[], &decide(&healthy()), Some(1), t1);
        let same = merge(&first, &decide(&healthy()), Some(2), t2);
        let ready = same.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.last_transition_time, to_time(t1));
        assert_eq!(ready.observed_generation, Some(2));
        let mut broken = healthy();
        broken.deployment = None;
        let changed = merge(&same, &decide(&broken), Some(2), t2);
        assert_eq!(
            changed
                .iter()
                .find(|c| c.type_ == "Ready")
                .unwrap()
                .last_transition_time,
            to_time(t2)
        );
    }
}
