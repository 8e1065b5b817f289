//! The audit trail for a scripted session, on both stores: every sign-in (failed and not),
//! token issued, refresh reuse, registration change and key rotation becomes one record, in
//! the store (listed and filtered by the admin API) and in the log stream; none holds a
//! secret.

mod common;

use common::{authorize_url, Browser, Srv, TestClient, PASSWORD, REDIRECT};
use palisade_auth_server::keys::LoadedKeys;
use palisade_wire::keyset::{Algorithm, GeneratedKey, KeySet};
use palisade_wire::registration::{
    hash_client_secret, random_token, ClientRegistration, GrantType,
};
use serde_json::Value;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Log lines captured from this test's thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

async fn put_client(srv: &Srv, reg: &ClientRegistration) {
    let resp = srv
        .http
        .put(format!("{}/admin/clients/{}", srv.admin, reg.client_id))
        .bearer_auth(&srv.admin_token)
        .json(reg)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

async fn scripted_session(server: Srv) {
    let srv = &server;
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    // The test runtime has one thread: the server's tasks log through this subscriber too.
    let _guard = tracing::subscriber::set_default(subscriber);

    // A web client: created, registered again unchanged (a resync), then changed.
    let secret = random_token(32);
    let mut reg = ClientRegistration {
        client_id: format!("web-{}", random_token(6)),
        client_name: Some("Web".into()),
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: vec![],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: vec!["openid".into(), "profile".into(), "email".into()],
        token_endpoint_auth_method: Default::default(),
        public: false,
        client_secret_hash: Some(hash_client_secret(&secret)),
    };
    put_client(srv, &reg).await;
    put_client(srv, &reg).await;
    reg.client_name = Some("Web, renamed".into());
    put_client(srv, &reg).await;
    let web = TestClient {
        id: reg.client_id.clone(),
        secret: Some(secret.clone()),
    };
    let changes = srv.audit_records("event=client_registration", 2).await;
    assert_eq!(changes[0]["detail"], "updated");
    assert_eq!(changes[1]["detail"], "created");
    assert!(changes.iter().all(|r| r["clientId"] == web.id.as_str()));

    // Sign-ins: a wrong password, an unknown user, then the right password.
    let username = srv.user().await;
    let (url, verifier) = authorize_url(srv, &web.id, &[]);
    let browser = Browser::default();
    let page = browser.login_page(&url).await;
    let wrong = "not-the-password-42";
    assert_eq!(
        browser.submit(srv, &page, &username, wrong).await.status,
        401
    );
    let typo = format!("{username}-typo");
    assert_eq!(
        browser.submit(srv, &page, &typo, PASSWORD).await.status,
        401
    );
    let done = browser.submit(srv, &page, &username, PASSWORD).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let code = done.location_query()["code"].clone();
    let (status, tokens) = srv.exchange_code(&web, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");

    let failed = srv.audit_records("event=login&outcome=failure", 2).await;
    let sub = failed[1]["subject"]
        .as_str()
        .expect("the user's sub")
        .to_string();
    assert_eq!(failed[1]["username"], username.as_str());
    assert_eq!(failed[1]["detail"], "wrong password");
    assert_eq!(failed[1]["address"], "127.0.0.1");
    assert!(
        failed[0].get("username").is_none() && failed[0].get("subject").is_none(),
        "what was typed for an unknown user is not kept: {}",
        failed[0]
    );
    assert_eq!(failed[0]["detail"], "unknown username");
    let ok = srv.audit_records("event=login&outcome=success", 1).await;
    assert_eq!(ok[0]["subject"], sub.as_str());
    assert_eq!(ok[0]["clientId"], web.id.as_str());
    assert_eq!(ok[0]["detail"], "pwd");

    // Refresh, then the used refresh token again: reuse detected.
    let first_refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", first_refresh.as_str()),
    ];
    let (status, refreshed) = srv.token(&web, &refresh).await;
    assert_eq!(status, 200, "{refreshed}");
    let (status, _) = srv.token(&web, &refresh).await;
    assert_eq!(status, 400);
    let reuse = srv.audit_records("event=refresh_reuse", 1).await;
    assert_eq!(reuse[0]["subject"], sub.as_str());
    assert_eq!(reuse[0]["clientId"], web.id.as_str());
    assert_eq!(reuse[0]["outcome"], "failure");

    // A machine client acting as itself.
    let machine_secret = random_token(32);
    let machine = ClientRegistration {
        client_id: format!("m-{}", random_token(6)),
        grant_types: vec![GrantType::ClientCredentials],
        scopes: vec!["api".into()],
        redirect_uris: vec![],
        client_secret_hash: Some(hash_client_secret(&machine_secret)),
        ..reg.clone()
    };
    put_client(srv, &machine).await;
    let m = TestClient {
        id: machine.client_id.clone(),
        secret: Some(machine_secret.clone()),
    };
    let (status, cc) = srv.token(&m, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200, "{cc}");

    // Users' tokens are recorded one by one; a machine client's are summed up per minute
    // (the default), here written at once.
    let (status, _) = srv.token(&m, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200);
    srv.audit_records("event=token_issued", 2).await;
    srv.state.audit.flush_tally(chrono::Utc::now());
    let issued = srv.audit_records("event=token_issued", 3).await;
    let grants: Vec<&str> = issued
        .iter()
        .map(|r| r["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        grants,
        [
            "client_credentials x2 (summary)",
            "refresh_token",
            "authorization_code"
        ]
    );
    assert_eq!(
        issued[0]["subject"],
        m.id.as_str(),
        "the client acts as itself"
    );
    assert_eq!(issued[1]["subject"], sub.as_str());
    assert!(issued[1..].iter().all(|r| r["address"] == "127.0.0.1"));
    srv.state.audit.flush_tally(chrono::Utc::now());
    srv.audit_records("event=token_issued", 3).await;

    // The machine client is removed.
    let resp = srv
        .http
        .delete(format!("{}/admin/clients/{}", srv.admin, m.id))
        .bearer_auth(&srv.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let removed = srv.audit_records(&format!("client_id={}", m.id), 3).await;
    let details: Vec<&str> = removed
        .iter()
        .map(|r| r["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        details,
        ["deleted", "client_credentials x2 (summary)", "created"]
    );

    // The signing key changes (as a reloaded key set would make it).
    let old_kid = srv.state.keys.get().set.keys[0].kid.clone();
    let now = chrono::Utc::now();
    let year = chrono::Duration::days(365);
    let new_key = GeneratedKey::generate(Algorithm::ES256).unwrap().schedule(
        now,
        now,
        now + year,
        now + year,
    );
    let new_kid = new_key.kid.clone();
    srv.state.keys.replace(
        LoadedKeys::new(KeySet {
            keys: vec![new_key],
        })
        .unwrap(),
    );
    let rotated = srv.audit_records("event=key_rotation", 1).await;
    assert_eq!(rotated[0]["detail"], format!("{old_kid} -> {new_kid}"));

    // Filters and pages.
    let mine = srv.audit_records(&format!("subject={sub}"), 5).await;
    assert!(mine.iter().all(|r| r["subject"] == sub.as_str()));
    let by_name = srv.audit_records(&format!("username={username}"), 2).await;
    assert!(by_name.iter().all(|r| r["event"] == "login"));
    let (_, page1) = srv.audit("limit=4").await;
    let next = page1["next"].as_i64().expect("a next page");
    let (_, page2) = srv.audit(&format!("limit=100&before={next}")).await;
    let all = srv.audit_records("limit=1000", 12).await;
    let ids = |v: &Value| -> Vec<i64> {
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    };
    let paged: Vec<i64> = ids(&page1).into_iter().chain(ids(&page2)).collect();
    let every: Vec<i64> = all.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(paged, every, "two pages are the whole trail, newest first");
    assert!(page2.get("next").is_none(), "the last page has no next");
    let future = "since=2999-01-01T00:00:00Z";
    assert!(srv.audit_records(future, 0).await.is_empty());

    // Bad filters are named; the trail needs the admin token.
    let (status, err) = srv.audit("event=logon").await;
    assert_eq!(status, 400);
    assert_eq!(err["error"], "invalid_request");
    assert!(err["error_description"].as_str().unwrap().contains("event"));
    let (status, err) = srv.audit("since=yesterday").await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let anon = srv
        .http
        .get(format!("{}/admin/audit", srv.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);

    // No secret in any record or audit log line.
    let secrets = [
        PASSWORD,
        wrong,
        secret.as_str(),
        machine_secret.as_str(),
        code.as_str(),
        first_refresh.as_str(),
        tokens["access_token"].as_str().unwrap(),
        refreshed["refresh_token"].as_str().unwrap(),
        cc["access_token"].as_str().unwrap(),
        srv.admin_token.as_str(),
    ];
    let stored = serde_json::to_string(&all).unwrap();
    let audit_lines: Vec<Value> = logs
        .lines()
        .into_iter()
        .filter(|l| l["target"] == "palisade::audit")
        .collect();
    let logged = serde_json::to_string(&audit_lines).unwrap();
    for s in secrets {
        assert!(!stored.contains(s), "a secret is in the stored trail");
        assert!(!logged.contains(s), "a secret is in the audit log");
    }
    // Every stored record was also a log line, with the same fields.
    assert_eq!(audit_lines.len(), all.len(), "{audit_lines:#?}");
    let logged_events: Vec<&str> = audit_lines
        .iter()
        .rev()
        .map(|l| l["fields"]["event"].as_str().unwrap())
        .collect();
    let stored_events: Vec<&str> = all.iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(logged_events, stored_events);
}

on_both_stores!(
    a_scripted_session_leaves_a_complete_trail,
    common::ttls(),
    scripted_session
);
