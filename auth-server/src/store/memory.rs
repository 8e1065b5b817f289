//! In-memory storage for development and tests (one process, nothing survives a restart).

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use palisade_wire::registration::ClientRegistration;
use std::collections::HashMap;
use std::sync::RwLock;

/// Everything in maps behind locks held only for the copy in or out.
#[derive(Default)]
pub struct MemoryStore {
    clients: RwLock<HashMap<String, ClientRegistration>>,
    revoked: RwLock<HashMap<String, DateTime<Utc>>>,
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn client(&self, client_id: &str) -> Result<Option<ClientRegistration>, StoreError> {
        Ok(self.clients.read().expect("lock").get(client_id).cloned())
    }

    async fn put_client(&self, reg: &ClientRegistration) -> Result<(), StoreError> {
        self.clients
            .write()
            .expect("lock")
            .insert(reg.client_id.clone(), reg.clone());
        Ok(())
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .clients
            .write()
            .expect("lock")
            .remove(client_id)
            .is_some())
    }

    async fn revoke_jti(&self, jti: &str, expires_at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut revoked = self.revoked.write().expect("lock");
        let now = Utc::now();
        revoked.retain(|_, exp| *exp > now);
        revoked.insert(jti.to_string(), expires_at);
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        Ok(self.revoked.read().expect("lock").contains_key(jti))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
