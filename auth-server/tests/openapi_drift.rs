//! `docs/reference/openapi.json` must be exactly what the handlers' annotations generate, and
//! the description must cover every route of both ports.

use palisade_auth_server::openapi;

fn committed_path() -> std::path::PathBuf {
    std::path::Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("../docs/reference/openapi.json")
}

#[test]
fn committed_openapi_matches_the_code() {
    let on_disk =
        std::fs::read_to_string(committed_path()).expect("docs/reference/openapi.json exists");
    assert!(
        on_disk == openapi::json(),
        "docs/reference/openapi.json is out of date: run \
         `cargo run -p palisade-auth-server -- openapi > docs/reference/openapi.json` and commit the result"
    );
}

#[test]
fn every_route_is_described_with_its_errors_and_security() {
    let doc: serde_json::Value = serde_json::from_str(&openapi::json()).unwrap();
    let op = |method: &str, path: &str| {
        doc["paths"][path][method]
            .as_object()
            .unwrap_or_else(|| panic!("{} {path} is not described", method.to_uppercase()))
            .clone()
    };
    for (method, path) in [
        ("get", "/.well-known/openid-configuration"),
        ("get", "/jwks"),
        ("get", "/authorize"),
        ("post", "/authorize"),
        ("get", "/login"),
        ("post", "/login"),
        ("post", "/upstream/{name}/start"),
        ("get", "/upstream/{name}/callback"),
        ("post", "/token"),
        ("get", "/userinfo"),
        ("post", "/userinfo"),
        ("post", "/introspect"),
        ("post", "/revoke"),
        ("get", "/end_session"),
        ("post", "/end_session"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("put", "/admin/clients/{client_id}"),
        ("get", "/admin/clients/{client_id}"),
        ("delete", "/admin/clients/{client_id}"),
        ("put", "/admin/users/{username}"),
        ("get", "/admin/users/{username}"),
        ("delete", "/admin/users/{username}"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
    ] {
        let o = op(method, path);
        assert!(
            o["responses"]["503"].is_object(),
            "{path}: the deadline's 503"
        );
    }
    // Operation ids are unique.
    let mut ids: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|o| o["operationId"].as_str().unwrap().to_string())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate operationId");

    let token = op("post", "/token");
    assert_eq!(
        token["requestBody"]["content"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["application/x-www-form-urlencoded"]
    );
    assert!(token["responses"]["401"]["headers"]["WWW-Authenticate"].is_object());
    assert!(token["responses"]["429"]["headers"]["Retry-After"].is_object());
    assert_eq!(
        token["responses"]["400"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    assert_eq!(
        token["security"][0]["client_secret_basic"],
        serde_json::json!([])
    );
    assert_eq!(
        op("get", "/userinfo")["security"][0]["access_token"],
        serde_json::json!([])
    );
    // A POST may carry its token in a form body instead (RFC 6750 §2.2).
    let userinfo_post = op("post", "/userinfo");
    assert!(
        userinfo_post["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object()
    );
    assert!(userinfo_post["responses"]["400"].is_object());
    assert_eq!(
        op("put", "/admin/clients/{client_id}")["security"][0]["admin_token"],
        serde_json::json!([])
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["client_secret_basic"]["scheme"], "basic");
    assert_eq!(schemes["admin_token"]["scheme"], "bearer");
    // Every grant has its form shape.
    let grants: Vec<&str> = doc["components"]["schemas"]["TokenRequest"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["properties"]["grant_type"]["enum"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        grants,
        ["authorization_code", "refresh_token", "client_credentials"]
    );
}
