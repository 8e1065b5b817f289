//! POST /token: a form body through axum's form extractor and `endpoints::token::parse` (the
//! request the grants read), then the pure checks each grant applies to its parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_auth_server::client_auth;
use palisade_auth_server::endpoints::{token, FormPairs, MAX_FORM_VALUE_LEN};
use palisade_auth_server::grants::{authorization_code, client_credentials, narrow_scope, pkce};
use palisade_fuzz as fx;
use palisade_wire::registration::TokenEndpointAuthMethod;

fuzz_target!(init: fx::init(), |data: &[u8]| {
    let body = fx::extract_form::<FormPairs>("/token", data);
    let pairs = body.as_ref().ok().map(|f| f.0.len());
    let Ok(req) = token::parse(body) else {
        return;
    };
    // Every parameter once (repeats are refused), each within the documented limit.
    assert_eq!(Some(req.params.len()), pairs, "a repeated parameter was accepted");
    assert!(req.params.values().all(|v| v.len() <= MAX_FORM_VALUE_LEN));
    assert!(!req.grant_type.is_empty());
    assert_eq!(req.params.get("grant_type"), Some(&req.grant_type));
    let p = &req.params;
    let field = |name: &str| p.get(name).map(String::as_str);

    // client_secret_post / none, read from the same form.
    if let Ok(presented) = client_auth::presented(
        &axum::http::HeaderMap::new(),
        field("client_id"),
        field("client_secret"),
    ) {
        assert_eq!(Some(presented.client_id.as_str()), field("client_id"));
        assert_eq!(presented.secret.as_deref(), field("client_secret"));
        assert_ne!(presented.method, TokenEndpointAuthMethod::ClientSecretBasic);
    }

    let now = fx::now();
    match req.grant_type.as_str() {
        "authorization_code" => {
            let ok = authorization_code::check(
                &fx::code_grant(),
                field("client_id").unwrap_or("app"),
                field("redirect_uri"),
                field("code_verifier"),
                now,
            )
            .is_ok();
            if ok {
                assert_eq!(field("redirect_uri"), Some(fx::REDIRECT_URI));
                assert_eq!(field("code_verifier"), Some(fx::VERIFIER), "PKCE bypassed");
            }
        }
        "refresh_token" => {
            let granted = "openid profile email";
            if let Ok(scope) = narrow_scope(granted, field("scope")) {
                let mut seen = Vec::new();
                for s in scope.split(' ') {
                    assert!(granted.split(' ').any(|g| g == s), "scope widened: {s}");
                    assert!(!seen.contains(&s), "scope {s} repeated");
                    seen.push(s);
                }
            }
        }
        "client_credentials" => {
            let reg = fx::client("app").expect("fixture client");
            if let Ok(scope) = client_credentials::granted_scope(&reg, field("scope")) {
                assert!(scope
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .all(|s| reg.scopes.iter().any(|a| a == s)));
            }
        }
        _ => {}
    }
    if let Some(v) = field("code_verifier") {
        if pkce::verify_s256(fx::CHALLENGE, v) {
            assert_eq!(v, fx::VERIFIER);
        }
    }
});
