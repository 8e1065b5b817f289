//! The user-facing OIDC flows, driven by the `openidconnect` relying-party library and a small
//! browser: discovery, authorization code + PKCE, ID token validation, userinfo, refresh with
//! rotation, and the ways each can be misused. Every test runs on the in-memory store and on
//! PostgreSQL (`PALISADE_TEST_DATABASE_URL`; skipped when unset unless
//! `PALISADE_REQUIRE_SERVICES=1`).

mod common;

use common::{
    authorize_url, tokens_for, Browser, Srv, TestClient, PASSWORD, POST_LOGOUT, REDIRECT,
};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use palisade_wire::registration::TokenEndpointAuthMethod;

fn rp_http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn discover(srv: &Srv) -> CoreProviderMetadata {
    CoreProviderMetadata::discover_async(IssuerUrl::new(srv.issuer.clone()).unwrap(), &rp_http())
        .await
        .expect("discovery and JWKS satisfy openidconnect")
}

// ---------------------------------------------------------------------------------------------

async fn discovery_satisfies_a_strict_rp(srv: Srv) {
    let meta = discover(&srv).await;
    assert_eq!(meta.issuer().as_str(), srv.issuer);
    let doc: serde_json::Value = srv
        .http
        .get(srv.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
        ("end_session_endpoint", "/end_session"),
        ("introspection_endpoint", "/introspect"),
        ("revocation_endpoint", "/revoke"),
    ] {
        assert_eq!(doc[field], srv.url(path), "{field}");
    }
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert!(doc["scopes_supported"]
        .as_array()
        .unwrap()
        .contains(&"openid".into()));
    assert!(doc["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&"refresh_token".into()));
    assert!(doc["claims_supported"]
        .as_array()
        .unwrap()
        .contains(&"email".into()));
}
on_both_stores!(discovery, common::ttls(), discovery_satisfies_a_strict_rp);

// ---------------------------------------------------------------------------------------------

async fn code_flow_with_pkce_userinfo_and_refresh(srv: Srv) {
    let client = srv.confidential().await;
    let username = srv.user().await;
    let rp = CoreClient::from_provider_metadata(
        discover(&srv).await,
        ClientId::new(client.id.clone()),
        Some(ClientSecret::new(client.secret.clone().unwrap())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    let browser = Browser::default();
    let issued_before = srv
        .counter("token_issued_total{grant_type=\"authorization_code\"}")
        .await;
    let success_before = srv.counter("login_success_total").await;
    let callback = browser.sign_in(&srv, auth_url.as_str(), &username).await;
    assert_eq!(&callback["state"], csrf.secret());
    assert_eq!(callback["iss"], srv.issuer, "RFC 9207 iss");
    assert!(callback["code"].len() >= 43, "high-entropy code");
    assert_eq!(
        srv.counter("login_success_total").await,
        success_before + 1.0
    );

    let http = rp_http();
    let tokens = rp
        .exchange_code(AuthorizationCode::new(callback["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    assert_eq!(
        srv.counter("token_issued_total{grant_type=\"authorization_code\"}")
            .await,
        issued_before + 1.0
    );
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = rp.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("ID token verifies with the nonce");
    assert!(
        id_token
            .claims(&verifier, &Nonce::new("other".into()))
            .is_err(),
        "a different nonce is refused"
    );
    let expected = claims.access_token_hash().expect("at_hash");
    let actual = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(&actual, expected, "at_hash matches the access token");
    assert!(claims.auth_time().is_some());
    assert_eq!(
        claims.email().unwrap().as_str(),
        format!("{username}@example.com")
    );
    let raw: serde_json::Value = {
        use base64::Engine;
        let payload = id_token.to_string().split('.').nth(1).unwrap().to_string();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        raw["amr"],
        serde_json::json!(["pwd"]),
        "signed in by password"
    );
    assert_eq!(raw["acr"], "urn:palisade:acr:1fa", "one factor");
    assert!(
        raw["sid"].as_str().is_some_and(|s| !s.is_empty()),
        "sid claim"
    );

    let info: CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject(), claims.subject());
    assert_eq!(
        info.email().unwrap().as_str(),
        format!("{username}@example.com")
    );
    assert_eq!(info.email_verified(), Some(true));
    assert_eq!(info.preferred_username().unwrap().as_str(), username);

    // Refresh with narrowing: the new access token carries only openid.
    let first_refresh = tokens.refresh_token().expect("a refresh token").clone();
    let refreshed = rp
        .exchange_refresh_token(&first_refresh)
        .unwrap()
        .add_scope(Scope::new("openid".into()))
        .request_async(&http)
        .await
        .expect("refresh");
    let second_refresh = refreshed.refresh_token().expect("rotated").clone();
    assert_ne!(second_refresh.secret(), first_refresh.secret());
    let narrowed = rp
        .user_info(refreshed.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await;
    let narrowed: CoreUserInfoClaims = narrowed.expect("userinfo with openid only");
    assert!(narrowed.email().is_none(), "email scope was narrowed away");
    // The rotated token still holds the original scope.
    let widened = rp
        .exchange_refresh_token(&second_refresh)
        .unwrap()
        .request_async(&http)
        .await
        .expect("second refresh");
    assert!(widened
        .scopes()
        .unwrap()
        .iter()
        .any(|s| s.as_str() == "email"));
}
on_both_stores!(
    code_flow,
    common::ttls(),
    code_flow_with_pkce_userinfo_and_refresh
);

// ---------------------------------------------------------------------------------------------

/// Exchanges a code (with the test redirect URI and, if given, a PKCE verifier).
async fn exchange(
    srv: &Srv,
    client: &TestClient,
    code: &str,
    verifier: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    srv.token(client, &form).await
}

async fn refresh(srv: &Srv, client: &TestClient, token: &str) -> (u16, serde_json::Value) {
    srv.token(
        client,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

async fn reused_refresh_token_revokes_family(srv: Srv) {
    let client = srv.confidential().await;
    let user = srv.user().await;
    let t = tokens_for(&srv, &client, &user).await;
    let first = t["refresh_token"].as_str().unwrap().to_string();
    let (status, rotated) = refresh(&srv, &client, &first).await;
    assert_eq!(status, 200);
    let second = rotated["refresh_token"].as_str().unwrap().to_string();
    let before = srv.counter("refresh_reuse_detected_total").await;

    let (status, body) = refresh(&srv, &client, &first).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        srv.counter("refresh_reuse_detected_total").await,
        before + 1.0
    );
    let (status, body) = refresh(&srv, &client, &second).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "the sibling newer token is revoked with its family"
    );
    // Another family of the same user is untouched.
    let other = tokens_for(&srv, &client, &user).await;
    let (status, _) = refresh(&srv, &client, other["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
}
on_both_stores!(
    refresh_reuse,
    common::ttls(),
    reused_refresh_token_revokes_family
);

// ---------------------------------------------------------------------------------------------

async fn reused_code_is_refused_and_revokes_its_tokens(srv: Srv) {
    let client = srv.confidential().await;
    let user = srv.user().await;
    let (url, verifier) = authorize_url(&srv, &client.id, &[]);
    let cb = Browser::default().sign_in(&srv, &url, &user).await;
    let (status, first) = exchange(&srv, &client, &cb["code"], Some(&verifier)).await;
    assert_eq!(status, 200);
    let access = first["access_token"].as_str().unwrap();
    assert!(srv.active(&client, access).await);
    let (status, again) = exchange(&srv, &client, &cb["code"], Some(&verifier)).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        !srv.active(&client, access).await,
        "the first access token is revoked"
    );
    let (status, _) = refresh(&srv, &client, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400, "the first refresh token is revoked");
}
on_both_stores!(
    code_reuse,
    common::ttls(),
    reused_code_is_refused_and_revokes_its_tokens
);

// ---------------------------------------------------------------------------------------------

async fn pkce_is_required_and_checked(srv: Srv) {
    let public = srv.client(true, TokenEndpointAuthMethod::None).await;
    let user = srv.user().await;
    let browser = Browser::default();
    for (extra, why) in [
        (
            vec![("code_challenge", ""), ("code_challenge_method", "")],
            "missing",
        ),
        (vec![("code_challenge_method", "plain")], "plain"),
        (
            vec![("code_challenge_method", "")],
            "absent method means plain",
        ),
    ] {
        let (url, _) = authorize_url(&srv, &public.id, &extra);
        let page = browser.get(&url).await;
        assert_eq!(page.status, 303, "{why}");
        let q = page.location_query();
        assert!(page.location.as_deref().unwrap().starts_with(REDIRECT));
        assert_eq!(q["error"], "invalid_request", "{why}");
        assert_eq!(q["state"], "st-1");
        assert_eq!(q["iss"], srv.issuer);
    }
    let (url, verifier) = authorize_url(&srv, &public.id, &[]);
    let cb = Browser::default().sign_in(&srv, &url, &user).await;
    let wrong = "x".repeat(43);
    let (status, body) = exchange(&srv, &public, &cb["code"], Some(&wrong)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // The failed attempt used the code up: a second try, even with the right verifier, fails.
    let (status, _) = exchange(&srv, &public, &cb["code"], Some(&verifier)).await;
    assert_eq!(status, 400);

    let (url, _) = authorize_url(&srv, &public.id, &[]);
    let code = Browser::default().sign_in(&srv, &url, &user).await["code"].clone();
    let (status, body) = srv
        .token(
            &public,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "missing verifier"
    );

    let (url, verifier) = authorize_url(&srv, &public.id, &[]);
    let code = Browser::default().sign_in(&srv, &url, &user).await["code"].clone();
    let (status, body) = srv.exchange_code(&public, &code, &verifier).await;
    assert_eq!(
        status, 200,
        "the right verifier works for a public client: {body}"
    );
    assert!(body["id_token"].is_string());
}
on_both_stores!(pkce, common::ttls(), pkce_is_required_and_checked);

// ---------------------------------------------------------------------------------------------

async fn wrong_redirect_uri_is_never_redirected_to(srv: Srv) {
    let client = srv.confidential().await;
    let user = srv.user().await;
    let browser = Browser::default();
    for (extra, why) in [
        (
            vec![("redirect_uri", "https://evil.example/callback")],
            "unregistered",
        ),
        (
            vec![("redirect_uri", "http://127.0.0.1:9/callback/")],
            "trailing slash",
        ),
        (vec![("redirect_uri", "")], "missing"),
        (vec![("client_id", "no-such-client")], "unknown client"),
    ] {
        let (url, _) = authorize_url(&srv, &client.id, &extra);
        let page = browser.get(&url).await;
        assert_eq!(page.status, 400, "{why}");
        assert!(page.location.is_none(), "{why}: never redirected");
        assert!(page.body.contains("<html"), "{why}: an HTML page");
    }
    // The token request must repeat the exact redirect URI.
    let (url, verifier) = authorize_url(&srv, &client.id, &[]);
    let code = browser.sign_in(&srv, &url, &user).await["code"].clone();
    let (status, body) = srv
        .token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:9/other"),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // Unknown scopes go back to the (valid) redirect URI.
    let (url, _) = authorize_url(&srv, &client.id, &[("scope", "openid admin")]);
    let page = browser.get(&url).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location_query()["error"], "invalid_scope");
}
on_both_stores!(
    redirect_uri,
    common::ttls(),
    wrong_redirect_uri_is_never_redirected_to
);

// ---------------------------------------------------------------------------------------------

async fn wrong_client_secret_is_401_with_www_authenticate(srv: Srv) {
    let client = srv.confidential().await;
    let user = srv.user().await;
    let (url, verifier) = authorize_url(&srv, &client.id, &[]);
    let code = Browser::default().sign_in(&srv, &url, &user).await["code"].clone();
    let resp = srv
        .http
        .post(srv.url("/token"))
        .basic_auth(&client.id, Some("wrong"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_client"
    );
    // Client authentication comes first: the code was not consumed.
    let (status, _) = srv.exchange_code(&client, &code, &verifier).await;
    assert_eq!(status, 200);
}
on_both_stores!(
    client_secret,
    common::ttls(),
    wrong_client_secret_is_401_with_www_authenticate
);

// ---------------------------------------------------------------------------------------------

fn zero_ttls() -> palisade_auth_server::config::Ttls {
    palisade_auth_server::config::Ttls {
        authorization_code: 0,
        refresh: 0,
        ..common::ttls()
    }
}

async fn expired_code_and_refresh_token_are_refused(srv: Srv) {
    let client = srv.confidential().await;
    let user = srv.user().await;
    let (url, verifier) = authorize_url(&srv, &client.id, &[]);
    let code = Browser::default().sign_in(&srv, &url, &user).await["code"].clone();
    let (status, body) = srv.exchange_code(&client, &code, &verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("expired"));
}
on_both_stores!(
    expired_code,
    zero_ttls(),
    expired_code_and_refresh_token_are_refused
);

fn zero_refresh_ttl() -> palisade_auth_server::config::Ttls {
    palisade_auth_server::config::Ttls {
        refresh: 0,
        ..common::ttls()
    }
}

async fn expired_refresh_token_is_refused(srv: Srv) {
    let client = srv.confidential().await;
    let user = srv.user().await;
    let t = tokens_for(&srv, &client, &user).await;
    let (status, body) = refresh(&srv, &client, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("expired"));
}
on_both_stores!(
    expired_refresh,
    zero_refresh_ttl(),
    expired_refresh_token_is_refused
);

// ---------------------------------------------------------------------------------------------

async fn revoked_tokens_are_inactive_everywhere(srv: Srv) {
    let client = srv.confidential().await;
    let user = srv.user().await;
    let t = tokens_for(&srv, &client, &user).await;
    let access = t["access_token"].as_str().unwrap();
    let userinfo = |token: String| {
        let srv = &srv;
        async move {
            srv.http
                .get(srv.url("/userinfo"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(userinfo(access.into()).await.status(), 200);
    let post = srv
        .http
        .post(srv.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 200, "userinfo answers POST too");
    let claims: serde_json::Value = post.json().await.unwrap();
    assert_eq!(claims["preferred_username"], user.as_str());
    // A POST may carry the token in its form body instead (RFC 6750 §2.2), never in both.
    let in_body = srv
        .http
        .post(srv.url("/userinfo"))
        .form(&[("access_token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(in_body.status(), 200, "access_token in the form body");
    let in_body: serde_json::Value = in_body.json().await.unwrap();
    assert_eq!(in_body["sub"], claims["sub"]);
    let both = srv
        .http
        .post(srv.url("/userinfo"))
        .bearer_auth(access)
        .form(&[("access_token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 400);
    let both: serde_json::Value = both.json().await.unwrap();
    assert_eq!(both["error"], "invalid_request");
    let nothing = srv
        .http
        .post(srv.url("/userinfo"))
        .form(&[("other", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(nothing.status(), 401);
    let revoke = |token: String| {
        let srv = &srv;
        let client = &client;
        async move {
            srv.http
                .post(srv.url("/revoke"))
                .basic_auth(&client.id, client.secret.clone())
                .form(&[("token", token)])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(revoke(access.into()).await, 200);
    assert!(
        !srv.active(&client, access).await,
        "revoked token introspects inactive"
    );
    let resp = userinfo(access.into()).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_eq!(userinfo("not-a-token".into()).await.status(), 401);
    // Without any token, the challenge names no error (RFC 6750 §3.1).
    let resp = srv.http.get(srv.url("/userinfo")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"palisade\""
    );
    // Revoking a refresh token revokes its whole grant: the refresh tokens and every access
    // token minted under it (RFC 7009 §2.1), here one from the code and one from a refresh.
    let t = tokens_for(&srv, &client, &user).await;
    let from_code = t["access_token"].as_str().unwrap().to_string();
    let (status, refreshed) = refresh(&srv, &client, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let from_refresh = refreshed["access_token"].as_str().unwrap().to_string();
    let refresh_token = refreshed["refresh_token"].as_str().unwrap();
    let other_grant = tokens_for(&srv, &client, &user).await;
    let other_access = other_grant["access_token"].as_str().unwrap();
    for token in [&from_code, &from_refresh] {
        assert!(srv.active(&client, token).await);
    }
    assert_eq!(revoke(refresh_token.into()).await, 200);
    let (status, _) = refresh(&srv, &client, refresh_token).await;
    assert_eq!(status, 400);
    for token in [&from_code, &from_refresh] {
        assert!(
            !srv.active(&client, token).await,
            "an access token of the revoked grant introspects inactive"
        );
        assert_eq!(userinfo(token.clone()).await.status(), 401);
    }
    assert!(
        srv.active(&client, other_access).await,
        "another grant of the same user is untouched"
    );
    assert_eq!(userinfo(other_access.into()).await.status(), 200);
}
on_both_stores!(
    revocation,
    common::ttls(),
    revoked_tokens_are_inactive_everywhere
);

// ---------------------------------------------------------------------------------------------

async fn malformed_and_oversized_inputs_are_invalid_request(srv: Srv) {
    let client = srv.confidential().await;
    let resp = srv
        .http
        .post(srv.url("/token"))
        .basic_auth(&client.id, client.secret.clone())
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"authorization_code"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let long = "a".repeat(20_000);
    for form in [
        vec![
            ("grant_type", "authorization_code"),
            ("code", long.as_str()),
        ],
        vec![
            ("grant_type", "authorization_code"),
            ("redirect_uri", REDIRECT),
        ],
        vec![("grant_type", "refresh_token")],
        vec![
            ("grant_type", "refresh_token"),
            ("grant_type", "authorization_code"),
        ],
    ] {
        let (status, body) = srv.token(&client, &form).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{form:?}"
        );
    }
    // A description quoting the caller's input holds only what RFC 6749 §5.2 allows.
    let (status, body) = srv
        .token(&client, &[("grant_type", "urn:\"quoted\"\\é")])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains("urn:?quoted???"), "{description}");
    assert!(
        description
            .chars()
            .all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\'),
        "{description}"
    );
    let browser = Browser::default();
    let state = "s".repeat(3000);
    let (url, _) = authorize_url(&srv, &client.id, &[("state", &state)]);
    assert_eq!(browser.get(&url).await.status, 400);
    let dup = format!("{}&state=again", authorize_url(&srv, &client.id, &[]).0);
    let page = browser.get(&dup).await;
    assert_eq!(
        (page.status, page.location.is_none()),
        (400, true),
        "repeated parameter"
    );
    assert_eq!(browser.get(&srv.url("/authorize?%zz")).await.status, 400);
    assert_eq!(browser.get(&srv.url("/login")).await.status, 400);
    assert_eq!(
        browser.get(&srv.url("/login?request=nope")).await.status,
        400
    );
    let (url, _) = authorize_url(&srv, &client.id, &[]);
    let page = browser.login_page(&url).await;
    let huge = "p".repeat(5000);
    let resp = browser.submit(&srv, &page, "someone", &huge).await;
    assert_eq!(resp.status, 400);
    let resp = srv
        .http
        .get(srv.url("/userinfo"))
        .header("authorization", "Bearer a.b.c")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}
on_both_stores!(
    malformed,
    common::ttls(),
    malformed_and_oversized_inputs_are_invalid_request
);

// ---------------------------------------------------------------------------------------------

async fn login_failures_disabled_users_and_csrf(srv: Srv) {
    let client = srv.confidential().await;
    let user = srv.user().await;
    let browser = Browser::default();
    let (url, _) = authorize_url(&srv, &client.id, &[]);
    let to_login = browser.get(&url).await;
    let raw = srv
        .http
        .get(to_login.location.clone().unwrap())
        .send()
        .await
        .unwrap();
    let csp = raw.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
    assert!(
        !csp.contains("form-action"),
        "the login POST must be able to redirect to the client"
    );
    let page = browser.login_page(&url).await;
    assert!(page.body.contains("<title>Sign in</title>"));
    assert!(page
        .body
        .contains("<form method=\"post\" action=\"/t/login\">"));

    let failures = srv.counter("login_failure_total").await;
    for (name, password) in [(user.as_str(), "wrong password"), ("nobody", PASSWORD)] {
        let resp = browser.submit(&srv, &page, name, password).await;
        assert_eq!(resp.status, 401);
        assert!(resp.location.is_none());
        assert!(resp
            .body
            .contains("<p class=\"error\" role=\"alert\">Incorrect username or password.</p>"));
        assert!(
            resp.body.contains("name=\"csrf\""),
            "the form is shown again"
        );
        assert!(!resp.sets_cookie("palisade_session"));
    }
    assert_eq!(srv.counter("login_failure_total").await, failures + 2.0);

    // CSRF: a missing or wrong token, or a missing cookie, is refused without a session.
    let request = page.hidden("request").unwrap();
    let csrf = page.hidden("csrf").unwrap();
    for (token, why) in [
        ("", "missing token"),
        ("forged-forged-forged-forged-forged-forged", "wrong token"),
    ] {
        let resp = browser
            .post(
                &srv.url("/login"),
                &[
                    ("request", &request),
                    ("csrf", token),
                    ("username", &user),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(resp.status, 403, "{why}");
        assert!(!resp.sets_cookie("palisade_session"), "{why}");
    }
    let cookieless = Browser::default();
    let resp = cookieless
        .post(
            &srv.url("/login"),
            &[
                ("request", &request),
                ("csrf", &csrf),
                ("username", &user),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        resp.status, 403,
        "a form from another browser (no CSRF cookie)"
    );

    // Disabled users cannot sign in, and the page says no more than for a wrong password.
    assert_eq!(
        srv.put_user(&user, serde_json::json!({"disabled": true}))
            .await,
        204
    );
    let resp = browser.submit(&srv, &page, &user, PASSWORD).await;
    assert_eq!(resp.status, 401);
    assert!(resp.body.contains("Incorrect username or password."));
    // Re-enabled (the password was kept by the update without one): sign-in works.
    assert_eq!(
        srv.put_user(&user, serde_json::json!({"disabled": false}))
            .await,
        204
    );
    let resp = browser.submit(&srv, &page, &user, PASSWORD).await;
    assert_eq!(resp.status, 303, "{}", resp.body);
    assert!(resp.sets_cookie("palisade_session"));
    let cookie = resp
        .set_cookies
        .iter()
        .find(|c| c.starts_with("palisade_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(cookie.contains("Path=/t"), "{cookie}");
    assert!(!cookie.contains("Secure"), "http issuer");
    // The same login request cannot be completed twice.
    let again = browser.submit(&srv, &page, &user, PASSWORD).await;
    assert_eq!(again.status, 400);
}
on_both_stores!(
    login,
    common::ttls(),
    login_failures_disabled_users_and_csrf
);

// ---------------------------------------------------------------------------------------------

async fn sessions_prompt_and_logout(srv: Srv) {
    let client = srv.confidential().await;
    let user = srv.user().await;
    let browser = Browser::default();

    let (url, _) = authorize_url(&srv, &client.id, &[("prompt", "none")]);
    let page = browser.get(&url).await;
    assert_eq!(page.location_query()["error"], "login_required");
    assert_eq!(page.location_query()["iss"], srv.issuer);

    let (url, _) = authorize_url(&srv, &client.id, &[]);
    browser.sign_in(&srv, &url, &user).await;
    // With the session cookie, the code comes at once, even with prompt=none.
    let (url, _) = authorize_url(&srv, &client.id, &[("prompt", "none"), ("state", "st-2")]);
    let page = browser.get(&url).await;
    assert_eq!(page.status, 303);
    let q = page.location_query();
    assert!(q.contains_key("code"), "{q:?}");
    assert_eq!(q["state"], "st-2");
    // The same request as a POST form (OpenID Connect Core §3.1.2.1).
    let (url, _) = authorize_url(&srv, &client.id, &[("state", "st-3")]);
    let query: Vec<(String, String)> = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let form: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let page = browser.post(&srv.url("/authorize"), &form).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location_query()["state"], "st-3");
    assert!(page.location_query().contains_key("code"));
    // prompt=login forces the login page.
    let (url, _) = authorize_url(&srv, &client.id, &[("prompt", "login")]);
    assert!(browser
        .get(&url)
        .await
        .location
        .unwrap()
        .contains("/t/login?request="));
    // Disabling the user ends what the session can do.
    assert_eq!(
        srv.put_user(&user, serde_json::json!({"disabled": true}))
            .await,
        204
    );
    let (url, _) = authorize_url(&srv, &client.id, &[("prompt", "none")]);
    assert_eq!(
        browser.get(&url).await.location_query()["error"],
        "login_required"
    );
    assert_eq!(
        srv.put_user(&user, serde_json::json!({"disabled": false}))
            .await,
        204
    );

    // RP-initiated logout with an ID token hint and a registered post-logout URI.
    let (url, verifier2) = authorize_url(&srv, &client.id, &[]);
    let code = browser.get(&url).await.location_query()["code"].clone();
    let (status, t) = srv.exchange_code(&client, &code, &verifier2).await;
    assert_eq!(status, 200);
    let hint = t["id_token"].as_str().unwrap();
    // id_token_hint (OpenID Connect Core §3.1.2.1): the session's own user gets a code at
    // once; a hint naming another user makes the session not count; a hint this issuer did
    // not sign is invalid_request.
    let (url, _) = authorize_url(
        &srv,
        &client.id,
        &[("prompt", "none"), ("id_token_hint", hint)],
    );
    assert!(browser
        .get(&url)
        .await
        .location_query()
        .contains_key("code"));
    let other = srv.user().await;
    let other_tokens = tokens_for(&srv, &client, &other).await;
    let (url, _) = authorize_url(
        &srv,
        &client.id,
        &[
            ("prompt", "none"),
            ("id_token_hint", other_tokens["id_token"].as_str().unwrap()),
        ],
    );
    assert_eq!(
        browser.get(&url).await.location_query()["error"],
        "login_required",
        "a session of another user than the hint's"
    );
    let (url, _) = authorize_url(
        &srv,
        &client.id,
        &[("prompt", "none"), ("id_token_hint", "e30.e30.c2ln")],
    );
    assert_eq!(
        browser.get(&url).await.location_query()["error"],
        "invalid_request"
    );
    // max_age=0 asks for a sign-in now, like prompt=login.
    let (url, _) = authorize_url(&srv, &client.id, &[("prompt", "none"), ("max_age", "0")]);
    assert_eq!(
        browser.get(&url).await.location_query()["error"],
        "login_required"
    );
    let mut logout = url::Url::parse(&srv.url("/end_session")).unwrap();
    logout
        .query_pairs_mut()
        .append_pair("id_token_hint", hint)
        .append_pair("post_logout_redirect_uri", "https://evil.example/")
        .append_pair("state", "bye-1");
    let refused = browser.get(logout.as_str()).await;
    assert_eq!((refused.status, refused.location.is_none()), (400, true));
    let mut logout = url::Url::parse(&srv.url("/end_session")).unwrap();
    logout
        .query_pairs_mut()
        .append_pair("id_token_hint", hint)
        .append_pair("post_logout_redirect_uri", POST_LOGOUT)
        .append_pair("state", "bye-1");
    let out = browser.get(logout.as_str()).await;
    assert_eq!(out.status, 303);
    assert!(out.location.as_deref().unwrap().starts_with(POST_LOGOUT));
    assert_eq!(out.location_query()["state"], "bye-1");
    let (url, _) = authorize_url(&srv, &client.id, &[("prompt", "none")]);
    assert_eq!(
        browser.get(&url).await.location_query()["error"],
        "login_required",
        "the session is gone"
    );
    // Without a redirect URI, a signed-out page.
    let page = browser.get(&srv.url("/end_session")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Signed out"));
}
on_both_stores!(sessions, common::ttls(), sessions_prompt_and_logout);

// ---------------------------------------------------------------------------------------------

async fn admin_user_api_is_idempotent_and_hides_hashes(srv: Srv) {
    let get = |name: &str| {
        let srv = &srv;
        let url = format!("{}/admin/users/{name}", srv.admin);
        async move {
            srv.http
                .get(url)
                .bearer_auth(&srv.admin_token)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        srv.put_user("alice", serde_json::json!({"email": "a@example.com"}))
            .await,
        400,
        "password required on create"
    );
    assert_eq!(
        srv.put_user("alice", serde_json::json!({"password": "s3cret-enough"}))
            .await,
        201
    );
    assert_eq!(
        srv.put_user("alice", serde_json::json!({"password": "s3cret-enough"}))
            .await,
        204
    );
    assert_eq!(
        srv.put_user("alice", serde_json::json!({"password": "x", "bogus": 1}))
            .await,
        400
    );
    let resp = get("alice").await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        !text.contains("argon2") && !text.to_lowercase().contains("hash\":\"$"),
        "{text}"
    );
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["username"], "alice");
    let sub = body["sub"].clone();
    assert_eq!(
        srv.put_user("alice", serde_json::json!({"name": "Alice"}))
            .await,
        204
    );
    let body: serde_json::Value = get("alice").await.json().await.unwrap();
    assert_eq!(
        (body["sub"].clone(), body["name"].clone()),
        (sub, "Alice".into()),
        "sub is stable"
    );
    assert_eq!(
        body["hasPassword"], true,
        "an update without a password keeps it"
    );
    let unauth = srv
        .http
        .get(format!("{}/admin/users/alice", srv.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
    let del = srv
        .http
        .delete(format!("{}/admin/users/alice", srv.admin))
        .bearer_auth(&srv.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    assert_eq!(get("alice").await.status(), 404);
}
on_both_stores!(
    admin_users,
    common::ttls(),
    admin_user_api_is_idempotent_and_hides_hashes
);

// ---------------------------------------------------------------------------------------------

async fn client_secret_post_clients_work_too(srv: Srv) {
    let client = srv
        .client(false, TokenEndpointAuthMethod::ClientSecretPost)
        .await;
    let user = srv.user().await;
    let (url, verifier) = authorize_url(&srv, &client.id, &[]);
    let code = Browser::default().sign_in(&srv, &url, &user).await["code"].clone();
    let secret = client.secret.clone().unwrap();
    let resp = srv
        .http
        .post(srv.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
            ("client_id", client.id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["id_token"].is_string() && body["refresh_token"].is_string());
}
on_both_stores!(
    secret_post,
    common::ttls(),
    client_secret_post_clients_work_too
);

// ---------------------------------------------------------------------------------------------

async fn concurrent_redemptions_succeed_exactly_once(srv: Srv) {
    let client = srv.confidential().await;
    let user = srv.user().await;
    let (url, verifier) = authorize_url(&srv, &client.id, &[]);
    let code = Browser::default().sign_in(&srv, &url, &user).await["code"].clone();
    let codes =
        futures::future::join_all((0..6).map(|_| exchange(&srv, &client, &code, Some(&verifier))))
            .await;
    let ok: Vec<_> = codes.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(ok.len(), 1, "{codes:?}");
    // The winner's tokens were revoked by the losers' replays (RFC 6749 §4.1.2).
    let access = ok[0].1["access_token"].as_str().unwrap();
    assert!(!srv.active(&client, access).await);

    let user2 = srv.user().await;
    let t = tokens_for(&srv, &client, &user2).await;
    let token = t["refresh_token"].as_str().unwrap().to_string();
    let refreshes = futures::future::join_all((0..6).map(|_| refresh(&srv, &client, &token))).await;
    assert_eq!(
        refreshes.iter().filter(|(s, _)| *s == 200).count(),
        1,
        "{refreshes:?}"
    );
}
on_both_stores!(
    concurrency,
    common::ttls(),
    concurrent_redemptions_succeed_exactly_once
);
