//! Test harness: the auth-server in-process on 127.0.0.1:0 (issuer with a path component),
//! on the in-memory store or on a fresh, randomly named PostgreSQL database that is dropped
//! afterwards; plus a small browser (reqwest, no redirects, its own cookie jar).

#![allow(dead_code)]

use futures::FutureExt;
use palisade_auth_server::config::{Config, Ttls};
use palisade_auth_server::federation::config::UpstreamConfig;
use palisade_auth_server::keys::KeyStore;
use palisade_auth_server::state::{AppState, Secrets};
use palisade_auth_server::store::{memory::MemoryStore, postgres::PostgresStore, Store};
use palisade_auth_server::{admin_router, public_router};
use palisade_wire::registration::{
    hash_client_secret, random_token, ClientRegistration, GrantType, TokenEndpointAuthMethod,
};
use sqlx::Connection;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

/// Which store the server runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Memory,
    Postgres,
}

/// Redirect URI every test client registers.
pub const REDIRECT: &str = "http://127.0.0.1:9/callback";
/// Post-logout redirect URI every test client registers.
pub const POST_LOGOUT: &str = "http://127.0.0.1:9/bye";
/// Password of [`Srv::user`].
pub const PASSWORD: &str = "correct horse battery";

/// A running server.
#[derive(Clone)]
pub struct Srv {
    /// Issuer, e.g. `http://127.0.0.1:PORT/t`.
    pub issuer: String,
    pub admin: String,
    pub admin_token: String,
    pub state: AppState,
    /// Plain HTTP client that never follows redirects.
    pub http: reqwest::Client,
    tasks: Arc<Vec<tokio::task::JoinHandle<()>>>,
}

/// Default lifetimes of the test server.
pub fn ttls() -> Ttls {
    Ttls {
        access: 300,
        id: 300,
        refresh: 3600,
        authorization_code: 60,
        session: 3600,
    }
}

/// A fresh database on the server of `PALISADE_TEST_DATABASE_URL`, dropped by [`TestDb::drop`].
pub struct TestDb {
    admin_url: String,
    name: String,
    pub url: String,
}

impl TestDb {
    /// Creates the database; `None` (skip) when no server is configured, unless
    /// `PALISADE_REQUIRE_SERVICES=1`.
    pub async fn create() -> Option<TestDb> {
        let Some(admin_url) = std::env::var("PALISADE_TEST_DATABASE_URL")
            .ok()
            .filter(|v| !v.is_empty())
        else {
            assert!(
                std::env::var("PALISADE_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "PALISADE_REQUIRE_SERVICES=1 but PALISADE_TEST_DATABASE_URL is unset"
            );
            eprintln!("skipping: PALISADE_TEST_DATABASE_URL is unset");
            return None;
        };
        let name = format!(
            "palisade_t_{}",
            random_token(9).to_lowercase().replace(['-', '_'], "x")
        );
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("PALISADE_TEST_DATABASE_URL answers");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create database");
        conn.close().await.ok();
        let mut url = url::Url::parse(&admin_url).expect("database URL");
        url.set_path(&name);
        Some(TestDb {
            admin_url,
            name,
            url: url.to_string(),
        })
    }

    /// Drops the database (closing any connection still open).
    pub async fn drop(self) {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await;
            conn.close().await.ok();
        }
    }
}

/// A server on `store`, with Redis at `redis_url` (shared rate limits) and `rate_limits`.
/// Its tasks stop when the test's runtime ends.
pub async fn start_with(
    store: Arc<dyn Store>,
    ttls: Ttls,
    redis_url: Option<String>,
    rate_limits: palisade_wire::contract::RateLimits,
) -> Srv {
    start_configured(store, ttls, |c| {
        c.redis_url = redis_url;
        c.rate_limits = rate_limits;
    })
    .await
}

/// A server on the in-memory store with the default lifetimes (e.g. an upstream provider).
pub async fn start_memory() -> Srv {
    start_configured(Arc::new(MemoryStore::default()), ttls(), |_| {}).await
}

/// A server on the in-memory store that publishes `issuer` (e.g. the address of a proxy in
/// front of it) instead of its own address.
pub async fn start_memory_as(issuer: String) -> Srv {
    start_configured(Arc::new(MemoryStore::default()), ttls(), |c| {
        c.issuer = issuer
    })
    .await
}

