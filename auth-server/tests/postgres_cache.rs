//! The PostgreSQL store's in-memory caches against a real database
//! (`PALISADE_TEST_DATABASE_URL`; a fresh database per run, dropped afterwards): the replica that
//! changes a client or revokes a token sees it at once, another replica within `CACHE_TTL`.
//! Skipped without the variable unless `PALISADE_REQUIRE_SERVICES=1`.

use palisade_auth_server::store::postgres::{PostgresStore, CACHE_TTL};
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

#[tokio::test]
async fn changes_are_seen_at_once_locally_and_within_the_ttl_on_other_replicas() {
    let url = match std::env::var("PALISADE_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var("PALISADE_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("PALISADE_REQUIRE_SERVICES=1 but PALISADE_TEST_DATABASE_URL is not set")
        }
        _ => return eprintln!("skipped: PALISADE_TEST_DATABASE_URL is not set"),
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

    let a = PostgresStore::connect_lazy(&db_url).unwrap();
    a.migrate().await.unwrap();
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
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}
