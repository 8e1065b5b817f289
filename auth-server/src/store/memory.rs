//! In-memory storage for development and tests (one process, nothing survives a restart).

use super::{
    CodeGrant, ParkedSignIn, PendingAuthorization, Redeemed, RefreshGrant, Session, Store,
    StoreError, TotpEnrolment, UpstreamLogin, User,
};
use crate::audit::{AuditQuery, AuditRecord};
use chrono::{DateTime, Utc};
use palisade_wire::registration::ClientRegistration;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

/// A single-use record: the grant and whether it was used.
type Once<T> = (T, bool);

/// Everything in maps behind locks held only for the copy in or out.
#[derive(Default)]
pub struct MemoryStore {
    clients: RwLock<HashMap<String, Arc<ClientRegistration>>>,
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
    audit: Mutex<AuditTrail>,
    /// Authenticators by `sub`.
    totp: Mutex<HashMap<String, TotpEnrolment>>,
    /// Parked sign-ins and their wrong-code counts.
    sign_ins: Mutex<HashMap<String, (ParkedSignIn, u32)>>,
}

/// Audit records kept in memory: the newest [`MEMORY_AUDIT_CAPACITY`].
#[derive(Default)]
struct AuditTrail {
    last_id: i64,
    records: VecDeque<AuditRecord>,
}

/// Audit records the memory store keeps (older ones are dropped first).
pub const MEMORY_AUDIT_CAPACITY: usize = 100_000;

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
    async fn client(&self, client_id: &str) -> Result<Option<Arc<ClientRegistration>>, StoreError> {
        Ok(self.clients.read().expect("lock").get(client_id).cloned())
    }

    async fn put_client(&self, reg: &ClientRegistration) -> Result<(), StoreError> {
        self.clients
            .write()
            .expect("lock")
            .insert(reg.client_id.clone(), Arc::new(reg.clone()));
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

    async fn create_user(&self, user: &User) -> Result<bool, StoreError> {
        let mut users = self.users.write().expect("lock");
        if users.contains_key(&user.username) {
            return Ok(false);
        }
        users.insert(user.username.clone(), user.clone());
        Ok(true)
    }

    async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        let removed = self.users.write().expect("lock").remove(username);
        // As the PostgreSQL foreign keys do: the authenticator and the upstream links go with
        // the user.
        if let Some(u) = &removed {
            self.totp.lock().expect("lock").remove(&u.sub);
            self.upstream_links
                .lock()
                .expect("lock")
                .retain(|_, sub| *sub != u.sub);
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
                u.email_verified
                    && u.email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .take(2)
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

    async fn put_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let mut trail = self.audit.lock().expect("lock");
        for r in records {
            trail.last_id += 1;
            let id = trail.last_id;
            trail.records.push_back(AuditRecord { id, ..r.clone() });
        }
        let excess = trail.records.len().saturating_sub(MEMORY_AUDIT_CAPACITY);
        trail.records.drain(..excess);
        Ok(())
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let trail = self.audit.lock().expect("lock");
        Ok(trail
            .records
            .iter()
            .rev()
            .filter(|r| query.matches(r))
            .take(query.limit)
            .cloned()
            .collect())
    }

    async fn purge_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut trail = self.audit.lock().expect("lock");
        let n = trail.records.len();
        trail.records.retain(|r| r.time >= before);
        Ok((n - trail.records.len()) as u64)
    }

    async fn totp(&self, sub: &str) -> Result<Option<TotpEnrolment>, StoreError> {
        Ok(self.totp.lock().expect("lock").get(sub).cloned())
    }

    async fn enrol_totp(&self, sub: &str, enrolment: &TotpEnrolment) -> Result<bool, StoreError> {
        let mut map = self.totp.lock().expect("lock");
        if map.contains_key(sub) {
            return Ok(false);
        }
        map.insert(sub.to_string(), enrolment.clone());
        Ok(true)
    }

    async fn accept_totp_step(&self, sub: &str, step: i64) -> Result<bool, StoreError> {
        let mut map = self.totp.lock().expect("lock");
        match map.get_mut(sub) {
            Some(e) if crate::mfa::totp::step_is_fresh(e.last_step, step) => {
                e.last_step = Some(step);
                e.failures = 0;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn use_recovery_code(&self, sub: &str, code_hash: &str) -> Result<bool, StoreError> {
        let mut map = self.totp.lock().expect("lock");
        let Some(e) = map.get_mut(sub) else {
            return Ok(false);
        };
        let before = e.recovery_hashes.len();
        e.recovery_hashes.retain(|h| h != code_hash);
        let used = e.recovery_hashes.len() < before;
        if used {
            e.failures = 0;
        }
        Ok(used)
    }

    async fn charge_totp_attempt(
        &self,
        sub: &str,
        seen: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut map = self.totp.lock().expect("lock");
        Ok(match map.get_mut(sub) {
            Some(e) if e.failures == seen => {
                e.failures = e.failures.saturating_add(1);
                e.last_failure_at = Some(at);
                true
            }
            _ => false,
        })
    }

    async fn delete_totp(&self, sub: &str) -> Result<bool, StoreError> {
        Ok(self.totp.lock().expect("lock").remove(sub).is_some())
    }

    async fn put_sign_in(&self, id: &str, sign_in: &ParkedSignIn) -> Result<(), StoreError> {
        let mut map = self.sign_ins.lock().expect("lock");
        let now = Utc::now();
        map.retain(|_, (s, _)| s.expires_at > now);
        map.insert(id.to_string(), (sign_in.clone(), 0));
        Ok(())
    }

    async fn sign_in(&self, id: &str) -> Result<Option<ParkedSignIn>, StoreError> {
        Ok(self
            .sign_ins
            .lock()
            .expect("lock")
            .get(id)
            .map(|(s, _)| s.clone()))
    }

    async fn take_sign_in(&self, id: &str) -> Result<Option<ParkedSignIn>, StoreError> {
        Ok(self
            .sign_ins
            .lock()
            .expect("lock")
            .remove(id)
            .map(|(s, _)| s))
    }

    async fn sign_in_attempt(&self, id: &str, max: u32) -> Result<Option<u32>, StoreError> {
        let mut map = self.sign_ins.lock().expect("lock");
        Ok(match map.get_mut(id) {
            Some((_, attempts)) if *attempts < max => {
                *attempts += 1;
                Some(*attempts)
            }
            _ => None,
        })
    }
}
