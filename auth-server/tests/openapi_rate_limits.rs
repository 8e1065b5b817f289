//! The description's 429 answers are the router's: with every limit at one request, each
//! public operation documented with 429 is refused (with `Retry-After`) by its second request,
//! and no other operation ever is.

mod common;

use palisade_auth_server::openapi;
use palisade_auth_server::store::memory::MemoryStore;
use palisade_wire::contract::{RateLimit, RateLimits};
use std::sync::Arc;

#[tokio::test]
async fn documented_429s_are_exactly_the_rate_limited_routes() {
    let one = Some(RateLimit {
        requests_per_minute: 1,
        burst: 1,
    });
    let limits = RateLimits {
        authorize: one,
        token: one,
        userinfo: one,
        introspect: one,
        revoke: one,
        mfa: one,
        trusted_proxies: vec![],
    };
    let srv = common::start_with(
        Arc::new(MemoryStore::default()),
        common::ttls(),
        None,
        limits,
    )
    .await;
    let doc: serde_json::Value = serde_json::from_str(&openapi::json()).unwrap();
    let mut limited = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["tags"][0] != "public" {
                continue;
            }
            let documented = op["responses"]["429"].is_object();
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            let mut statuses = vec![];
            let mut retry_after = None;
            for _ in 0..3 {
                let resp = srv
                    .http
                    .request(method.clone(), srv.url(path))
                    .send()
                    .await
                    .unwrap();
                statuses.push(resp.status().as_u16());
                if resp.status() == 429 {
                    retry_after = resp.headers().get("retry-after").cloned();
                }
            }
            if documented {
                limited += 1;
                assert_eq!(
                    statuses[2], 429,
                    "{method} {path} documents 429: {statuses:?}"
                );
                assert!(
                    retry_after.is_some(),
                    "{method} {path}: 429 without Retry-After"
                );
            } else {
                assert!(
                    !statuses.contains(&429),
                    "{method} {path} answered 429 but does not document it"
                );
            }
        }
    }
    // authorize (GET, POST), login (GET, POST), token, userinfo (GET, POST), introspect, revoke,
    // the second-factor forms (login/totp, login/totp/enrol, login/totp/continue) and the
    // upstream start (POST) and callback (GET).
    assert_eq!(limited, 14);
}
