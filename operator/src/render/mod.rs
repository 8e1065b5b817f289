//! Pure render functions: one module per owned kind. Each takes the owner and plain inputs
//! reduced from the AuthProvider spec, and returns the desired object. No I/O, no clock.

pub mod deployment;
pub mod hpa;
pub mod ingress;
pub mod migration_job;
pub mod network_policy;
pub mod owner;
pub mod pdb;
pub mod secrets;
pub mod service;
pub mod service_account;
