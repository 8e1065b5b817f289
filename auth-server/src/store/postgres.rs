//! PostgreSQL storage (sqlx). Schema: `migrations/`. Every query has a bounded wait, so an
//! outage becomes a quick 503 rather than a hung request.
//!
//! The two reads on every token and introspection request are cached in memory for
//! [`CACHE_TTL`]: client registrations (dropped at once on this replica's PUT/DELETE) and
//! "this `jti` is not revoked" answers (dropped at once on this replica's revocation). Other
//! replicas see a change within [`CACHE_TTL`]; revoked answers are kept, since a revocation is
//! final. Concurrent misses for one key make one query: when an entry expires under load, the
//! requests that find it gone wait for that one read instead of each queueing for one of the
//! pool's connections (up to 25 of 165,000 requests took over 50 ms in a 10 s run at 16,500
//! tokens/s). An entry in use is read again in the background once it is [`REFRESH_AFTER`]
//! old, so under steady use it is replaced before it expires and no request waits at all.

use super::{
    CodeGrant, ParkedSignIn, PendingAuthorization, Redeemed, RefreshGrant, Session, Store,
    StoreError, TotpEnrolment, UpstreamLogin, User,
};
use crate::audit::{AuditEvent, AuditQuery, AuditRecord, Outcome};
use chrono::{DateTime, Utc};
use palisade_wire::registration::ClientRegistration;
use serde::de::DeserializeOwned;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a replica may answer from memory after another replica changed a client or
/// revoked a token: the documented staleness bound (docs/decisions.md).
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// The age at which the first request that uses an entry reads it again in the background,
/// so that an entry in use is replaced before it expires and no request waits for the read.
pub const REFRESH_AFTER: Duration = Duration::from_secs(4);
/// Entries per cache; the least recently used go first.
const CACHE_CAPACITY: u64 = 100_000;

/// A cached answer, when it was read, and whether its background refresh has been started.
#[derive(Clone)]
struct Fresh<V> {
    value: V,
    read_at: Instant,
    refreshing: Arc<AtomicBool>,
}

impl<V> Fresh<V> {
    fn new(value: V) -> Self {
        Fresh {
            value,
            read_at: Instant::now(),
            refreshing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the request using this entry at `now` should refresh it: the entry is at least
    /// [`REFRESH_AFTER`] old and no other request has started its refresh. The answer is yes
    /// once per entry; a refresh that fails leaves the entry to expire at [`CACHE_TTL`].
    fn claim_refresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.read_at) >= REFRESH_AFTER
            && !self.refreshing.swap(true, Ordering::AcqRel)
    }
}

/// The in-memory caches in front of the database.
#[derive(Clone)]
struct Caches {
    clients: moka::future::Cache<String, Fresh<Arc<ClientRegistration>>>,
    /// Bumped by every client write on this replica: a read that began before a write must
    /// not put what it read back into the cache after the write invalidated it.
    client_writes: Arc<AtomicU64>,
    not_revoked: moka::future::Cache<String, Fresh<()>>,
    revoked: moka::sync::Cache<String, ()>,
}

fn cache<V: Clone + Send + Sync + 'static>(ttl: Duration) -> moka::sync::Cache<String, V> {
    moka::sync::Cache::builder()
        .max_capacity(CACHE_CAPACITY)
        .time_to_live(ttl)
        .build()
}

/// A cache whose concurrent misses for one key wait for one read (`try_get_with`).
fn coalescing_cache<V: Clone + Send + Sync + 'static>(
    ttl: Duration,
) -> moka::future::Cache<String, V> {
    moka::future::Cache::builder()
        .max_capacity(CACHE_CAPACITY)
        .time_to_live(ttl)
        .build()
}

/// Why a client read left nothing in the cache.
enum ClientMiss {
    Unknown,
    /// A write on this replica began during the read, whose answer may predate it: the
    /// caller reads again (a request that came after the write may have joined the read).
    ChangedDuringRead,
    Failed(StoreError),
}

/// Why a revocation read left nothing in the "not revoked" cache.
enum RevocationMiss {
    Revoked,
    Failed(StoreError),
}

