//! Malformed input gets the documented client error, never a 5xx or an undocumented answer.
//! - A NUL character in any received value: PostgreSQL text cannot hold NUL, so before these
//!   checks such a value reached a query, failed it, and the request was answered 503
//!   `temporarily_unavailable` (and logged as a storage outage).
//! - An admin path that is not UTF-8 got axum's plain-text 400 instead of the RFC error body.
//!
//! Runs on the in-memory store and on PostgreSQL (`PALISADE_TEST_DATABASE_URL`).

mod common;

use common::{Srv, REDIRECT};

async fn status_and_error(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    (status, body["error"].as_str().unwrap_or("").to_string())
}

async fn nul_values_are_refused_not_outages(srv: Srv) {
    let client = srv.confidential().await;
    let secret = client.secret.clone().unwrap();
    let form = |pairs: &[(&str, &str)]| {
        srv.http
            .post(srv.url("/token"))
            .form(&pairs.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>())
    };
    // client_secret_post with a NUL in the client id: the client is looked up in storage.
    let resp = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "a\0b"),
        ("client_secret", "x"),
    ])
    .send()
    .await
    .unwrap();
    assert_eq!(
        status_and_error(resp).await,
        (400, "invalid_request".into())
    );
    for path in ["/introspect", "/revoke"] {
        let resp = srv
            .http
            .post(srv.url(path))
            .basic_auth(&client.id, Some(&secret))
            .form(&[("token", "t\0")])
            .send()
            .await
            .unwrap();
        assert_eq!(
            status_and_error(resp).await,
            (400, "invalid_request".into()),
            "{path}"
        );
    }

    // The browser endpoints answer with a page (400), never the outage page (503).
    for url in [
        srv.url("/authorize?response_type=code&client_id=x%00&redirect_uri=x"),
        // A registered client and redirect URI: `state` would be stored with the request.
        format!(
            "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s%00",
            srv.url("/authorize"),
            client.id,
            url_encode(REDIRECT)
        ),
        srv.url("/login?request=r%00"),
        srv.url("/end_session?client_id=c%00"),
    ] {
        let resp = srv.http.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{url}");
    }
    let resp = srv
        .http
        .post(srv.url("/login"))
        .form(&[
            ("request", "r"),
            ("csrf", "c"),
            ("username", "u\0"),
            ("password", "p"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "POST /login");

    // Admin API: a NUL in a path cannot name anything; in a body it is invalid.
    let admin = |method: reqwest::Method, path: &str| {
        srv.http
            .request(method, format!("{}{path}", srv.admin))
            .bearer_auth(&srv.admin_token)
    };
    for path in ["/admin/clients/a%00b", "/admin/users/a%00b"] {
        for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
            let resp = admin(method.clone(), path).send().await.unwrap();
            assert_eq!(
                status_and_error(resp).await,
                (404, "not_found".into()),
                "{method} {path}"
            );
        }
    }
    let resp = admin(reqwest::Method::PUT, "/admin/users/a%00b")
        .json(&serde_json::json!({"password": "long enough"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_and_error(resp).await,
        (400, "invalid_request".into())
    );
    let resp = admin(reqwest::Method::PUT, "/admin/users/alice")
        .json(&serde_json::json!({"password": "long enough", "name": "A\u{0}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_and_error(resp).await,
        (400, "invalid_request".into())
    );
    let resp = admin(reqwest::Method::PUT, "/admin/clients/app")
        .json(&serde_json::json!({
            "clientId": "app",
            "redirectUris": ["https://app.example/cb\u{0}"],
            "grantTypes": ["authorization_code"],
            "tokenEndpointAuthMethod": "none",
            "public": true,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_and_error(resp).await,
        (400, "invalid_request".into())
    );

    // And the store still works: nothing above was an outage.
    let resp = srv
        .http
        .post(srv.url("/token"))
        .basic_auth(&client.id, Some(&secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "unknown"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_error(resp).await, (400, "invalid_grant".into()));
}

async fn admin_paths_that_are_not_utf8_get_the_rfc_error(srv: Srv) {
    for path in ["/admin/clients/%FF", "/admin/users/a%FEb"] {
        for method in [
            reqwest::Method::GET,
            reqwest::Method::DELETE,
            reqwest::Method::PUT,
        ] {
            let resp = srv
                .http
                .request(method.clone(), format!("{}{path}", srv.admin))
                .bearer_auth(&srv.admin_token)
                .json(&serde_json::json!({"password": "long enough"}))
                .send()
                .await
                .unwrap();
            assert_eq!(
                resp.headers()["content-type"],
                "application/json",
                "{method} {path}"
            );
            assert_eq!(
                status_and_error(resp).await,
                (400, "invalid_request".into()),
                "{method} {path}"
            );
        }
    }
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

on_both_stores!(nul, common::ttls(), nul_values_are_refused_not_outages);
on_both_stores!(
    non_utf8_admin_paths,
    common::ttls(),
    admin_paths_that_are_not_utf8_get_the_rfc_error
);
