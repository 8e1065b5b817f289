//! A compact JWT as the server receives it (`/userinfo` bearer, `/introspect` token,
//! `/end_session` id_token_hint), verified against the fixture key set at the fixed clock.
#![no_main]

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use palisade_auth_server::endpoints::userinfo::bearer;
use palisade_auth_server::tokens::{verify, verify_id_token_hint};
use palisade_fuzz as fx;

fn signed_part(token: &str) -> &str {
    token.rsplit_once('.').map(|(m, _)| m).unwrap_or_default()
}

fuzz_target!(init: fx::init(), |data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let keys = fx::keys();
    let now = fx::now();
    if let Ok(claims) = verify(keys, fx::ISSUER, token, now) {
        assert_eq!(claims.iss, fx::ISSUER);
        assert!(claims.exp > now.timestamp());
        assert!(
            fx::signed_messages().contains(signed_part(token)),
            "a token nobody signed verified"
        );
    }
    if let Ok(claims) = verify_id_token_hint(keys, fx::ISSUER, token, now) {
        assert_eq!(claims.iss, fx::ISSUER);
        assert!(
            fx::signed_messages().contains(signed_part(token)),
            "an ID token nobody signed verified"
        );
    }
    // The same string as a bearer credential.
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, v);
        if let Some(b) = bearer(&headers) {
            assert_eq!(b, token.trim());
            assert!(!b.is_empty());
        }
    }
});
