//! Signing keys: the rotation schedule (a pure function of key set, policy and clock).

pub mod schedule;