/// A server on `store` with the test configuration changed by `configure` (policy, rate
/// limits, Redis). Its tasks stop when the test's runtime ends.
pub async fn start_configured(
    store: Arc<dyn Store>,
    ttls: Ttls,
    configure: impl FnOnce(&mut Config),
) -> Srv {
    let public = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public_addr = public.local_addr().unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let mut config = Config {
        issuer: format!("http://{public_addr}/t"),
        public_addr,
        admin_addr,
        database_url: None,
        redis_url: None,
        keyset_file: None,
        internal_dir: None,
        ttls,
        audit_retention: std::time::Duration::from_secs(86_400),
        audit_machine_tokens: Default::default(),
        rate_limits: Default::default(),
        totp_policy: Default::default(),
        log_level: "warn".into(),
        json_logs: false,
        upstreams: Vec::new(),
    };
    configure(&mut config);
    let issuer = config.issuer.clone();
    let secrets = Secrets::load(None).unwrap();
    let admin_token = secrets.admin_token.clone();
    let (state, _audit_writer) =
        AppState::new(config, store, KeyStore::development().unwrap(), secrets).unwrap();
    let p = tokio::spawn({
        let app = public_router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        async move {
            let _ = axum::serve(public, app).await;
        }
    });
    let a = tokio::spawn({
        let app = admin_router(state.clone());
        async move {
            let _ = axum::serve(admin, app).await;
        }
    });
    Srv {
        issuer,
        admin: format!("http://{admin_addr}"),
        admin_token,
        state,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        tasks: Arc::new(vec![p, a]),
    }
}

/// Runs `test` against a fresh server on `backend` with `ttls`, then tears everything down
/// (the database too, even when the test panics).
pub async fn run<F, Fut>(backend: Backend, ttls: Ttls, test: F)
where
    F: FnOnce(Srv) -> Fut,
    Fut: Future<Output = ()>,
{
    run_configured(backend, ttls, |_| {}, test).await
}

/// As [`run`], with a server that signs users in through `upstreams` too.
pub async fn run_with_upstreams<F, Fut>(
    backend: Backend,
    ttls: Ttls,
    upstreams: Vec<UpstreamConfig>,
    test: F,
) where
    F: FnOnce(Srv) -> Fut,
    Fut: Future<Output = ()>,
{
    run_configured(backend, ttls, move |c| c.upstreams = upstreams, test).await
}

/// [`run`] with the test configuration changed by `configure`.
pub async fn run_configured<F, Fut>(
    backend: Backend,
    ttls: Ttls,
    configure: impl FnOnce(&mut Config),
    test: F,
) where
    F: FnOnce(Srv) -> Fut,
    Fut: Future<Output = ()>,
{
    let (store, db): (Arc<dyn Store>, Option<TestDb>) = match backend {
        Backend::Memory => (Arc::new(MemoryStore::default()), None),
        Backend::Postgres => {
            let Some(db) = TestDb::create().await else {
                return;
            };
            let pg = PostgresStore::connect_lazy(&db.url).unwrap();
            pg.migrate().await.expect("migrations apply");
            (Arc::new(pg), Some(db))
        }
    };
    let srv = start_configured(store, ttls, configure).await;
    let tasks = srv.tasks.clone();
    let result = AssertUnwindSafe(test(srv)).catch_unwind().await;
    for t in tasks.iter() {
        t.abort();
    }
    if let Some(db) = db {
        db.drop().await;
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Generates `memory` and `postgres` variants of one test.
#[macro_export]
macro_rules! on_both_stores {
    ($name:ident, $ttls:expr, $body:path) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn memory() {
                common::run(common::Backend::Memory, $ttls, $body).await
            }
            #[tokio::test]
            async fn postgres() {
                common::run(common::Backend::Postgres, $ttls, $body).await
            }
        }
    };
}

/// A registered client and its secret (`None` for public clients).
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
}