impl Caches {
    fn new() -> Self {
        Caches {
            clients: coalescing_cache(CACHE_TTL),
            client_writes: Arc::new(AtomicU64::new(0)),
            not_revoked: coalescing_cache(CACHE_TTL),
            // Final answers: kept until evicted, or for a day (longer than any token lives).
            revoked: cache(Duration::from_secs(86_400)),
        }
    }
}

/// The migrations this binary carries; the highest version is the schema it needs.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// The schema version this binary needs.
pub fn required_schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// A pool of connections to PostgreSQL.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    inserts: Arc<AtomicU64>,
    caches: Caches,
}

fn err(e: sqlx::Error) -> StoreError {
    StoreError(e.to_string())
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(v).map_err(|e| StoreError(e.to_string()))
}

fn from_json<T: DeserializeOwned>(row: &PgRow, column: &str) -> Result<T, StoreError> {
    let json: serde_json::Value = row.try_get(column).map_err(err)?;
    serde_json::from_value(json).map_err(|e| StoreError(e.to_string()))
}

/// Expired rows are purged lazily: one insert in this many also deletes its table's expired
/// rows (an index range scan), so no background job is needed.
const PURGE_EVERY: u64 = 64;

fn user_from_row(r: &PgRow) -> Result<User, StoreError> {
    Ok(User {
        username: r.try_get("username").map_err(err)?,
        sub: r.try_get("sub").map_err(err)?,
        password_hash: r.try_get("password_hash").map_err(err)?,
        email: r.try_get("email").map_err(err)?,
        email_verified: r.try_get("email_verified").map_err(err)?,
        name: r.try_get("name").map_err(err)?,
        disabled: r.try_get("disabled").map_err(err)?,
        mfa_required: r.try_get("mfa_required").map_err(err)?,
    })
}

const USER_COLUMNS: &str = "username, sub, password_hash, email, email_verified, name, disabled, \
     COALESCE(mfa_required, false) AS mfa_required";

impl PostgresStore {
    /// A client as the cache may keep it: refused with `ChangedDuringRead` when a write on this
    /// replica began during the read, whose answer may then predate the write.
    async fn read_client_for_cache(
        &self,
        client_id: &str,
    ) -> Result<Fresh<Arc<ClientRegistration>>, ClientMiss> {
        let writes = self.caches.client_writes.load(Ordering::Acquire);
        let reg = self
            .read_client(client_id)
            .await
            .map_err(ClientMiss::Failed)?;
        let reg = reg.ok_or(ClientMiss::Unknown)?;
        if self.caches.client_writes.load(Ordering::Acquire) == writes {
            Ok(Fresh::new(reg))
        } else {
            Err(ClientMiss::ChangedDuringRead)
        }
    }

    /// A "not revoked" answer as the cache may keep it.
    async fn read_not_revoked(&self, jti: &str) -> Result<Fresh<()>, RevocationMiss> {
        match self
            .exists("SELECT 1 FROM revoked_tokens WHERE jti = $1", jti)
            .await
        {
            Ok(true) => Err(RevocationMiss::Revoked),
            Ok(false) => Ok(Fresh::new(())),
            Err(e) => Err(RevocationMiss::Failed(e)),
        }
    }

    /// Reads a client again in the background and replaces its cache entry (or drops it, when
    /// the client is gone), unless a write on this replica came first.
    fn refresh_client(&self, client_id: &str) {
        let store = self.clone();
        let id = client_id.to_string();
        tokio::spawn(async move {
            match store.read_client_for_cache(&id).await {
                Ok(entry) => store.caches.clients.insert(id, entry).await,
                Err(ClientMiss::Unknown) => store.caches.clients.invalidate(&id).await,
                // The write dropped the entry already.
                Err(ClientMiss::ChangedDuringRead) => {}
                // The entry expires by itself, and the next request reads the database.
                Err(ClientMiss::Failed(e)) => {
                    tracing::debug!(error = %e, "refreshing a cached client failed")
                }
            }
        });
    }

