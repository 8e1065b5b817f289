//! GET and POST /authorize: the query string or form through axum's extractors, then
//! `single_valued` and `validate` (client and redirect URI, then the rest) as the handler runs
//! them, against the fixture clients.
#![no_main]

use axum::extract::{FromRequestParts, Query};
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use palisade_auth_server::endpoints::authorize::{
    redirect_uri_registered, single_valued, validate, RawParams, Refusal, MAX_PARAM_LEN,
};
use palisade_auth_server::grants::pkce;
use palisade_fuzz as fx;

fn check(raw: &RawParams) {
    let Ok(params) = single_valued(raw) else {
        return;
    };
    assert_eq!(params.len(), raw.len(), "a repeated parameter was accepted");
    assert!(params.values().all(|v| v.len() <= MAX_PARAM_LEN));
    let client = params
        .get("client_id")
        .filter(|id| !id.is_empty())
        .and_then(|id| fx::client(id));
    match validate(&params, client.as_ref()) {
        Ok((redirect_uri, state, v)) => {
            let client = client.expect("validated without a client");
            assert!(redirect_uri_registered(&client, redirect_uri));
            assert_eq!(v.request.redirect_uri, redirect_uri);
            assert_eq!(v.request.client_id, client.client_id);
            assert_eq!(state, v.request.state.as_deref());
            assert_eq!(params.get("response_type"), Some(&"code"));
            let scopes: Vec<&str> = v.request.scope.split(' ').collect();
            assert_eq!(scopes[0], "openid");
            for (i, s) in scopes.iter().enumerate() {
                assert!(
                    !s.is_empty() && !scopes[..i].contains(s),
                    "scope list {scopes:?}"
                );
                assert!(client.scopes.iter().any(|a| a == s) || *s == "offline_access");
            }
            match &v.request.code_challenge {
                Some(c) => {
                    assert!(pkce::well_formed(c));
                    assert_eq!(params.get("code_challenge_method"), Some(&"S256"));
                }
                None => assert!(!client.public, "a public client without PKCE"),
            }
            assert!(!(v.prompt_none && v.prompt_login));
        }
        Err(Refusal::Redirect { redirect_uri, .. }) => {
            // Errors are only ever redirected to a registered URI of a known client.
            let client = client.expect("redirected without a client");
            assert!(redirect_uri_registered(&client, redirect_uri));
        }
        Err(Refusal::Page(m)) => assert!(!m.is_empty()),
    }
}

fuzz_target!(init: fx::init(), |data: &[u8]| {
    if let Ok(form) = fx::extract_form::<RawParams>("/authorize", data) {
        check(&form.0);
    }
    // The same bytes as a query string, when they make a valid request target.
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(req) = Request::get(format!("/authorize?{query}")).body(()) else {
        return;
    };
    let (mut parts, ()) = req.into_parts();
    let extracted = futures::executor::block_on(Query::<RawParams>::from_request_parts(
        &mut parts,
        &(),
    ));
    if let Ok(Query(raw)) = extracted {
        check(&raw);
    }
});
