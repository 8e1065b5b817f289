//! In-memory storage for development and tests (one process, nothing survives a restart).

use super::{
    CodeGrant, PendingAuthorization, Redeemed, RefreshGrant, Session, Store, StoreError,
    UpstreamLogin, User,
};
use chrono::{DateTime, Utc};
use palisade_wire::registration::ClientRegistration;
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

/// A single-use record: the grant and whether it was used.
type Once<T> = (T, bool);

/// Everything in maps behind locks held only for the copy in or out.
#[derive(Default)]
pub struct MemoryStore {
    clients: RwLock<HashMap<String, ClientRegistration>>,
    revoked: RwLock<HashMap<String, DateTime<Utc>>>,
    users: RwLock<HashMap<String, User>>,
    pending: Mutex<HashMap<String, PendingAuthorization>>,
    codes: Mutex<HashMap<String, Once<CodeGrant>>>,
    refresh: Mutex<HashMap<String, Once<RefreshGrant>>>,
    revoked_families: Mutex<HashMap<String, DateTime<Utc>>>,
    sessions: Mutex<HashMap<String, Session>>,
    upstream_logins: Mutex<HashMap<String, UpstreamLogin>>,
    /// (upstream, upstream subject) → local sub.
    upstream_links: Mutex<HashMap<(String, String), String>>,
}

/// A single-use redemption under one lock: mark used, report replays.
fn redeem<T: Clone>(map: &Mutex<HashMap<String, Once<T>>>, key: &str) -> Redeemed<T> {
    let mut map = map.lock().expect("lock");
    match map.get_mut(key) {
        Some((grant, used)) if *used => Redeemed::AlreadyUsed(grant.clone()),
        Some((grant, used)) => {
            *used = true;
            Redeemed::Fresh(grant.clone())
        }
        None => Redeemed::Unknown,
    }
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

    async fn user(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(self.users.read().expect("lock").get(username).cloned())
    }

    async fn user_by_sub(&self, sub: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .users
            .read()
            .expect("lock")
            .values()
            .find(|u| u.sub == sub)
            .cloned())
    }

    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        self.users
            .write()
            .expect("lock")
            .insert(user.username.clone(), user.clone());
        Ok(())
    }

    async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        let removed = self.users.write().expect("lock").remove(username);
        if let Some(user) = &removed {
            // As the PostgreSQL foreign key does: a deleted user's links go too.
            self.upstream_links
                .lock()
                .expect("lock")
                .retain(|_, sub| *sub != user.sub);
        }
        Ok(removed.is_some())
    }

    async fn put_pending(
        &self,
        id: &str,
        pending: &PendingAuthorization,
    ) -> Result<(), StoreError> {
        let mut map = self.pending.lock().expect("lock");
        let now = Utc::now();
        map.retain(|_, p| p.expires_at > now);
        map.insert(id.to_string(), pending.clone());
        Ok(())
    }

    async fn pending(&self, id: &str) -> Result<Option<PendingAuthorization>, StoreError> {
        Ok(self.pending.lock().expect("lock").get(id).cloned())
    }

    async fn take_pending(&self, id: &str) -> Result<Option<PendingAuthorization>, StoreError> {
        Ok(self.pending.lock().expect("lock").remove(id))
    }

    async fn put_code(&self, code_hash: &str, grant: &CodeGrant) -> Result<(), StoreError> {
        let mut map = self.codes.lock().expect("lock");
        // Used codes are kept until they expire so that replays are recognised.
        let now = Utc::now();
        map.retain(|_, (g, _)| g.expires_at > now);
        map.insert(code_hash.to_string(), (grant.clone(), false));
        Ok(())
    }

    async fn redeem_code(&self, code_hash: &str) -> Result<Redeemed<CodeGrant>, StoreError> {
        Ok(redeem(&self.codes, code_hash))
    }

    async fn put_refresh(&self, token_hash: &str, grant: &RefreshGrant) -> Result<(), StoreError> {
        let mut map = self.refresh.lock().expect("lock");
        let now = Utc::now();
        map.retain(|_, (g, _)| g.expires_at > now);
        map.insert(token_hash.to_string(), (grant.clone(), false));
        Ok(())
    }

    async fn redeem_refresh(&self, token_hash: &str) -> Result<Redeemed<RefreshGrant>, StoreError> {
        Ok(redeem(&self.refresh, token_hash))
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        new_hash: &str,
        grant: &RefreshGrant,
    ) -> Result<bool, StoreError> {
        let mut map = self.refresh.lock().expect("lock");
        match map.get_mut(old_hash) {
            Some((_, used)) if !*used => *used = true,
            _ => return Ok(false),
        }
        map.insert(new_hash.to_string(), (grant.clone(), false));
        Ok(true)
    }

    async fn refresh(&self, token_hash: &str) -> Result<Option<RefreshGrant>, StoreError> {
        Ok(self
            .refresh
            .lock()
            .expect("lock")
            .get(token_hash)
            .map(|(g, _)| g.clone()))
    }

    async fn revoke_family(&self, family_id: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        let mut map = self.revoked_families.lock().expect("lock");
        let now = Utc::now();
        map.retain(|_, exp| *exp > now);
        // Keep the later end, as the PostgreSQL store does.
        let entry = map.entry(family_id.to_string()).or_insert(until);
        *entry = (*entry).max(until);
        Ok(())
    }

    async fn is_family_revoked(&self, family_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .revoked_families
            .lock()
            .expect("lock")
            .contains_key(family_id))
    }

    async fn put_session(&self, token_hash: &str, session: &Session) -> Result<(), StoreError> {
        let mut map = self.sessions.lock().expect("lock");
        let now = Utc::now();
        map.retain(|_, s| s.expires_at > now);
        map.insert(token_hash.to_string(), session.clone());
        Ok(())
    }

    async fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError> {
        Ok(self.sessions.lock().expect("lock").get(token_hash).cloned())
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.sessions.lock().expect("lock").remove(token_hash);
        Ok(())
    }

    async fn users_by_email(&self, email: &str) -> Result<Vec<User>, StoreError> {
        Ok(self
            .users
            .read()
            .expect("lock")
            .values()
            .filter(|u| {
                u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .cloned()
            .collect())
    }

    async fn put_upstream_login(
        &self,
        state_hash: &str,
        login: &UpstreamLogin,
    ) -> Result<(), StoreError> {
        let mut map = self.upstream_logins.lock().expect("lock");
        let now = Utc::now();
        map.retain(|_, l| l.expires_at > now);
        map.insert(state_hash.to_string(), login.clone());
        Ok(())
    }

    async fn take_upstream_login(
        &self,
        state_hash: &str,
    ) -> Result<Option<UpstreamLogin>, StoreError> {
        Ok(self
            .upstream_logins
            .lock()
            .expect("lock")
            .remove(state_hash))
    }

    async fn upstream_link(
        &self,
        upstream: &str,
        upstream_sub: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .upstream_links
            .lock()
            .expect("lock")
            .get(&(upstream.to_string(), upstream_sub.to_string()))
            .cloned())
    }

    async fn link_upstream(
        &self,
        upstream: &str,
        upstream_sub: &str,
        sub: &str,
    ) -> Result<String, StoreError> {
        Ok(self
            .upstream_links
            .lock()
            .expect("lock")
            .entry((upstream.to_string(), upstream_sub.to_string()))
            .or_insert_with(|| sub.to_string())
            .clone())
    }
}
