//! CORS: the API endpoints answer browsers from any origin (`*`, no credentials), the sign-in
//! pages answer no other origin. Discovery and the JWKS carry their CORS headers whoever asks
//! (caches keep them); the POST endpoints add them when the request carries `Origin`, as
//! every cross-origin request a browser sends does, and not for servers, which send none.

mod common;

use reqwest::{Method, Response};

const ORIGIN: &str = "https://spa.example";

fn allowed_origin(resp: &Response) -> Option<String> {
    resp.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn api_endpoints_answer_browsers_from_any_origin_and_sign_in_pages_do_not() {
    let srv = common::start_memory().await;
    let body = [("grant_type", "client_credentials")];

    for path in ["/token", "/introspect", "/revoke", "/userinfo"] {
        let from_browser = srv
            .http
            .post(srv.url(path))
            .header("origin", ORIGIN)
            .form(&body)
            .send()
            .await
            .unwrap();
        assert!(from_browser.status().is_client_error(), "{path}");
        assert_eq!(
            allowed_origin(&from_browser).as_deref(),
            Some("*"),
            "{path}"
        );

        let preflight = srv
            .http
            .request(Method::OPTIONS, srv.url(path))
            .header("origin", ORIGIN)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap();
        assert!(preflight.status().is_success(), "{path} preflight");
        assert_eq!(allowed_origin(&preflight).as_deref(), Some("*"), "{path}");
        assert!(
            preflight
                .headers()
                .contains_key("access-control-allow-methods"),
            "{path} preflight"
        );

        let from_server = srv
            .http
            .post(srv.url(path))
            .form(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            from_server.status(),
            from_browser.status(),
            "{path}: the same answer"
        );
        assert_eq!(allowed_origin(&from_server), None, "{path} without Origin");
    }

    for path in ["/jwks", "/.well-known/openid-configuration"] {
        let resp = srv.http.get(srv.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(allowed_origin(&resp).as_deref(), Some("*"), "{path}");
        assert!(resp.headers().contains_key("vary"), "{path}");
    }

    for path in ["/login", "/authorize?client_id=nobody"] {
        let resp = srv
            .http
            .get(srv.url(path))
            .header("origin", ORIGIN)
            .send()
            .await
            .unwrap();
        assert_eq!(allowed_origin(&resp), None, "{path}");
    }
}