impl Srv {
    /// An endpoint URL under the issuer.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Registers a client through the admin API.
    pub async fn client(&self, public: bool, method: TokenEndpointAuthMethod) -> TestClient {
        let id = format!("c-{}", random_token(6));
        let secret = (!public).then(|| random_token(32));
        let reg = ClientRegistration {
            client_id: id.clone(),
            client_name: Some("Test App".into()),
            redirect_uris: vec![REDIRECT.into()],
            post_logout_redirect_uris: vec![POST_LOGOUT.into()],
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            token_endpoint_auth_method: method,
            public,
            client_secret_hash: secret.as_deref().map(hash_client_secret),
        };
        let resp = self
            .http
            .put(format!("{}/admin/clients/{id}", self.admin))
            .bearer_auth(&self.admin_token)
            .json(&reg)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "client registered");
        TestClient { id, secret }
    }

    /// A confidential client using client_secret_basic.
    pub async fn confidential(&self) -> TestClient {
        self.client(false, TokenEndpointAuthMethod::ClientSecretBasic)
            .await
    }

    /// Creates or updates a user through the admin API; returns the status.
    pub async fn put_user(&self, username: &str, body: serde_json::Value) -> u16 {
        self.http
            .put(format!("{}/admin/users/{username}", self.admin))
            .bearer_auth(&self.admin_token)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// A fresh user with [`PASSWORD`]; returns the username.
    pub async fn user(&self) -> String {
        let username = format!("u-{}", random_token(6));
        let status = self
            .put_user(
                &username,
                serde_json::json!({
                    "password": PASSWORD,
                    "email": format!("{username}@example.com"),
                    "emailVerified": true,
                    "name": "Test User",
                }),
            )
            .await;
        assert_eq!(status, 201, "user created");
        username
    }

    /// The admin port's metrics text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of a counter line starting with `prefix` (0 when absent).
    pub async fn counter(&self, prefix: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// POSTs a form to the token endpoint with Basic credentials.
    pub async fn token(
        &self,
        client: &TestClient,
        form: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let mut req = self.http.post(self.url("/token"));
        let mut form: Vec<(&str, &str)> = form.to_vec();
        match &client.secret {
            Some(s) => req = req.basic_auth(&client.id, Some(s)),
            None => form.push(("client_id", &client.id)),
        }
        let resp = req.form(&form).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or_default())
    }

    /// Exchanges an authorization code issued for [`REDIRECT`] with its PKCE verifier.
    pub async fn exchange_code(
        &self,
        client: &TestClient,
        code: &str,
        verifier: &str,
    ) -> (u16, serde_json::Value) {
        self.token(
            client,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    /// `GET /admin/audit?{query}`: the status and the page.
    pub async fn audit(&self, query: &str) -> (u16, serde_json::Value) {
        let resp = self
            .http
            .get(format!("{}/admin/audit?{query}", self.admin))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or_default(),
        )
    }

    /// The audit records of `query`, newest first, waiting (the writer is asynchronous) until
    /// there are `n`; fails when there are not exactly `n` within 5 s.
    pub async fn audit_records(&self, query: &str, n: usize) -> Vec<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let (status, page) = self.audit(query).await;
            assert_eq!(status, 200, "{page}");
            let found = page["records"].as_array().cloned().unwrap_or_default();
            if found.len() >= n || tokio::time::Instant::now() > deadline {
                assert_eq!(found.len(), n, "records of {query}: {found:#?}");
                return found;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Introspects a token as `client`; returns `active`.
    pub async fn active(&self, client: &TestClient, token: &str) -> bool {
        let resp = self
            .http
            .post(self.url("/introspect"))
            .basic_auth(&client.id, client.secret.clone())
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json::<serde_json::Value>().await.unwrap()["active"] == true
    }
}

/// A minimal browser: keeps cookies, never follows redirects.
#[derive(Clone)]
pub struct Browser {
    http: reqwest::Client,
    jar: Arc<Mutex<HashMap<String, String>>>,
}

/// A response as the browser saw it.
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Page {
    /// The value of a hidden input.
    pub fn hidden(&self, name: &str) -> Option<String> {
        let needle = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&needle)? + needle.len();
        let end = self.body[start..].find('"')? + start;
        Some(self.body[start..end].to_string())
    }

    /// The query parameters of the `Location` header.
    pub fn location_query(&self) -> HashMap<String, String> {
        let loc = self.location.as_deref().expect("a Location header");
        url::Url::parse(loc)
            .expect("absolute Location")
            .query_pairs()
            .into_owned()
            .collect()
    }

    /// Whether a cookie named `name` was set (not cleared) by this response.
    pub fn sets_cookie(&self, name: &str) -> bool {
        self.set_cookies
            .iter()
            .any(|c| c.starts_with(&format!("{name}=")) && !c.contains("Max-Age=0"))
    }
}

impl Default for Browser {
    fn default() -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: Default::default(),
        }
    }
}

