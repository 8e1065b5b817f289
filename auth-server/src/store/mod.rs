//! Storage behind one trait: PostgreSQL in production (`postgres.rs`), in memory for
//! development and tests (`memory.rs`).

pub mod memory;
pub mod postgres;

use chrono::{DateTime, Utc};
use palisade_wire::registration::ClientRegistration;

/// Storage is unreachable or failed; clients get a 503.
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StoreError(pub String);

/// What the provider persists.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// A registered client.
    async fn client(&self, client_id: &str) -> Result<Option<ClientRegistration>, StoreError>;
    /// Registers or replaces a client (idempotent).
    async fn put_client(&self, reg: &ClientRegistration) -> Result<(), StoreError>;
    /// Removes a client; returns whether it existed.
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError>;
    /// Marks an access token's `jti` revoked until it would have expired anyway.
    async fn revoke_jti(&self, jti: &str, expires_at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Whether a `jti` was revoked.
    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError>;
    /// Checks that storage answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;
}
