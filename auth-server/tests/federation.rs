//! Upstream OpenID Connect federation, end to end: a second Palisade auth-server (in memory)
//! plays the upstream provider, with a registered client and users; the server under test
//! signs users in through it. A browser (two cookie jars: the two servers stand for two sites)
//! drives `/authorize` → sign-in page → upstream start → the upstream's own sign-in → callback →
//! code → tokens, and the ways it can go wrong. Every test runs on the in-memory store and on
//! PostgreSQL (`PALISADE_TEST_DATABASE_URL`; skipped when unset unless
//! `PALISADE_REQUIRE_SERVICES=1`).

mod common;

use common::{authorize_url, Backend, Browser, Page, Srv, TestClient, PASSWORD, REDIRECT};
use palisade_auth_server::federation::config::UpstreamConfig;
use palisade_wire::contract::{AccountLinking, ClaimMapping, Upstream};
use palisade_wire::registration::{
    hash_client_secret, random_token, ClientRegistration, GrantType, TokenEndpointAuthMethod,
};
use serde_json::Value;
use std::future::Future;

const UPSTREAM: &str = "corp";
const DISPLAY: &str = "Corp ID";
const FAILED: &str = "Sign-in with Corp ID failed. Try again or use another method.";

/// The server under test (`local`), the upstream, and a client of the local server.
struct Fed {
    local: Srv,
    upstream: Srv,
    client: TestClient,
    /// The local client's secret at the upstream (must never show up in a page).
    upstream_secret: String,
}

/// Starts an upstream, then the local server configured with it (issuer `issuer` if given,
/// e.g. an address where nothing listens), registers the local server at the upstream with
/// its callback URL, and runs `test`.
async fn run_fed<F, Fut>(backend: Backend, policy: AccountLinking, issuer: Option<String>, test: F)
where
    F: FnOnce(Fed) -> Fut,
    Fut: Future<Output = ()>,
{
    run_fed_with(common::start_memory().await, backend, policy, issuer, test).await
}

/// As [`run_fed`], with the given upstream server.
async fn run_fed_with<F, Fut>(
    upstream: Srv,
    backend: Backend,
    policy: AccountLinking,
    issuer: Option<String>,
    test: F,
) where
    F: FnOnce(Fed) -> Fut,
    Fut: Future<Output = ()>,
{
    let client_id = format!("palisade-{}", random_token(6));
    let secret = random_token(32);
    let config = UpstreamConfig {
        upstream: Upstream {
            name: UPSTREAM.into(),
            display_name: DISPLAY.into(),
            issuer: issuer.unwrap_or_else(|| upstream.issuer.clone()),
            client_id: client_id.clone(),
            scopes: Upstream::default_scopes(),
            claims: ClaimMapping::default(),
            account_linking: policy,
        },
        client_secret: secret.clone(),
    };
    common::run_with_upstreams(backend, common::ttls(), vec![config], |local| async move {
        let reg = ClientRegistration {
            client_id: client_id.clone(),
            client_name: Some("Palisade under test".into()),
            redirect_uris: vec![local.url("/upstream/corp/callback")],
            post_logout_redirect_uris: vec![],
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
            public: false,
            client_secret_hash: Some(hash_client_secret(&secret)),
        };
        let resp = upstream
            .http
            .put(format!("{}/admin/clients/{client_id}", upstream.admin))
            .bearer_auth(&upstream.admin_token)
            .json(&reg)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "registered at the upstream");
        let client = local.confidential().await;
        test(Fed {
            local,
            upstream,
            client,
            upstream_secret: secret,
        })
        .await
    })
    .await
}

macro_rules! fed_test {
    ($name:ident, $policy:expr, $body:path) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn memory() {
                run_fed(Backend::Memory, $policy, None, $body).await
            }
            #[tokio::test]
            async fn postgres() {
                run_fed(Backend::Postgres, $policy, None, $body).await
            }
        }
    };
}

/// A sign-in under way: the browser at the local server, the one at the upstream, the local
/// sign-in page and the local client's PKCE verifier.
struct Flow {
    local: Browser,
    upstream: Browser,
    login: Page,
    verifier: String,
}

