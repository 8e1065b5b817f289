//! Job `x-migrate-<key>`: runs `palisade-auth-server migrate` with the image about to be rolled
//! out, against the provider's database, before any pod of that image serves. The key is a
//! short hash of the image and the database reference, so each (image, database) pair is
//! migrated by exactly one Job name.

use super::deployment::{restricted_pod_security_context, restricted_security_context};
use super::owner::Owner;
use super::service_account::render_service_account;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Container, EnvVar, EnvVarSource, PodSpec, PodTemplateSpec, ResourceRequirements,
    SecretKeySelector, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use palisade_wire::contract::{env, migration};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Component label of migration Jobs and their pods.
pub const COMPONENT: &str = "migration";
/// Tries per Job (pod failures before the Job counts as failed), beyond the first.
pub const BACKOFF_LIMIT: i32 = 2;
/// A migration running longer than this is stopped and counts as failed.
pub const ACTIVE_DEADLINE_SECONDS: i64 = 600;
/// Finished Jobs stay this long for inspection, then the garbage collector removes them.
pub const TTL_SECONDS_AFTER_FINISHED: i32 = 86_400;
/// Job-name label values are at most 63 characters.
const MAX_NAME: usize = 63;

/// What a migration Job needs.
#[derive(Clone, Debug, PartialEq)]
pub struct MigrationInput {
    /// The image being rolled out.
    pub image: String,
    /// The database URL, as the Deployment takes it.
    pub database_url: SecretKeySelector,
    pub resources: Option<ResourceRequirements>,
    /// Scheduling of the auth-server pods: the migration runs where they may run (and so
    /// reaches the database the same way).
    pub node_selector: Option<BTreeMap<String, String>>,
    pub tolerations: Option<Vec<Toleration>>,
    pub affinity: Option<Affinity>,
}

/// The migration key: a short hash of everything that decides what the migration does (the
/// image carries the migrations; the database is where they run).
pub fn migration_key(input: &MigrationInput) -> String {
    let mut h = Sha256::new();
    for part in [
        "v1",
        &input.image,
        &input.database_url.name,
        &input.database_url.key,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..5])
}

/// The Job's name: `<provider>-migrate-<key>`, the provider part shortened to fit 63 characters.
pub fn job_name(owner: &Owner, key: &str) -> String {
    let suffix = format!("-migrate-{key}");
    let room = MAX_NAME - suffix.len();
    let prefix: String = owner.name.chars().take(room).collect();
    format!("{}{suffix}", prefix.trim_end_matches(['-', '.']))
}

/// Renders the migration Job for `input`.
/// Labels of the migration pods. Not the auth-server's selector labels: the PodDisruptionBudget,
/// Service and NetworkPolicy select the auth-server pods by those, and a finished Job pod in a
/// PodDisruptionBudget's selection blocks every node drain (its controller has no scale).
pub fn pod_labels(owner: &Owner) -> BTreeMap<String, String> {
    let mut labels = owner.labels(COMPONENT);
    labels.insert("app.kubernetes.io/name".into(), MIGRATION_APP_NAME.into());
    labels
}

/// `app.kubernetes.io/name` of the migration pods.
pub const MIGRATION_APP_NAME: &str = "palisade-migration";

