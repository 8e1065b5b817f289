//! PostgreSQL storage (sqlx). Schema: `migrations/`. Every query has a bounded wait, so an
//! outage becomes a quick 503 rather than a hung request.
//!
//! The two reads on every token and introspection request are cached in memory for
//! [`CACHE_TTL`]: client registrations (dropped at once on this replica's PUT/DELETE) and
//! "this `jti` is not revoked" answers (dropped at once on this replica's revocation). Other
//! replicas see a change within [`CACHE_TTL`]; revoked answers are kept, since a revocation is
//! final.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use palisade_wire::registration::ClientRegistration;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;

/// How long a replica may answer from memory after another replica changed a client or
/// revoked a token: the documented staleness bound (docs/decisions.md).
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// Entries per cache; the least recently used go first.
const CACHE_CAPACITY: u64 = 100_000;

/// The in-memory caches in front of the database.
#[derive(Clone)]
struct Caches {
    clients: moka::sync::Cache<String, Arc<ClientRegistration>>,
    not_revoked: moka::sync::Cache<String, ()>,
    revoked: moka::sync::Cache<String, ()>,
}

fn cache<V: Clone + Send + Sync + 'static>(ttl: Duration) -> moka::sync::Cache<String, V> {
    moka::sync::Cache::builder()
        .max_capacity(CACHE_CAPACITY)
        .time_to_live(ttl)
        .build()
}

impl Caches {
    fn new() -> Self {
        Caches {
            clients: cache(CACHE_TTL),
            not_revoked: cache(CACHE_TTL),
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
    caches: Caches,
}

fn err(e: sqlx::Error) -> StoreError {
    StoreError(e.to_string())
}

impl PostgresStore {
    /// Connects lazily: the server starts (and reports not-ready) while the database is down.
    pub fn connect_lazy(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy(url)
            .map_err(err)?;
        Ok(PostgresStore {
            pool,
            caches: Caches::new(),
        })
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
    async fn client(&self, client_id: &str) -> Result<Option<ClientRegistration>, StoreError> {
        if let Some(reg) = self.caches.clients.get(client_id) {
            return Ok(Some(reg.as_ref().clone()));
        }
        let row = sqlx::query("SELECT registration FROM clients WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        match row {
            Some(r) => {
                let json: serde_json::Value = r.try_get("registration").map_err(err)?;
                let reg: ClientRegistration =
                    serde_json::from_value(json).map_err(|e| StoreError(e.to_string()))?;
                self.caches
                    .clients
                    .insert(client_id.to_string(), Arc::new(reg.clone()));
                Ok(Some(reg))
            }
            None => Ok(None),
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
        self.caches.clients.invalidate(&reg.client_id);
        Ok(())
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        self.caches.clients.invalidate(client_id);
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
        self.caches.not_revoked.invalidate(jti);
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        // Revoked first: a "not revoked" answer read just before a local revocation must not win.
        if self.caches.revoked.contains_key(jti) {
            return Ok(true);
        }
        if self.caches.not_revoked.contains_key(jti) {
            return Ok(false);
        }
        let row = sqlx::query("SELECT 1 FROM revoked_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        let cache = if row.is_some() {
            &self.caches.revoked
        } else {
            &self.caches.not_revoked
        };
        cache.insert(jti.to_string(), ());
        Ok(row.is_some())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }
}