/// `/authorize` at the local server to its sign-in page, which must offer the upstream.
async fn begin(fed: &Fed) -> Flow {
    let (url, verifier) = authorize_url(&fed.local, &fed.client.id, &[]);
    let local = Browser::default();
    let login = local.login_page(&url).await;
    assert!(
        login
            .body
            .contains("<form method=\"post\" action=\"/t/upstream/corp/start\">"),
        "{}",
        login.body
    );
    assert!(login.body.contains("Sign in with Corp ID</button>"));
    Flow {
        local,
        upstream: Browser::default(),
        login,
        verifier,
    }
}

/// Presses the upstream's button; returns the redirect to the upstream's `/authorize`.
async fn press_button(fed: &Fed, flow: &Flow) -> Page {
    let request = flow.login.hidden("request").unwrap();
    let csrf = flow.login.hidden("csrf").unwrap();
    let resp = flow
        .local
        .post(
            &fed.local.url("/upstream/corp/start"),
            &[("request", &request), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(resp.status, 303, "{}", resp.body);
    assert!(resp.sets_cookie("palisade_upstream"));
    let to = resp.location.clone().unwrap();
    assert!(to.starts_with(&fed.upstream.url("/authorize?")), "{to}");
    let q = resp.location_query();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["state"].len() >= 20 && q["nonce"].len() >= 20);
    assert!(q["scope"].split(' ').any(|s| s == "openid"));
    assert_eq!(q["redirect_uri"], fed.local.url("/upstream/corp/callback"));
    resp
}

/// The upstream's own sign-in for `username`, starting at its `/authorize` URL; returns the
/// callback URL it sends the browser back to.
async fn sign_in_upstream(fed: &Fed, flow: &Flow, authorize: &str, username: &str) -> String {
    let page = flow.upstream.login_page(authorize).await;
    let done = flow
        .upstream
        .submit(&fed.upstream, &page, username, PASSWORD)
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let callback = done.location.unwrap();
    assert!(
        callback.starts_with(&fed.local.url("/upstream/corp/callback?")),
        "{callback}"
    );
    callback
}

/// Starts a sign-in at the local server, presses the upstream's button and signs `username`
/// in at the upstream; returns the flow and the callback URL the upstream sends back to.
async fn to_callback(fed: &Fed, username: &str) -> (Flow, String) {
    let flow = begin(fed).await;
    let to_upstream = press_button(fed, &flow).await;
    let callback = sign_in_upstream(
        fed,
        &flow,
        to_upstream.location.as_deref().unwrap(),
        username,
    )
    .await;
    (flow, callback)
}

/// `federated_login_total` of the upstream `corp` with `outcome`.
async fn logins(fed: &Fed, outcome: &str) -> f64 {
    fed.local
        .counter(&format!(
            "federated_login_total{{upstream=\"corp\",outcome=\"{outcome}\"}}"
        ))
        .await
}

/// The `sub` the upstream gave its user `username`.
async fn upstream_sub(fed: &Fed, username: &str) -> String {
    admin_user(&fed.upstream, username).await.unwrap()["sub"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Asserts the local server answers `callback` with the generic failure page with `status`,
/// leaking none of `secrets`, and starts no session.
async fn refused_at_callback(flow: &Flow, callback: &str, status: u16, secrets: &[&str]) {
    let page = flow.local.get(callback).await;
    assert_failed_page(&page, status, secrets);
    assert!(!page.sets_cookie("palisade_session"), "no session");
}

/// The payload of a JWT (the test trusts its own server's signature).
fn payload(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// The whole federated sign-in of upstream user `username`; returns the local ID token's claims.
async fn federated_id_token(fed: &Fed, username: &str) -> Value {
    let (flow, callback) = to_callback(fed, username).await;
    let back = flow.local.get(&callback).await;
    assert_eq!(back.status, 303, "{}", back.body);
    assert!(back.location.as_deref().unwrap().starts_with(REDIRECT));
    assert!(back.sets_cookie("palisade_session"), "a local session");
    let cb = back.location_query();
    assert_eq!(cb["state"], "st-1");
    assert_eq!(cb["iss"], fed.local.issuer);
    let (status, tokens) = fed
        .local
        .exchange_code(&fed.client, &cb["code"], &flow.verifier)
        .await;
    assert_eq!(status, 200, "{tokens}");
    payload(tokens["id_token"].as_str().unwrap())
}

/// A user as the admin API of `srv` shows it (`None` when absent).
async fn admin_user(srv: &Srv, username: &str) -> Option<Value> {
    let resp = srv
        .http
        .get(format!("{}/admin/users/{username}", srv.admin))
        .bearer_auth(&srv.admin_token)
        .send()
        .await
        .unwrap();
    (resp.status() == 200).then_some(resp.json().await.unwrap())
}

/// Asserts the page is the generic failure page and leaks nothing of `secrets`.
fn assert_failed_page(page: &Page, status: u16, secrets: &[&str]) {
    assert_eq!(page.status, status, "{}", page.body);
    assert!(page.body.contains(FAILED), "{}", page.body);
    for s in secrets {
        assert!(!page.body.contains(s), "the page leaks {s}: {}", page.body);
    }
}

// ---------------------------------------------------------------------------------------------

async fn first_sign_in_creates_a_user_and_the_next_one_links_to_it(fed: Fed) {
    let alice = fed.upstream.user().await;
    let upstream_sub = upstream_sub(&fed, &alice).await;
    let before = logins(&fed, "success").await;

    let claims = federated_id_token(&fed, &alice).await;
    let created = admin_user(&fed.local, &format!("corp:{upstream_sub}"))
        .await
        .expect("a local user named <upstream>:<upstream sub>");
    assert_eq!(
        claims["sub"], created["sub"],
        "signed in as the new local user"
    );
    assert_ne!(
        claims["sub"],
        upstream_sub.as_str(),
        "a local subject, not the upstream's"
    );
    assert_eq!(claims["amr"], serde_json::json!(["fed"]));
    assert_eq!(claims["acr"], "urn:palisade:acr:1fa");
    assert_eq!(claims["email"], format!("{alice}@example.com"));
    assert_eq!(
        claims["email_verified"], false,
        "a SubjectOnly upstream is not trusted for addresses: Palisade does not vouch for it"
    );
    assert_eq!(claims["name"], "Test User");
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(
        created["hasPassword"], false,
        "federated users have no password"
    );

    let again = federated_id_token(&fed, &alice).await;
    assert_eq!(
        again["sub"], claims["sub"],
        "the second sign-in links to the same user"
    );
    assert_eq!(logins(&fed, "success").await, before + 2.0);

    // A disabled local user cannot sign in through the upstream either.
    let local_name = format!("corp:{upstream_sub}");
    assert_eq!(
        fed.local
            .put_user(&local_name, serde_json::json!({"disabled": true}))
            .await,
        204
    );
    let (flow, callback) = to_callback(&fed, &alice).await;
    refused_at_callback(&flow, &callback, 403, &[]).await;
    assert_eq!(logins(&fed, "account_disabled").await, 1.0);

    // The audit trail: two sign-ins as the linked user, then the refusal.
    let trail = fed.local.audit_records("event=federated_login", 3).await;
    assert_eq!(trail[0]["outcome"], "failure");
    assert_eq!(trail[0]["detail"], "corp: account_disabled");
    for ok in &trail[1..] {
        assert_eq!(ok["outcome"], "success");
        assert_eq!(ok["detail"], "corp");
        assert_eq!(ok["subject"], created["sub"]);
        assert_eq!(ok["username"], local_name.as_str());
        assert_eq!(ok["address"], "127.0.0.1");
    }
}
fed_test!(
    creates_then_links,
    AccountLinking::SubjectOnly,
    first_sign_in_creates_a_user_and_the_next_one_links_to_it
);

/// A password user an administrator named like a federated user is never signed in as.
async fn a_password_user_with_the_federated_name_is_not_taken_over(fed: Fed) {
    let alice = fed.upstream.user().await;
    let upstream_sub = upstream_sub(&fed, &alice).await;
    let taken = format!("corp:{upstream_sub}");
    assert_eq!(
        fed.local
            .put_user(&taken, serde_json::json!({"password": PASSWORD}))
            .await,
        201
    );
    let (flow, callback) = to_callback(&fed, &alice).await;
    refused_at_callback(&flow, &callback, 403, &[]).await;
    assert_eq!(logins(&fed, "username_taken").await, 1.0);
}
fed_test!(
    password_user_not_taken_over,
    AccountLinking::SubjectOnly,
    a_password_user_with_the_federated_name_is_not_taken_over
);

async fn subject_only_policy_never_links_by_email(fed: Fed) {
    let alice = fed.upstream.user().await;
    // A local user with the same, verified, address.
    let status = fed
        .local
        .put_user(
            "alice-local",
            serde_json::json!({"password": PASSWORD, "email": format!("{alice}@example.com"), "emailVerified": true}),
        )
        .await;
    assert_eq!(status, 201);
    let local = admin_user(&fed.local, "alice-local").await.unwrap();
    let claims = federated_id_token(&fed, &alice).await;
    assert_ne!(claims["sub"], local["sub"], "SubjectOnly: a new user");
}
fed_test!(
    subject_only,
    AccountLinking::SubjectOnly,
    subject_only_policy_never_links_by_email
);

async fn verified_email_links_and_unverified_email_does_not(fed: Fed) {
    // Verified at the upstream and locally: linked to the existing local user.
    let alice = fed.upstream.user().await;
    let email = format!("{alice}@example.com");
    assert_eq!(
        fed.local
            .put_user(
                "alice-local",
                serde_json::json!({"password": PASSWORD, "email": email.to_uppercase(), "emailVerified": true}),
            )
            .await,
        201
    );
    let local = admin_user(&fed.local, "alice-local").await.unwrap();
    let claims = federated_id_token(&fed, &alice).await;
    assert_eq!(claims["sub"], local["sub"], "linked by verified email");

    // Unverified at the upstream: never linked, a new user instead.
    let mallory = format!("m-{}", random_token(6));
    assert_eq!(
        fed.upstream
            .put_user(
                &mallory,
                serde_json::json!({"password": PASSWORD, "email": "bob@example.com", "emailVerified": false}),
            )
            .await,
        201
    );
    assert_eq!(
        fed.local
            .put_user(
                "bob",
                serde_json::json!({"password": PASSWORD, "email": "bob@example.com", "emailVerified": true}),
            )
            .await,
        201
    );
    let bob = admin_user(&fed.local, "bob").await.unwrap();
    let claims = federated_id_token(&fed, &mallory).await;
    assert_ne!(claims["sub"], bob["sub"], "an unverified email never links");
    assert_eq!(claims["email_verified"], false);
}
fed_test!(
    verified_email,
    AccountLinking::VerifiedEmail,
    verified_email_links_and_unverified_email_does_not
);

async fn bad_replayed_or_foreign_state_is_refused(fed: Fed) {
    let alice = fed.upstream.user().await;
    let (flow, callback) = to_callback(&fed, &alice).await;
    let code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();

    // From another browser (no binding cookie): refused, and the state is not spent.
    let stranger = Browser::default().get(&callback).await;
    assert_failed_page(&stranger, 400, &[&code]);
    // A state this browser never got.
    let forged = callback.replace("state=", "state=x");
    assert_failed_page(&flow.local.get(&forged).await, 400, &[&code]);
    // No state at all.
    assert_failed_page(
        &flow
            .local
            .get(&fed.local.url("/upstream/corp/callback?code=abc"))
            .await,
        400,
        &[],
    );

    let binding = flow.local.cookie("palisade_upstream").unwrap();
    let first = flow.local.get(&callback).await;
    assert_eq!(
        first.status, 303,
        "the genuine callback still works: {}",
        first.body
    );
    assert!(
        flow.local.cookie("palisade_upstream").is_none(),
        "binding spent"
    );
    // Even with the binding cookie put back, the state is single use.
    flow.local.put_cookie("palisade_upstream", &binding);
    let replay = flow.local.get(&callback).await;
    assert_failed_page(&replay, 400, &[&code]);
    assert!(logins(&fed, "bad_state").await >= 4.0);
    // Unknown upstream names are a plain 404 page.
    let unknown = flow
        .local
        .get(&fed.local.url("/upstream/nope/callback?state=x&code=y"))
        .await;
    assert_eq!(unknown.status, 404);
}
fed_test!(
    bad_state,
    AccountLinking::SubjectOnly,
    bad_replayed_or_foreign_state_is_refused
);

async fn upstream_error_is_shown_cleanly_and_password_sign_in_remains(fed: Fed) {
    let flow = begin(&fed).await;
    let to_upstream = press_button(&fed, &flow).await;
    let state = to_upstream.location_query()["state"].clone();
    // What the upstream sends when the user refuses consent (RFC 6749 §4.1.2.1).
    let mut url = url::Url::parse(&fed.local.url("/upstream/corp/callback")).unwrap();
    url.query_pairs_mut()
        .append_pair("error", "access_denied")
        .append_pair(
            "error_description",
            "<script>upstream-internal-detail</script>",
        )
        .append_pair("state", &state);
    let page = flow.local.get(url.as_str()).await;
    assert_failed_page(&page, 400, &["upstream-internal-detail", "<script>"]);
    assert!(page.body.contains("Back to the sign-in page"));
    assert_eq!(logins(&fed, "upstream_error").await, 1.0);
    let trail = fed.local.audit_records("event=federated_login", 1).await;
    assert_eq!(trail[0]["detail"], "corp: upstream_error");
    assert!(
        !trail[0].to_string().contains("upstream-internal-detail"),
        "the upstream's description is not kept"
    );
    // The parked request is still open: the user can sign in with a password instead.
    let bob = fed.local.user().await;
    let done = flow
        .local
        .submit(&fed.local, &flow.login, &bob, PASSWORD)
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.location_query().contains_key("code"));
}
fed_test!(
    upstream_error,
    AccountLinking::SubjectOnly,
    upstream_error_is_shown_cleanly_and_password_sign_in_remains
);

async fn id_token_with_another_nonce_is_refused(fed: Fed) {
    let alice = fed.upstream.user().await;
    let flow = begin(&fed).await;
    let to_upstream = press_button(&fed, &flow).await;
    // The upstream is asked for a different nonce than the one stored for this sign-in, so it
    // issues a genuine, well-signed ID token that was not minted for this sign-in.
    let mut url = url::Url::parse(to_upstream.location.as_deref().unwrap()).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "nonce" {
                format!("{v}x")
            } else {
                v.to_string()
            };
            (k.to_string(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let callback = sign_in_upstream(&fed, &flow, url.as_str(), &alice).await;
    refused_at_callback(&flow, &callback, 502, &[&fed.upstream_secret]).await;
    assert_eq!(logins(&fed, "invalid_id_token").await, 1.0);
}
fed_test!(
    wrong_nonce,
    AccountLinking::SubjectOnly,
    id_token_with_another_nonce_is_refused
);

async fn a_code_replayed_at_the_upstream_fails_the_exchange(fed: Fed) {
    // A callback whose code was already redeemed: the exchange fails and nothing leaks.
    let alice = fed.upstream.user().await;
    let (flow, callback) = to_callback(&fed, &alice).await;
    let ok = flow.local.get(&callback).await;
    assert_eq!(ok.status, 303);
    // Start again and pair the new, valid state with the spent code.
    let flow2 = begin(&fed).await;
    let again = press_button(&fed, &flow2).await;
    let state = again.location_query()["state"].clone();
    let code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let mut url = url::Url::parse(&fed.local.url("/upstream/corp/callback")).unwrap();
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &state);
    let page = flow2.local.get(url.as_str()).await;
    assert_failed_page(&page, 502, &[&code, &fed.upstream_secret]);
    assert_eq!(logins(&fed, "exchange_failed").await, 1.0);
}
fed_test!(
    replayed_code,
    AccountLinking::SubjectOnly,
    a_code_replayed_at_the_upstream_fails_the_exchange
);

async fn upstream_down_leaves_password_sign_in_working(fed: Fed) {
    let flow = begin(&fed).await;
    let request = flow.login.hidden("request").unwrap();
    let csrf = flow.login.hidden("csrf").unwrap();
    let page = flow
        .local
        .post(
            &fed.local.url("/upstream/corp/start"),
            &[("request", &request), ("csrf", &csrf)],
        )
        .await;
    assert_failed_page(&page, 502, &[]);
    assert!(page.body.contains("Back to the sign-in page"));
    // A start without the CSRF token is refused before anything else.
    let forged = flow
        .local
        .post(
            &fed.local.url("/upstream/corp/start"),
            &[("request", &request)],
        )
        .await;
    assert_eq!(forged.status, 403);
    // The sign-in page still renders and the password works on the same request.
    let again = flow
        .local
        .get(&fed.local.url(&format!("/login?request={request}")))
        .await;
    assert_eq!(again.status, 200);
    let bob = fed.local.user().await;
    let done = flow.local.submit(&fed.local, &again, &bob, PASSWORD).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.location_query().contains_key("code"));
    assert_eq!(logins(&fed, "discovery_failed").await, 1.0);
}

/// An address where nothing listens.
async fn dead_issuer() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/t")
}

mod upstream_down {
    use super::*;
    #[tokio::test]
    async fn memory() {
        let issuer = dead_issuer().await;
        run_fed(
            Backend::Memory,
            AccountLinking::SubjectOnly,
            Some(issuer),
            upstream_down_leaves_password_sign_in_working,
        )
        .await
    }
    #[tokio::test]
    async fn postgres() {
        let issuer = dead_issuer().await;
        run_fed(
            Backend::Postgres,
            AccountLinking::SubjectOnly,
            Some(issuer),
            upstream_down_leaves_password_sign_in_working,
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// An upstream behind a proxy that can alter its answers: the upstream publishes the proxy's
// address as its issuer, so the server under test and the browser only ever talk to the proxy.

/// What the proxy does to the upstream's answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tamper {
    /// Nothing.
    Pass,
    /// Rewrites the ID token's payload (another email) and keeps the signature.
    IdTokenPayload,
    /// Answers the next JWKS request with an empty key set (as before a key rotation).
    HideKeysOnce,
}

#[derive(Clone)]
struct Proxy {
    target: String,
    http: reqwest::Client,
    tamper: std::sync::Arc<std::sync::Mutex<Tamper>>,
    jwks_requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

async fn forward(
    axum::extract::State(proxy): axum::extract::State<Proxy>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let tamper = *proxy.tamper.lock().unwrap();
    if path.ends_with("/jwks") {
        proxy
            .jwks_requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if tamper == Tamper::HideKeysOnce {
            *proxy.tamper.lock().unwrap() = Tamper::Pass;
            return axum::Json(serde_json::json!({"keys": []})).into_response();
        }
    }
    let mut out = proxy.http.request(
        req.method().clone(),
        format!("http://{}{path}", proxy.target),
    );
    for (name, value) in req.headers() {
        if name != "host" && name != "content-length" {
            out = out.header(name, value);
        }
    }
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap();
    let resp = out.body(body).send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let mut body = resp.bytes().await.unwrap().to_vec();
    if tamper == Tamper::IdTokenPayload && path.ends_with("/token") && status == 200 {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut json: Value = serde_json::from_slice(&body).unwrap();
        let jwt = json["id_token"].as_str().unwrap().to_string();
        let parts: Vec<&str> = jwt.split('.').collect();
        let mut claims = payload(&jwt);
        claims["email"] = "mallory@example.com".into();
        let forged = b64.encode(serde_json::to_vec(&claims).unwrap());
        json["id_token"] = format!("{}.{forged}.{}", parts[0], parts[2]).into();
        body = serde_json::to_vec(&json).unwrap();
    }
    let mut r = (status, body).into_response();
    r.headers_mut().clear();
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" {
            r.headers_mut().append(name, value.clone());
        }
    }
    r
}

/// Runs `test` with the upstream behind a proxy set to `tamper`.
async fn run_proxied<F, Fut>(backend: Backend, tamper: Tamper, test: F)
where
    F: FnOnce(Fed, Proxy) -> Fut,
    Fut: Future<Output = ()>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = listener.local_addr().unwrap();
    let upstream = common::start_memory_as(format!("http://{front}/t")).await;
    let proxy = Proxy {
        target: upstream.state.config.public_addr.to_string(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        tamper: std::sync::Arc::new(std::sync::Mutex::new(tamper)),
        jwks_requests: Default::default(),
    };
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(proxy.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    run_fed_with(
        upstream,
        backend,
        AccountLinking::SubjectOnly,
        None,
        |fed| test(fed, proxy),
    )
    .await;
    task.abort();
}

async fn tampered_id_token_is_refused(fed: Fed, _proxy: Proxy) {
    let alice = fed.upstream.user().await;
    let (flow, callback) = to_callback(&fed, &alice).await;
    refused_at_callback(&flow, &callback, 502, &["mallory", &fed.upstream_secret]).await;
    assert_eq!(logins(&fed, "invalid_id_token").await, 1.0);
    assert!(
        admin_user(&fed.local, &format!("corp:{alice}"))
            .await
            .is_none(),
        "no user was created"
    );
}

async fn unknown_signing_key_fetches_the_jwks_again(fed: Fed, proxy: Proxy) {
    let alice = fed.upstream.user().await;
    // Discovery sees no keys; the ID token then names a key that is not known yet.
    let claims = federated_id_token(&fed, &alice).await;
    assert_eq!(claims["amr"], serde_json::json!(["fed"]));
    assert_eq!(
        proxy
            .jwks_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        2,
        "fetched at discovery and once more for the unknown key"
    );
}

mod tampered_id_token {
    use super::*;
    #[tokio::test]
    async fn memory() {
        run_proxied(
            Backend::Memory,
            Tamper::IdTokenPayload,
            tampered_id_token_is_refused,
        )
        .await
    }
    #[tokio::test]
    async fn postgres() {
        run_proxied(
            Backend::Postgres,
            Tamper::IdTokenPayload,
            tampered_id_token_is_refused,
        )
        .await
    }
}

mod jwks_refresh {
    use super::*;
    #[tokio::test]
    async fn memory() {
        run_proxied(
            Backend::Memory,
            Tamper::HideKeysOnce,
            unknown_signing_key_fetches_the_jwks_again,
        )
        .await
    }
    #[tokio::test]
    async fn postgres() {
        run_proxied(
            Backend::Postgres,
            Tamper::HideKeysOnce,
            unknown_signing_key_fetches_the_jwks_again,
        )
        .await
    }
}

/// An upstream that accepts connections and never answers.
async fn hanging_issuer() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (format!("http://{addr}/t"), task)
}

async fn hanging_upstream_fails_within_the_deadline(fed: Fed) {
    let flow = begin(&fed).await;
    let request = flow.login.hidden("request").unwrap();
    let csrf = flow.login.hidden("csrf").unwrap();
    let started = std::time::Instant::now();
    let page = flow
        .local
        .post(
            &fed.local.url("/upstream/corp/start"),
            &[("request", &request), ("csrf", &csrf)],
        )
        .await;
    assert_failed_page(&page, 502, &[]);
    assert!(
        started.elapsed() < palisade_auth_server::REQUEST_DEADLINE,
        "answered by the upstream timeout, not the request deadline: {:?}",
        started.elapsed()
    );
}

mod upstream_hanging {
    use super::*;
    #[tokio::test]
    async fn memory() {
        let (issuer, task) = hanging_issuer().await;
        run_fed(
            Backend::Memory,
            AccountLinking::SubjectOnly,
            Some(issuer),
            hanging_upstream_fails_within_the_deadline,
        )
        .await;
        task.abort();
    }
}
