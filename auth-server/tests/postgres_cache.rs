//! The PostgreSQL store's in-memory caches against a real database
//! (`PALISADE_TEST_DATABASE_URL`; a fresh database per run, dropped afterwards): the replica that
//! changes a client or revokes a token sees it at once, another replica within `CACHE_TTL`.
//! Skipped without the variable unless `PALISADE_REQUIRE_SERVICES=1`.

use palisade_auth_server::store::postgres::{PostgresStore, CACHE_TTL, REFRESH_AFTER};
use palisade_auth_server::store::Store;
use palisade_wire::registration::{
    hash_client_secret, random_token, ClientRegistration, GrantType, TokenEndpointAuthMethod,
};
use sqlx::Connection;

fn reg(secret: &str) -> ClientRegistration {
    ClientRegistration {
        client_id: "cached-app".into(),
        client_name: None,
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        grant_types: vec![GrantType::ClientCredentials],
        scopes: vec!["api".into()],
        token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
        public: false,
        client_secret_hash: Some(hash_client_secret(secret)),
    }
}

/// A fresh, migrated database: its URL, its name, and a connection to the server's default
/// database to drop it with. None when the test is skipped.
async fn fresh_database() -> Option<(String, String, sqlx::PgConnection)> {
    let url = match std::env::var("PALISADE_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var("PALISADE_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("PALISADE_REQUIRE_SERVICES=1 but PALISADE_TEST_DATABASE_URL is not set")
        }
        _ => {
            eprintln!("skipped: PALISADE_TEST_DATABASE_URL is not set");
            return None;
        }
    };
    let name = format!(
        "palisade_cache_{}",
        random_token(6).to_lowercase().replace(['-', '_'], "x")
    );
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let db_url = format!("{}/{name}", url.rsplit_once('/').unwrap().0);
    PostgresStore::connect_lazy(&db_url)
        .unwrap()
        .migrate()
        .await
        .unwrap();
    Some((db_url, name, admin))
}

async fn drop_database(name: &str, mut admin: sqlx::PgConnection) {
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn changes_are_seen_at_once_locally_and_within_the_ttl_on_other_replicas() {
    let Some((db_url, name, admin)) = fresh_database().await else {
        return;
    };
    let a = PostgresStore::connect_lazy(&db_url).unwrap();
    let b = PostgresStore::connect_lazy(&db_url).unwrap();

    // Both replicas read (and cache) the first registration.
    a.put_client(&reg("one")).await.unwrap();
    assert_eq!(
        a.client("cached-app").await.unwrap().as_deref(),
        Some(&reg("one"))
    );
    assert_eq!(
        b.client("cached-app").await.unwrap().as_deref(),
        Some(&reg("one"))
    );
    let jti = random_token(16);
    assert!(!a.is_revoked(&jti).await.unwrap());
    assert!(!b.is_revoked(&jti).await.unwrap());

    // Replica a changes the secret and revokes the token: a sees both at once.
    a.put_client(&reg("two")).await.unwrap();
    let expires = chrono::Utc::now() + chrono::Duration::minutes(10);
    a.revoke_jti(&jti, expires).await.unwrap();
    assert_eq!(
        a.client("cached-app").await.unwrap().as_deref(),
        Some(&reg("two"))
    );
    assert!(a.is_revoked(&jti).await.unwrap());
    // Replica b answers from memory (no database round trip) until the TTL passes...
    assert_eq!(
        b.client("cached-app").await.unwrap().as_deref(),
        Some(&reg("one"))
    );
    assert!(!b.is_revoked(&jti).await.unwrap());
    tokio::time::sleep(CACHE_TTL + std::time::Duration::from_millis(200)).await;
    // ...and then follows.
    assert_eq!(
        b.client("cached-app").await.unwrap().as_deref(),
        Some(&reg("two"))
    );
    assert!(b.is_revoked(&jti).await.unwrap());

    // Deletion: at once on a, within the TTL on b.
    assert!(a.delete_client("cached-app").await.unwrap());
    assert_eq!(a.client("cached-app").await.unwrap(), None);

    drop((a, b));
    drop_database(&name, admin).await;
}

/// An entry in use is read again in the background once it is `REFRESH_AFTER` old: the request
/// that starts the refresh still gets the cached answer, and the entry then holds the new one
/// before `CACHE_TTL`, so steady use never waits for an expired entry.
#[tokio::test]
async fn entries_in_use_are_refreshed_in_the_background_before_they_expire() {
    let Some((db_url, name, admin)) = fresh_database().await else {
        return;
    };
    let a = PostgresStore::connect_lazy(&db_url).unwrap();
    let b = PostgresStore::connect_lazy(&db_url).unwrap();
    let start = std::time::Instant::now();
    a.put_client(&reg("one")).await.unwrap();
    let jti = random_token(16);
    assert_eq!(
        b.client("cached-app").await.unwrap().as_deref(),
        Some(&reg("one"))
    );
    assert!(!b.is_revoked(&jti).await.unwrap());
    a.put_client(&reg("two")).await.unwrap();
    let expires = chrono::Utc::now() + chrono::Duration::minutes(10);
    a.revoke_jti(&jti, expires).await.unwrap();

    tokio::time::sleep(
        REFRESH_AFTER.saturating_sub(start.elapsed()) + std::time::Duration::from_millis(100),
    )
    .await;
    // This use starts the refresh and still gets the cached answers.
    assert_eq!(
        b.client("cached-app").await.unwrap().as_deref(),
        Some(&reg("one"))
    );
    assert!(!b.is_revoked(&jti).await.unwrap());
    // The refresh lands well before the entries would expire.
    let mut refreshed = false;
    while start.elapsed() < CACHE_TTL - std::time::Duration::from_millis(300) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if b.client("cached-app").await.unwrap().as_deref() == Some(&reg("two"))
            && b.is_revoked(&jti).await.unwrap()
        {
            refreshed = true;
            break;
        }
    }
    assert!(
        refreshed,
        "refreshed before CACHE_TTL ({:?})",
        start.elapsed()
    );

    drop((a, b));
    drop_database(&name, admin).await;
}

