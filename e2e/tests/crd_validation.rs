//! The API server itself rejects invalid AuthProviders and OAuthClients at apply time, with a
//! message a person understands. Each row of the table is one invalid object.

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use palisade_e2e::{cluster, install_crds, TestNamespace};
use serde_json::{json, Value};

fn provider(spec_patch: Value) -> Value {
    let mut spec = json!({
        "issuer": "https://id.example.com",
        "database": {"urlSecretRef": {"name": "pg", "key": "uri"}}
    });
    merge(&mut spec, spec_patch);
    json!({"apiVersion": "auth.palisade.dev/v1alpha1", "kind": "AuthProvider", "metadata": {"name": "p"}, "spec": spec})
}

fn client(spec_patch: Value) -> Value {
    let mut spec = json!({
        "providerRef": {"name": "dev"},
        "redirectUris": ["https://app.example.com/cb"],
        "grantTypes": ["authorization_code"]
    });
    merge(&mut spec, spec_patch);
    json!({"apiVersion": "auth.palisade.dev/v1alpha1", "kind": "OAuthClient", "metadata": {"name": "c"}, "spec": spec})
}

fn merge(base: &mut Value, patch: Value) {
    if let (Some(b), Value::Object(p)) = (base.as_object_mut(), patch) {
        for (k, v) in p {
            b.insert(k, v);
        }
    }
}

async fn create_dry_run(client: &kube::Client, ns: &str, obj: &Value) -> Result<(), String> {
    let kind = obj["kind"].as_str().unwrap();
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "auth.palisade.dev",
        "v1alpha1",
        kind,
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let dynamic: DynamicObject = serde_json::from_value(obj.clone()).unwrap();
    api.create(
        &PostParams {
            dry_run: true,
            ..Default::default()
        },
        &dynamic,
    )
    .await
    .map(|_| ())
    .map_err(|e| match e {
        kube::Error::Api(s) => format!("{} {}", s.code, s.message),
        other => other.to_string(),
    })
}

