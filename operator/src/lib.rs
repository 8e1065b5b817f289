//! Palisade operator: CRD types, controllers, key rotation and rollout logic.

pub mod apply;
pub mod backoff;
pub mod client;
pub mod context;
pub mod controller;
pub mod crd;
pub mod crddoc;
pub mod crdgen;
pub mod keys;
pub mod leader;
pub mod metrics;
pub mod owned_cache;
pub mod provider;
pub mod render;
pub mod rollout;
pub mod status_patch;
pub mod telemetry;
pub mod trim;