/// How many of `db`'s queries that start with `query` wait for a lock now, once the number has
/// stopped growing (the misses that would queue have had the time to reach the database).
async fn waiting(watcher: &mut sqlx::PgConnection, db: &str, query: &str) -> i64 {
    let mut last = 0;
    for _ in 0..100 {
        let now: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = $1 AND wait_event_type = 'Lock' AND starts_with(query, $2)",
        )
        .bind(db)
        .bind(query)
        .fetch_one(&mut *watcher)
        .await
        .unwrap();
        if now > 0 && now == last {
            break;
        }
        last = now;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    last
}

/// When a cached entry is missing (expired under load), concurrent requests for it make one
/// query and share its answer instead of each taking one of the pool's connections.
#[tokio::test]
async fn concurrent_misses_for_one_key_make_one_query() {
    let Some((db_url, name, admin)) = fresh_database().await else {
        return;
    };
    let store = PostgresStore::connect_lazy(&db_url).unwrap();
    store.put_client(&reg("one")).await.unwrap();
    let jti = random_token(16);
    let mut locker = sqlx::PgConnection::connect(&db_url).await.unwrap();
    let mut watcher = sqlx::PgConnection::connect(&db_url).await.unwrap();

    // Reads of both tables wait behind a lock while 40 requests per key miss the cache.
    let mut lock = Connection::begin(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE clients, revoked_tokens IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let clients: Vec<_> = (0..40)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.client("cached-app").await })
        })
        .collect();
    let revocations: Vec<_> = (0..40)
        .map(|_| {
            let (store, jti) = (store.clone(), jti.clone());
            tokio::spawn(async move { store.is_revoked(&jti).await })
        })
        .collect();
    let client_reads = waiting(&mut watcher, &name, "SELECT registration FROM clients").await;
    let revocation_reads = waiting(&mut watcher, &name, "SELECT 1 FROM revoked_tokens").await;
    lock.commit().await.unwrap();
    assert_eq!(client_reads, 1, "queries for one client read at once");
    assert_eq!(
        revocation_reads, 1,
        "queries for one token's revocation at once"
    );

    // Every request gets the answer of the one read.
    for read in clients {
        assert_eq!(read.await.unwrap().unwrap().as_deref(), Some(&reg("one")));
    }
    for read in revocations {
        assert!(!read.await.unwrap().unwrap());
    }

    drop((store, locker, watcher));
    drop_database(&name, admin).await;
}
