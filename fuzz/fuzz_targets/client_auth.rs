//! Client authentication: an `Authorization` header (client_secret_basic) and/or the
//! `client_id` / `client_secret` form fields (client_secret_post, none) through
//! `client_auth::presented`, then `verify` against every kind of registration.
//!
//! Input: one flag byte (bit 0: send the header, bit 1: client_id, bit 2: client_secret), then
//! the header value, client_id and client_secret separated by newlines.
#![no_main]

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use palisade_auth_server::client_auth::{presented, verify};
use palisade_fuzz as fx;
use palisade_wire::registration::TokenEndpointAuthMethod;

fuzz_target!(init: fx::init(), |data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |b| *b == b'\n');
    let (header_value, id, secret) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let mut headers = HeaderMap::new();
    if flags & 1 != 0 {
        // Only what HTTP can carry: hyper refuses other header bytes before any handler.
        let Ok(v) = HeaderValue::from_bytes(header_value) else {
            return;
        };
        headers.insert(header::AUTHORIZATION, v);
    }
    let (Ok(id), Ok(secret)) = (std::str::from_utf8(id), std::str::from_utf8(secret)) else {
        return;
    };
    let form_id = (flags & 2 != 0).then_some(id);
    let form_secret = (flags & 4 != 0).then_some(secret);
    let Ok(p) = presented(&headers, form_id, form_secret) else {
        return;
    };
    if flags & 1 != 0 {
        // A header that is accepted is a Basic one, and never alongside a form secret.
        assert_eq!(p.method, TokenEndpointAuthMethod::ClientSecretBasic);
        assert!(p.secret.is_some());
        assert!(form_secret.is_none(), "two authentication methods accepted");
    } else {
        assert_eq!(Some(p.client_id.as_str()), form_id);
        assert_eq!(p.secret.as_deref(), form_secret);
    }
    for client_id in ["app", "post", "spa"] {
        let reg = fx::client(client_id).expect("fixture client");
        if verify(&reg, &p).is_ok() {
            assert_eq!(p.method, reg.token_endpoint_auth_method);
            if reg.public {
                assert!(p.secret.is_none());
            } else {
                assert_eq!(p.secret.as_deref(), Some(fx::SECRET), "wrong secret accepted");
            }
        }
    }
});