pub fn render_migration_job(owner: &Owner, input: &MigrationInput) -> Job {
    let key = migration_key(input);
    let mut meta = owner.meta(job_name(owner, &key), COMPONENT);
    meta.annotations = Some(
        [
            ("auth.palisade.dev/migration-key".to_string(), key),
            ("auth.palisade.dev/image".to_string(), input.image.clone()),
        ]
        .into(),
    );
    let container = Container {
        name: "migrate".into(),
        image: Some(input.image.clone()),
        args: Some(vec!["migrate".into()]),
        env: Some(vec![
            EnvVar {
                name: env::DATABASE_URL.into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(input.database_url.clone()),
                    ..Default::default()
                }),
                value: None,
            },
            EnvVar {
                name: env::LOG_FORMAT.into(),
                value: Some("json".into()),
                value_from: None,
            },
        ]),
        resources: input.resources.clone(),
        security_context: Some(restricted_security_context()),
        termination_message_path: Some(migration::TERMINATION_MESSAGE_PATH.into()),
        // A failed run has no report; its last log lines explain the failure instead.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };
    Job {
        metadata: meta,
        spec: Some(JobSpec {
            backoff_limit: Some(BACKOFF_LIMIT),
            active_deadline_seconds: Some(ACTIVE_DEADLINE_SECONDS),
            ttl_seconds_after_finished: Some(TTL_SECONDS_AFTER_FINISHED),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels(owner)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: render_service_account(owner).metadata.name,
                    automount_service_account_token: Some(false),
                    security_context: Some(restricted_pod_security_context()),
                    containers: vec![container],
                    node_selector: input.node_selector.clone(),
                    tolerations: input.tolerations.clone(),
                    affinity: input.affinity.clone(),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::owner::fixtures::owner;

    fn input(image: &str) -> MigrationInput {
        MigrationInput {
            image: image.into(),
            database_url: SecretKeySelector {
                name: "pg-app".into(),
                key: "uri".into(),
                optional: None,
            },
            resources: None,
            node_selector: Some(BTreeMap::from([("pool".to_string(), "auth".to_string())])),
            tolerations: None,
            affinity: None,
        }
    }

    #[test]
    fn job_is_owned_labelled_bounded_and_named_by_image_and_database() {
        let job = render_migration_job(&owner(), &input("img:2"));
        let name = job.metadata.name.clone().unwrap();
        assert!(name.starts_with("dev-migrate-"), "{name}");
        assert_eq!(name.len(), "dev-migrate-".len() + 10);
        assert_eq!(job.metadata.owner_references.unwrap()[0].uid, "uid-1");
        assert_eq!(
            job.metadata.labels.unwrap()["app.kubernetes.io/component"],
            "migration"
        );
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(BACKOFF_LIMIT));
        assert_eq!(spec.active_deadline_seconds, Some(600));
        assert_eq!(spec.ttl_seconds_after_finished, Some(86_400));
        // Same inputs, same Job; another image or database, another Job.
        assert_eq!(
            name,
            render_migration_job(&owner(), &input("img:2"))
                .metadata
                .name
                .unwrap()
        );
        assert_ne!(
            migration_key(&input("img:2")),
            migration_key(&input("img:3"))
        );
        let mut other_db = input("img:2");
        other_db.database_url.name = "pg-other".into();
        assert_ne!(migration_key(&input("img:2")), migration_key(&other_db));
    }

    #[test]
    fn pod_runs_migrate_with_the_target_image_restricted_and_without_a_token() {
        let job = render_migration_job(&owner(), &input("img:2"));
        let pod = job.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.service_account_name.as_deref(), Some("dev"));
        assert_eq!(pod.node_selector.as_ref().unwrap()["pool"], "auth");
        assert_eq!(
            pod.security_context.unwrap().seccomp_profile.unwrap().type_,
            "RuntimeDefault"
        );
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("img:2"));
        assert_eq!(c.args.as_deref(), Some(&["migrate".to_string()][..]));
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        let db = &c.env.as_ref().unwrap()[0];
        assert_eq!(db.name, "DATABASE_URL");
        assert!(db.value.is_none(), "never inline the URL");
        assert_eq!(
            db.value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap()
                .name,
            "pg-app"
        );
        assert_eq!(
            c.termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError")
        );
    }

    #[test]
    fn migration_pods_are_outside_the_auth_server_selectors() {
        let owner = owner();
        let job = render_migration_job(&owner, &input("img:2"));
        let labels = job.spec.unwrap().template.metadata.unwrap().labels.unwrap();
        let selected = owner
            .selector_labels()
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v));
        assert!(!selected, "the PDB/Service selector matches {labels:?}");
        assert_eq!(labels["app.kubernetes.io/instance"], "dev");
    }

    #[test]
    fn long_provider_names_still_give_a_valid_job_name() {
        let mut o = owner();
        o.name = "a".repeat(200);
        let name = job_name(&o, "0123456789");
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("-migrate-0123456789"));
    }
}