impl Browser {
    fn cookie_header(&self) -> String {
        let jar = self.jar.lock().unwrap();
        jar.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn page(&self, resp: reqwest::Response) -> Page {
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let set_cookies: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        {
            let mut jar = self.jar.lock().unwrap();
            for c in &set_cookies {
                let pair = c.split(';').next().unwrap();
                let (k, v) = pair.split_once('=').unwrap();
                if c.contains("Max-Age=0") {
                    jar.remove(k);
                } else {
                    jar.insert(k.to_string(), v.to_string());
                }
            }
        }
        Page {
            status,
            location,
            set_cookies,
            body: resp.text().await.unwrap_or_default(),
        }
    }

    /// GET with this browser's cookies.
    pub async fn get(&self, url: &str) -> Page {
        let resp = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.page(resp).await
    }

    /// POST a form with this browser's cookies.
    pub async fn post(&self, url: &str, form: &[(&str, &str)]) -> Page {
        let resp = self
            .http
            .post(url)
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.page(resp).await
    }

    /// The raw (sealed) value of a cookie this browser holds.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(name).cloned()
    }

    /// Puts a cookie (as raw `cookie` returned it) back into the jar.
    pub fn put_cookie(&self, name: &str, value: &str) {
        self.jar
            .lock()
            .unwrap()
            .insert(name.to_string(), value.to_string());
    }

    /// Forgets a cookie.
    pub fn forget(&self, name: &str) {
        self.jar.lock().unwrap().remove(name);
    }

    /// Follows `/authorize` to the login page; panics unless it gets there.
    pub async fn login_page(&self, authorize_url: &str) -> Page {
        let to_login = self.get(authorize_url).await;
        assert_eq!(to_login.status, 303, "authorize → login: {}", to_login.body);
        let login_url = to_login.location.clone().unwrap();
        assert!(login_url.contains("/t/login?request="), "{login_url}");
        let page = self.get(&login_url).await;
        assert_eq!(page.status, 200, "{}", page.body);
        page
    }

    /// Submits the login form on `page` with the given credentials.
    pub async fn submit(&self, srv: &Srv, page: &Page, username: &str, password: &str) -> Page {
        let request = page.hidden("request").expect("request input");
        let csrf = page.hidden("csrf").expect("csrf input");
        self.post(
            &srv.url("/login"),
            &[
                ("request", &request),
                ("csrf", &csrf),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    /// The whole front channel: `/authorize` → `/login` → form → the 303 back to the client.
    /// Returns the callback's query parameters.
    pub async fn sign_in(
        &self,
        srv: &Srv,
        authorize_url: &str,
        username: &str,
    ) -> HashMap<String, String> {
        let page = self.login_page(authorize_url).await;
        let done = self.submit(srv, &page, username, PASSWORD).await;
        assert_eq!(done.status, 303, "login: {}", done.body);
        assert!(done.location.as_deref().unwrap().starts_with(REDIRECT));
        done.location_query()
    }
}

/// Signs `username` in to `client` and exchanges the code; returns the token response.
pub async fn tokens_for(srv: &Srv, client: &TestClient, username: &str) -> serde_json::Value {
    let (url, verifier) = authorize_url(srv, &client.id, &[]);
    let cb = Browser::default().sign_in(srv, &url, username).await;
    let (status, body) = srv.exchange_code(client, &cb["code"], &verifier).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// An `/authorize` URL for `client` with PKCE S256, state `st-1` and nonce `n-1`; `extra`
/// replaces parameters by name (an empty value removes one). Returns it with the verifier.
pub fn authorize_url(srv: &Srv, client: &str, extra: &[(&str, &str)]) -> (String, String) {
    let verifier = random_token(32);
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    let mut params: Vec<(&str, String)> = vec![
        ("response_type", "code".into()),
        ("client_id", client.into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", "openid email profile".into()),
        ("state", "st-1".into()),
        ("nonce", "n-1".into()),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256".into()),
    ];
    for (k, v) in extra {
        params.retain(|(name, _)| name != k);
        if !v.is_empty() {
            params.push((k, v.to_string()));
        }
    }
    let mut url = url::Url::parse(&srv.url("/authorize")).unwrap();
    for (k, v) in &params {
        url.query_pairs_mut().append_pair(k, v);
    }
    (url.to_string(), verifier)
}
