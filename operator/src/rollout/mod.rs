//! Rollouts and automatic rollback, as pure decisions: `revision` names a pod template,
//! `decision` judges a rollout, `migration` gates a new image on its migration Job, `plan`
//! turns all of it into one step, and `record` is the operator's memory (ConfigMap
//! `x-rollout`). The async shell is `provider::rollout`.

pub mod decision;
pub mod migration;
pub mod plan;
pub mod record;
pub mod revision;
