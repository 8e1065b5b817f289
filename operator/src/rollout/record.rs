//! The operator's memory of rollouts, kept in ConfigMap `x-rollout` (owned by the
//! AuthProvider; the AuthProvider's spec belongs to Git and is never written). It holds what
//! cannot be recomputed from the current spec: the last good pod template (to roll back to),
//! the revision in flight and when it started, the failed revision (not to retry it), and the
//! migrations already run. The AuthProvider's status mirrors the revisions for people.

use crate::render::owner::Owner;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Key of the record inside the ConfigMap.
pub const RECORD_KEY: &str = "rollout.json";
/// How many migration keys are remembered.
const MIGRATED_KEPT: usize = 20;

/// A revision that rolled out completely.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoodRevision {
    pub revision: String,
    pub image: String,
    /// The pod template exactly as applied, to re-apply on rollback.
    pub template: PodTemplateSpec,
}

/// The revision being rolled out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InFlight {
    pub revision: String,
    pub image: String,
    pub started_at: DateTime<Utc>,
}

/// A revision that failed; it is not applied again while the spec still asks for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedRevision {
    pub revision: String,
    pub image: String,
    /// A [`super::decision::FailureKind`] name.
    pub reason: String,
    /// Whether the last good revision was re-applied.
    pub rolled_back: bool,
}

/// A migration Job that failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedMigration {
    pub key: String,
    pub job: String,
    pub image: String,
    pub message: String,
}

/// Everything remembered about one provider's rollouts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_good: Option<GoodRevision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<FailedRevision>,
    /// Migration keys whose Job succeeded, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrated: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_migration: Option<FailedMigration>,
    /// Schema version reported by the last successful migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<i64>,
}

impl RolloutRecord {
    /// Remembers a successful migration.
    pub fn add_migrated(&mut self, key: &str) {
        if !self.migrated.iter().any(|k| k == key) {
            self.migrated.push(key.to_string());
        }
        let excess = self.migrated.len().saturating_sub(MIGRATED_KEPT);
        self.migrated.drain(..excess);
        if self.failed_migration.as_ref().is_some_and(|f| f.key == key) {
            self.failed_migration = None;
        }
    }

    /// Whether the migration `key` has run successfully.
    pub fn is_migrated(&self, key: &str) -> bool {
        self.migrated.iter().any(|k| k == key)
    }
}

/// Name of the record's ConfigMap: `<provider>-rollout`.
pub fn record_name(owner: &Owner) -> String {
    owner.child_name("rollout")
}

/// Renders the record as its ConfigMap.
pub fn render_record(owner: &Owner, record: &RolloutRecord) -> ConfigMap {
    ConfigMap {
        metadata: owner.meta(record_name(owner), "rollout"),
        data: Some(BTreeMap::from([(
            RECORD_KEY.to_string(),
            serde_json::to_string_pretty(record).expect("the record serializes"),
        )])),
        ..Default::default()
    }
}

/// Reads the record from its ConfigMap; a missing or unreadable record is an empty one (the
/// operator then treats the running revision as the starting point).
pub fn parse_record(cm: Option<&ConfigMap>) -> RolloutRecord {
    cm.and_then(|c| c.data.as_ref()?.get(RECORD_KEY))
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::owner::fixtures::owner;

    #[test]
    fn record_round_trips_through_its_owned_config_map() {
        let mut record = RolloutRecord {
            last_good: Some(GoodRevision {
                revision: "r1".into(),
                image: "img:1".into(),
                template: PodTemplateSpec::default(),
            }),
            in_flight: Some(InFlight {
                revision: "r2".into(),
                image: "img:2".into(),
                started_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            }),
            ..Default::default()
        };
        record.add_migrated("k1");
        let cm = render_record(&owner(), &record);
        assert_eq!(cm.metadata.name.as_deref(), Some("dev-rollout"));
        assert_eq!(
            cm.metadata.owner_references.as_ref().unwrap()[0].uid,
            "uid-1"
        );
        assert_eq!(parse_record(Some(&cm)), record);
        assert_eq!(parse_record(None), RolloutRecord::default());
    }

    #[test]
    fn migrated_keys_are_bounded_and_clear_their_failure() {
        let mut record = RolloutRecord {
            failed_migration: Some(FailedMigration {
                key: "k3".into(),
                job: "j".into(),
                image: "i".into(),
                message: "m".into(),
            }),
            ..Default::default()
        };
        for i in 0..25 {
            record.add_migrated(&format!("k{i}"));
        }
        assert_eq!(record.migrated.len(), 20);
        assert!(record.is_migrated("k24") && !record.is_migrated("k0"));
        assert!(record.failed_migration.is_none());
    }
}
