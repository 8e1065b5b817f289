//! Wire formats that both the Palisade operator and the auth-server read.
//!
//! Each format is defined exactly once, here:
//! - [`keyset`]: the signing key set stored in Secret `<provider>-signing-keys`;
//! - [`registration`]: the client registration payload of `PUT /admin/clients/{client_id}`;
//! - [`contract`]: the pod contract (ports, environment variables, mounted files) between what
//!   the operator renders and what the auth-server reads.

pub mod contract;
pub mod keyset;
pub mod registration;