#[tokio::test]
async fn invalid_resources_are_rejected_with_a_clear_message() {
    let Some(kube) = cluster().await else { return };
    install_crds();
    let ns = TestNamespace::new(&kube, "validation").await;
    let table: Vec<(&str, Value, &str)> = vec![
        (
            "http issuer",
            provider(json!({"issuer": "http://id.example.com"})),
            "issuer must be an https:// URL",
        ),
        (
            "issuer not a URL",
            provider(json!({"issuer": "not a url at all"})),
            "issuer must be an absolute http(s) URL",
        ),
        (
            "issuer with fragment",
            provider(json!({"issuer": "https://id.example.com/#x"})),
            "without query or fragment",
        ),
        (
            "min above max replicas",
            provider(json!({"autoscaling": {"minReplicas": 5, "maxReplicas": 2}})),
            "minReplicas must not be greater than autoscaling.maxReplicas",
        ),
        (
            "rotation shorter than publish lead",
            provider(json!({"signingKeys": {"rotationInterval": "1h", "publishLead": "2h"}})),
            "rotationInterval must be longer than signingKeys.publishLead",
        ),
        (
            "zero access token TTL",
            provider(json!({"tokens": {"accessTokenTTL": "0s"}})),
            "accessTokenTTL must be between 1m and 24h",
        ),
        (
            "huge refresh TTL",
            provider(json!({"tokens": {"refreshTokenTTL": "100000h"}})),
            "refreshTokenTTL must be between 1h and 8760h",
        ),
        (
            "blank upstream button text",
            provider(json!({"upstreams": [{
                "name": "corp", "displayName": "   ", "issuer": "https://idp.example.com",
                "clientId": "c", "clientSecretRef": {"name": "s", "key": "k"}
            }]})),
            "displayName",
        ),
        (
            "upstream issuer with user info",
            provider(json!({"upstreams": [{
                "name": "corp", "displayName": "Corp", "issuer": "https://user@idp.example.com",
                "clientId": "c", "clientSecretRef": {"name": "s", "key": "k"}
            }]})),
            "without user info",
        ),
        (
            "audit retention too short",
            provider(json!({"audit": {"retention": "30m"}})),
            "audit.retention must be between 1h and 87600h",
        ),
        (
            "TTL not a duration",
            provider(json!({"tokens": {"idTokenTTL": "5 days"}})),
            "idTokenTTL",
        ),
        (
            "zero rate limit",
            provider(json!({"rateLimits": {"token": {"requestsPerMinute": 0}}})),
            "requestsPerMinute",
        ),
        (
            "trusted proxy that is not an address",
            provider(json!({"rateLimits": {"trustedProxies": ["10.0.0.0/8", "ingress-nginx"]}})),
            "trustedProxies entries must be IP addresses or CIDR ranges",
        ),
        (
            "unknown algorithm",
            provider(json!({"signingKeys": {"algorithm": "HS256"}})),
            "Unsupported value: \"HS256\"",
        ),
        (
            "unknown TOTP policy",
            provider(json!({"mfa": {"totp": "Always"}})),
            "Unsupported value: \"Always\"",
        ),
        (
            "selector policy without selector",
            provider(json!({"clientNamespaces": {"policy": "Selector"}})),
            "clientNamespaces.selector is required",
        ),
        (
            "missing database",
            json!({"apiVersion": "auth.palisade.dev/v1alpha1", "kind": "AuthProvider", "metadata": {"name": "p"}, "spec": {"issuer": "https://id.example.com"}}),
            "spec.database: Required value",
        ),
        (
            "public client with client_credentials",
            client(
                json!({"public": true, "tokenEndpointAuthMethod": "none", "grantTypes": ["client_credentials"]}),
            ),
            "a public client cannot use the client_credentials grant",
        ),
        (
            "public client with a secret method",
            client(json!({"public": true})),
            "a public client has no secret: set tokenEndpointAuthMethod: none",
        ),
        (
            "confidential client with none",
            client(json!({"tokenEndpointAuthMethod": "none"})),
            "tokenEndpointAuthMethod: none is only for public clients",
        ),
        (
            "http redirect to a public host",
            client(json!({"redirectUris": ["http://app.example.com/cb"]})),
            "redirect URIs must be absolute https:// URLs",
        ),
        (
            "redirect with fragment",
            client(json!({"redirectUris": ["https://app.example.com/cb#frag"]})),
            "without a fragment",
        ),
        (
            "relative redirect",
            client(json!({"redirectUris": ["/callback"]})),
            "redirect URIs must be absolute",
        ),
        (
            "code grant without redirect",
            client(json!({"redirectUris": []})),
            "needs at least one entry in redirectUris",
        ),
        (
            "unknown grant type",
            client(json!({"grantTypes": ["password"]})),
            "Unsupported value: \"password\"",
        ),
        (
            "unknown auth method",
            client(json!({"tokenEndpointAuthMethod": "private_key_jwt"})),
            "Unsupported value: \"private_key_jwt\"",
        ),
        (
            "repeated grant type",
            client(json!({"grantTypes": ["authorization_code", "authorization_code"]})),
            "must not repeat",
        ),
        (
            "missing providerRef",
            json!({"apiVersion": "auth.palisade.dev/v1alpha1", "kind": "OAuthClient", "metadata": {"name": "c"}, "spec": {}}),
            "spec.providerRef: Required value",
        ),
    ];
    let mut failures = Vec::new();
    for (name, obj, expected) in &table {
        match create_dry_run(&kube, &ns.name, obj).await {
            Ok(()) => failures.push(format!("{name}: was accepted")),
            Err(msg) if msg.starts_with("422") && msg.contains(expected) => {}
            Err(msg) => failures.push(format!(
                "{name}: expected 422 containing {expected:?}, got {msg}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );

    // And the valid shapes next to them are accepted.
    for ok in [
        provider(json!({})),
        provider(json!({"issuer": "http://127.0.0.1:8080", "allowInsecureIssuer": true})),
        client(json!({"redirectUris": ["http://127.0.0.1:3000/cb", "http://localhost/cb"]})),
        client(json!({"public": true, "tokenEndpointAuthMethod": "none"})),
    ] {
        create_dry_run(&kube, &ns.name, &ok)
            .await
            .unwrap_or_else(|e| panic!("valid object rejected: {e}\n{ok}"));
    }
}