    /// Reads a "not revoked" answer again in the background and replaces its cache entry.
    fn refresh_not_revoked(&self, jti: &str) {
        let store = self.clone();
        let jti = jti.to_string();
        tokio::spawn(async move {
            match store.read_not_revoked(&jti).await {
                // A revocation on this replica meanwhile is in `revoked`, which is asked first.
                Ok(entry) => store.caches.not_revoked.insert(jti, entry).await,
                Err(RevocationMiss::Revoked) => {
                    store.caches.revoked.insert(jti.clone(), ());
                    store.caches.not_revoked.invalidate(&jti).await;
                }
                Err(RevocationMiss::Failed(e)) => {
                    tracing::debug!(error = %e, "refreshing a revocation answer failed")
                }
            }
        });
    }

    /// Whether the query `sql` (one `$1` parameter, `key`) returns a row.
    async fn exists(&self, sql: &str, key: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        Ok(row.is_some())
    }

    /// The JSON column `column` of the row `sql` (one `$1` parameter, `key`) returns, if any.
    async fn json_row<T: DeserializeOwned>(
        &self,
        sql: &str,
        key: &str,
        column: &str,
    ) -> Result<Option<T>, StoreError> {
        sqlx::query(sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?
            .map(|r| from_json(&r, column))
            .transpose()
    }

    /// Stores `data` as JSON under `key` in a table of short-lived rows
    /// (`key_column`, `data_column`, `expires_at`), purging expired rows now and then.
    async fn put_expiring<T: serde::Serialize>(
        &self,
        table: &str,
        (key_column, key): (&str, &str),
        (data_column, data): (&str, &T),
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.maybe_purge(table).await?;
        sqlx::query(&format!(
            "INSERT INTO {table} ({key_column}, {data_column}, expires_at) VALUES ($1, $2, $3)"
        ))
        .bind(key)
        .bind(to_json(data)?)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    /// Inserts user `u`; `on_conflict` says what an existing username does. Returns the rows
    /// written.
    async fn insert_user(&self, u: &User, on_conflict: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(&format!(
            "INSERT INTO users (username, sub, password_hash, email, email_verified, name, disabled, mfa_required, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now()) {on_conflict}"
        ))
        .bind(&u.username)
        .bind(&u.sub)
        .bind(&u.password_hash)
        .bind(&u.email)
        .bind(u.email_verified)
        .bind(&u.name)
        .bind(u.disabled)
        .bind(u.mfa_required)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(done.rows_affected())
    }

    /// Connects lazily: the server starts (and reports not-ready) while the database is down.
    pub fn connect_lazy(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy(url)
            .map_err(err)?;
        Ok(PostgresStore {
            pool,
            inserts: Arc::new(AtomicU64::new(0)),
            caches: Caches::new(),
        })
    }

    /// Deletes expired rows of `table` now and then (see [`PURGE_EVERY`]).
    async fn maybe_purge(&self, table: &str) -> Result<(), StoreError> {
        if self
            .inserts
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PURGE_EVERY)
        {
            sqlx::query(&format!("DELETE FROM {table} WHERE expires_at < now()"))
                .execute(&self.pool)
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    /// A single-use redemption: the first caller flips `used_at` (one atomic UPDATE, so only
    /// one replica wins); later callers find the row already used.
    async fn redeem<T: DeserializeOwned>(
        &self,
        table: &str,
        key_column: &str,
        key: &str,
    ) -> Result<Redeemed<T>, StoreError> {
        let fresh = sqlx::query(&format!(
            "UPDATE {table} SET used_at = now() WHERE {key_column} = $1 AND used_at IS NULL RETURNING grant_data"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        if let Some(row) = fresh {
            return Ok(Redeemed::Fresh(from_json(&row, "grant_data")?));
        }
        let used = sqlx::query(&format!(
            "SELECT grant_data FROM {table} WHERE {key_column} = $1"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        match used {
            Some(row) => Ok(Redeemed::AlreadyUsed(from_json(&row, "grant_data")?)),
            None => Ok(Redeemed::Unknown),
        }
    }

    /// The registration of `client_id` as stored, past the cache.
    async fn read_client(
        &self,
        client_id: &str,
    ) -> Result<Option<Arc<ClientRegistration>>, StoreError> {
        let row = sqlx::query("SELECT registration FROM clients WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(|r| {
            let json: serde_json::Value = r.try_get("registration").map_err(err)?;
            serde_json::from_value(json)
                .map(Arc::new)
                .map_err(|e| StoreError(e.to_string()))
        })
        .transpose()
    }

    /// Applies pending migrations; returns the schema version afterwards.
    pub async fn migrate(&self) -> Result<i64, StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(required_schema_version())
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn client(&self, client_id: &str) -> Result<Option<Arc<ClientRegistration>>, StoreError> {
        match self
            .caches
            .clients
            .try_get_with_by_ref(client_id, self.read_client_for_cache(client_id))
            .await
        {
            Ok(entry) => {
                if entry.claim_refresh(Instant::now()) {
                    self.refresh_client(client_id);
                }
                Ok(Some(entry.value))
            }
            Err(miss) => match &*miss {
                ClientMiss::Unknown => Ok(None),
                ClientMiss::ChangedDuringRead => self.read_client(client_id).await,
                ClientMiss::Failed(e) => Err(StoreError(e.0.clone())),
            },
        }
    }

    async fn put_client(&self, reg: &ClientRegistration) -> Result<(), StoreError> {
        let json = serde_json::to_value(reg).map_err(|e| StoreError(e.to_string()))?;
        sqlx::query(
            "INSERT INTO clients (client_id, registration, updated_at) VALUES ($1, $2, now())
             ON CONFLICT (client_id) DO UPDATE SET registration = EXCLUDED.registration, updated_at = now()
             WHERE clients.registration IS DISTINCT FROM EXCLUDED.registration",
        )
        .bind(&reg.client_id)
        .bind(json)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        self.caches.client_writes.fetch_add(1, Ordering::AcqRel);
        self.caches.clients.invalidate(&reg.client_id).await;
        Ok(())
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        self.caches.client_writes.fetch_add(1, Ordering::AcqRel);
        self.caches.clients.invalidate(client_id).await;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_jti(&self, jti: &str, expires_at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
            .bind(jti)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        self.caches.revoked.insert(jti.to_string(), ());
        self.caches.not_revoked.invalidate(jti).await;
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        // Revoked first: a "not revoked" answer read just before a local revocation must not win.
        if self.caches.revoked.contains_key(jti) {
            return Ok(true);
        }
        match self
            .caches
            .not_revoked
            .try_get_with_by_ref(jti, self.read_not_revoked(jti))
            .await
        {
            Ok(entry) => {
                if entry.claim_refresh(Instant::now()) {
                    self.refresh_not_revoked(jti);
                }
                Ok(false)
            }
            Err(miss) => match &*miss {
                RevocationMiss::Revoked => {
                    self.caches.revoked.insert(jti.to_string(), ());
                    Ok(true)
                }
                RevocationMiss::Failed(e) => Err(StoreError(e.0.clone())),
            },
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn user(&self, username: &str) -> Result<Option<User>, StoreError> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    async fn user_by_sub(&self, sub: &str) -> Result<Option<User>, StoreError> {
        sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE sub = $1"))
            .bind(sub)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn put_user(&self, u: &User) -> Result<(), StoreError> {
        self.insert_user(
            u,
            "ON CONFLICT (username) DO UPDATE SET sub = EXCLUDED.sub,
               password_hash = EXCLUDED.password_hash, email = EXCLUDED.email,
               email_verified = EXCLUDED.email_verified, name = EXCLUDED.name,
               disabled = EXCLUDED.disabled, mfa_required = EXCLUDED.mfa_required,
               updated_at = now()",
        )
        .await?;
        Ok(())
    }

    async fn create_user(&self, u: &User) -> Result<bool, StoreError> {
        Ok(self
            .insert_user(u, "ON CONFLICT (username) DO NOTHING")
            .await?
            == 1)
    }

    async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE username = $1")
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_pending(
        &self,
        id: &str,
        pending: &PendingAuthorization,
    ) -> Result<(), StoreError> {
        self.put_expiring(
            "authorization_requests",
            ("id", id),
            ("request", pending),
            pending.expires_at,
        )
        .await
    }

    async fn pending(&self, id: &str) -> Result<Option<PendingAuthorization>, StoreError> {
        self.json_row(
            "SELECT request FROM authorization_requests WHERE id = $1",
            id,
            "request",
        )
        .await
    }

    async fn take_pending(&self, id: &str) -> Result<Option<PendingAuthorization>, StoreError> {
        self.json_row(
            "DELETE FROM authorization_requests WHERE id = $1 RETURNING request",
            id,
            "request",
        )
        .await
    }

    async fn put_code(&self, code_hash: &str, grant: &CodeGrant) -> Result<(), StoreError> {
        self.put_expiring(
            "authorization_codes",
            ("code_hash", code_hash),
            ("grant_data", grant),
            grant.expires_at,
        )
        .await
    }

    async fn redeem_code(&self, code_hash: &str) -> Result<Redeemed<CodeGrant>, StoreError> {
        self.redeem("authorization_codes", "code_hash", code_hash)
            .await
    }

    async fn put_refresh(&self, token_hash: &str, grant: &RefreshGrant) -> Result<(), StoreError> {
        self.maybe_purge("refresh_tokens").await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, grant_data, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(&grant.family_id)
        .bind(to_json(grant)?)
        .bind(grant.expires_at)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn redeem_refresh(&self, token_hash: &str) -> Result<Redeemed<RefreshGrant>, StoreError> {
        self.redeem("refresh_tokens", "token_hash", token_hash)
            .await
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        new_hash: &str,
        grant: &RefreshGrant,
    ) -> Result<bool, StoreError> {
        self.maybe_purge("refresh_tokens").await?;
        // One statement, so one transaction: the old token is used exactly when the new one
        // exists, and only one of two racing rotations finds it unused.
        let done = sqlx::query(
            "WITH used AS (
                 UPDATE refresh_tokens SET used_at = now()
                 WHERE token_hash = $1 AND used_at IS NULL RETURNING 1
             )
             INSERT INTO refresh_tokens (token_hash, family_id, grant_data, expires_at)
             SELECT $2, $3, $4, $5 FROM used",
        )
        .bind(old_hash)
        .bind(new_hash)
        .bind(&grant.family_id)
        .bind(to_json(grant)?)
        .bind(grant.expires_at)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn refresh(&self, token_hash: &str) -> Result<Option<RefreshGrant>, StoreError> {
        self.json_row(
            "SELECT grant_data FROM refresh_tokens WHERE token_hash = $1",
            token_hash,
            "grant_data",
        )
        .await
    }

    async fn revoke_family(&self, family_id: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        self.maybe_purge("revoked_refresh_families").await?;
        sqlx::query(
            "INSERT INTO revoked_refresh_families (family_id, expires_at) VALUES ($1, $2)
             ON CONFLICT (family_id) DO UPDATE SET expires_at = GREATEST(revoked_refresh_families.expires_at, EXCLUDED.expires_at)",
        )
        .bind(family_id)
        .bind(until)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn is_family_revoked(&self, family_id: &str) -> Result<bool, StoreError> {
        self.exists(
            "SELECT 1 FROM revoked_refresh_families WHERE family_id = $1",
            family_id,
        )
        .await
    }

    async fn put_session(&self, token_hash: &str, session: &Session) -> Result<(), StoreError> {
        self.put_expiring(
            "sessions",
            ("token_hash", token_hash),
            ("session_data", session),
            session.expires_at,
        )
        .await
    }

    async fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError> {
        self.json_row(
            "SELECT session_data FROM sessions WHERE token_hash = $1",
            token_hash,
            "session_data",
        )
        .await
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn users_by_email(&self, email: &str) -> Result<Vec<User>, StoreError> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE lower(email) = lower($1) AND email_verified ORDER BY username LIMIT 2"
        ))
        .bind(email)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?
        .iter()
        .map(user_from_row)
        .collect()
    }

    async fn put_upstream_login(
        &self,
        state_hash: &str,
        login: &UpstreamLogin,
    ) -> Result<(), StoreError> {
        self.put_expiring(
            "upstream_logins",
            ("state_hash", state_hash),
            ("login", login),
            login.expires_at,
        )
        .await
    }

    async fn take_upstream_login(
        &self,
        state_hash: &str,
    ) -> Result<Option<UpstreamLogin>, StoreError> {
        self.json_row(
            "DELETE FROM upstream_logins WHERE state_hash = $1 RETURNING login",
            state_hash,
            "login",
        )
        .await
    }

    async fn upstream_link(
        &self,
        upstream: &str,
        upstream_sub: &str,
    ) -> Result<Option<String>, StoreError> {
        sqlx::query("SELECT sub FROM upstream_links WHERE upstream = $1 AND upstream_sub = $2")
            .bind(upstream)
            .bind(upstream_sub)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?
            .map(|r| r.try_get("sub").map_err(err))
            .transpose()
    }

    async fn link_upstream(
        &self,
        upstream: &str,
        upstream_sub: &str,
        sub: &str,
    ) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO upstream_links (upstream, upstream_sub, sub) VALUES ($1, $2, $3)
             ON CONFLICT (upstream, upstream_sub) DO NOTHING",
        )
        .bind(upstream)
        .bind(upstream_sub)
        .bind(sub)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        self.upstream_link(upstream, upstream_sub)
            .await?
            .ok_or_else(|| StoreError("the upstream link vanished after it was written".into()))
    }

    async fn put_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let col = |f: fn(&AuditRecord) -> Option<String>| records.iter().map(f).collect::<Vec<_>>();
        // One statement per batch: the columns as arrays, unnested into rows in order.
        sqlx::query(
            "INSERT INTO audit_events (at, event, outcome, subject, username, client_id, address, detail, instance) \
             SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])",
        )
        .bind(records.iter().map(|r| r.time).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.event.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>())
        .bind(col(|r| r.subject.clone()))
        .bind(col(|r| r.username.clone()))
        .bind(col(|r| r.client_id.clone()))
        .bind(col(|r| r.address.clone()))
        .bind(col(|r| r.detail.clone()))
        .bind(col(|r| r.instance.clone()))
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, event, outcome, subject, username, client_id, address, detail, instance \
             FROM audit_events \
             WHERE ($1::text IS NULL OR event = $1) AND ($2::text IS NULL OR outcome = $2) \
               AND ($3::text IS NULL OR subject = $3) AND ($4::text IS NULL OR username = $4) \
               AND ($5::text IS NULL OR client_id = $5) \
               AND ($6::timestamptz IS NULL OR at >= $6) AND ($7::timestamptz IS NULL OR at < $7) \
               AND ($8::bigint IS NULL OR id < $8) \
             ORDER BY id DESC LIMIT $9",
        )
        .bind(q.event.map(AuditEvent::as_str))
        .bind(q.outcome.map(Outcome::as_str))
        .bind(&q.subject)
        .bind(&q.username)
        .bind(&q.client_id)
        .bind(q.since)
        .bind(q.until)
        .bind(q.before)
        .bind(q.limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(audit_record).collect()
    }

    async fn purge_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(done.rows_affected())
    }

    async fn totp(&self, sub: &str) -> Result<Option<TotpEnrolment>, StoreError> {
        let row = sqlx::query(
            "SELECT secret_sealed, last_step, recovery_hashes, enrolled_at, failures, last_failure_at
             FROM user_totp WHERE sub = $1",
        )
        .bind(sub)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.map(|r| {
            Ok(TotpEnrolment {
                secret_sealed: r.try_get("secret_sealed").map_err(err)?,
                last_step: r.try_get("last_step").map_err(err)?,
                recovery_hashes: r.try_get("recovery_hashes").map_err(err)?,
                enrolled_at: r.try_get("enrolled_at").map_err(err)?,
                failures: u32::try_from(r.try_get::<i32, _>("failures").map_err(err)?).unwrap_or(0),
                last_failure_at: r.try_get("last_failure_at").map_err(err)?,
            })
        })
        .transpose()
    }

    async fn enrol_totp(&self, sub: &str, e: &TotpEnrolment) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO user_totp (sub, secret_sealed, last_step, recovery_hashes, enrolled_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sub) DO NOTHING",
        )
        .bind(sub)
        .bind(&e.secret_sealed)
        .bind(e.last_step)
        .bind(&e.recovery_hashes)
        .bind(e.enrolled_at)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn accept_totp_step(&self, sub: &str, step: i64) -> Result<bool, StoreError> {
        // One conditional UPDATE: of two replicas racing with the same code, one wins.
        let done = sqlx::query(
            "UPDATE user_totp SET last_step = $2, failures = 0
             WHERE sub = $1 AND (last_step IS NULL OR last_step < $2)",
        )
        .bind(sub)
        .bind(step)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn use_recovery_code(&self, sub: &str, code_hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE user_totp SET recovery_hashes = array_remove(recovery_hashes, $2), failures = 0
             WHERE sub = $1 AND $2 = ANY(recovery_hashes)",
        )
        .bind(sub)
        .bind(code_hash)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn charge_totp_attempt(
        &self,
        sub: &str,
        seen: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // Compare and swap on the count: of attempts racing on one count, one is charged.
        let done = sqlx::query(
            "UPDATE user_totp SET failures = failures + 1, last_failure_at = $3
             WHERE sub = $1 AND failures = $2",
        )
        .bind(sub)
        .bind(i32::try_from(seen).unwrap_or(i32::MAX))
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_totp(&self, sub: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM user_totp WHERE sub = $1")
            .bind(sub)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_sign_in(&self, id: &str, sign_in: &ParkedSignIn) -> Result<(), StoreError> {
        self.put_expiring(
            "mfa_sign_ins",
            ("id", id),
            ("sign_in", sign_in),
            sign_in.expires_at,
        )
        .await
    }

    async fn sign_in(&self, id: &str) -> Result<Option<ParkedSignIn>, StoreError> {
        self.json_row(
            "SELECT sign_in FROM mfa_sign_ins WHERE id = $1",
            id,
            "sign_in",
        )
        .await
    }

    async fn take_sign_in(&self, id: &str) -> Result<Option<ParkedSignIn>, StoreError> {
        self.json_row(
            "DELETE FROM mfa_sign_ins WHERE id = $1 RETURNING sign_in",
            id,
            "sign_in",
        )
        .await
    }

    async fn sign_in_attempt(&self, id: &str, max: u32) -> Result<Option<u32>, StoreError> {
        let row = sqlx::query(
            "UPDATE mfa_sign_ins SET failures = failures + 1
             WHERE id = $1 AND failures < $2 RETURNING failures",
        )
        .bind(id)
        .bind(i32::try_from(max).unwrap_or(i32::MAX))
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.map(|r| {
            let n: i32 = r.try_get("failures").map_err(err)?;
            Ok(u32::try_from(n).unwrap_or(0))
        })
        .transpose()
    }
}

/// An `audit_events` row.
fn audit_record(r: &PgRow) -> Result<AuditRecord, StoreError> {
    let text = |c: &str| r.try_get::<String, _>(c).map_err(err);
    let opt = |c: &str| r.try_get::<Option<String>, _>(c).map_err(err);
    let unknown = |c: &str, v: String| StoreError(format!("audit_events.{c}: unknown value {v:?}"));
    let event = text("event")?;
    let outcome = text("outcome")?;
    Ok(AuditRecord {
        id: r.try_get("id").map_err(err)?,
        time: r.try_get("at").map_err(err)?,
        event: AuditEvent::parse(&event).ok_or_else(|| unknown("event", event.clone()))?,
        outcome: Outcome::parse(&outcome).ok_or_else(|| unknown("outcome", outcome.clone()))?,
        subject: opt("subject")?,
        username: opt("username")?,
        client_id: opt("client_id")?,
        address: opt("address")?,
        detail: opt("detail")?,
        instance: opt("instance")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_refreshed_once_and_only_when_old_enough() {
        let entry = Fresh::new(());
        let read = entry.read_at;
        assert!(!entry.claim_refresh(read));
        assert!(!entry.claim_refresh(read + REFRESH_AFTER - Duration::from_millis(1)));
        assert!(entry.claim_refresh(read + REFRESH_AFTER));
        assert!(
            !entry.claim_refresh(read + REFRESH_AFTER + Duration::from_millis(500)),
            "one refresh per entry"
        );
        // Clones share the claim: moka hands every reader a clone of the entry.
        let other = Fresh::new(());
        let copy = other.clone();
        assert!(copy.claim_refresh(other.read_at + CACHE_TTL));
        assert!(!other.claim_refresh(other.read_at + CACHE_TTL));
    }
}
