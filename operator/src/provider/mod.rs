//! The AuthProvider controller: `reconcile.rs` holds the steps, `desired.rs` reduces the spec
//! to render inputs (pure), `status.rs` decides conditions (pure), `keys.rs` applies the
//! rotation schedule to the signing-key Secret (`settled_keys.rs`: when it need not read it), `rollout.rs` runs one rollout step (migration
//! Job, pod template, rollback).

pub mod desired;
pub mod keys;
pub mod reconcile;
pub mod record_versions;
pub mod rollout;
pub mod settled_keys;
pub mod status;
