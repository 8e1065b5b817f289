//! OAuthClients end to end: the operator registers the samples with a provider whose
//! auth-server runs locally (configured from the rendered Deployment), each application's
//! Secret works against the issuer through a real relying-party library (`openidconnect`: the
//! web app and the SPA sign a person in with the authorization code flow and PKCE, the machine
//! client uses client_credentials), a redirect-URI change is enforced by the provider, a wiped
//! database heals at the next resync, a deleted client is refused, an edited Secret cannot
//! point a client at another client's registration, a Secret the client did not create is
//! left alone, and a namespace outside `clientNamespaces` is turned away (and a client
//! registered before that is deregistered).

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use palisade_e2e::sign_in::{sign_in, Outcome};
use palisade_e2e::{
    client_credentials, cluster, eventually, hygiene::SecretWatch, install_crds, kubectl_ok,
    postgres_available, psql_ok, sample, LocalProvider, Operator, TestNamespace,
};
use palisade_operator::crd::OAuthClient;
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";

fn rp_http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// What a relying party got from one sign-in.
struct SignedIn {
    subject: String,
    refresh_token: Option<String>,
    access_token: String,
    code: String,
}

/// Signs `USER` in to the application whose Secret is `creds`, as its relying-party library
/// would: discovery, authorize URL with PKCE S256, state and nonce, the login page, the code
/// exchange with the Secret's credentials, and ID-token validation. `Err` carries what the
/// front channel showed instead of a redirect back to `redirect_uri`.
async fn sign_in_to(
    issuer: &str,
    creds: &BTreeMap<String, String>,
    redirect_uri: &str,
) -> Result<SignedIn, Outcome> {
    let http = rp_http();
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.into()).unwrap(), &http)
        .await
        .expect("discovery satisfies openidconnect");
    let rp = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(creds["client_id"].clone()),
        creds.get("client_secret").cloned().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(redirect_uri.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let callback = match sign_in(url.as_str(), USER, PASSWORD).await {
        Outcome::Redirected(cb) if cb.as_str().starts_with(redirect_uri) => cb,
        other => return Err(other),
    };
    let query: BTreeMap<String, String> = callback.query_pairs().into_owned().collect();
    assert_eq!(&query["state"], state.secret());
    assert_eq!(query["iss"], issuer, "RFC 9207 iss");
    let tokens = rp
        .exchange_code(AuthorizationCode::new(query["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange with the Secret's credentials");
    let claims = tokens
        .id_token()
        .expect("an ID token")
        .claims(&rp.id_token_verifier(), &nonce)
        .expect("the ID token verifies against JWKS with the nonce");
    assert_eq!(claims.email().unwrap().as_str(), "alice@example.com");
    if let Some(refresh) = tokens.refresh_token() {
        let rotated = rp
            .exchange_refresh_token(refresh)
            .unwrap()
            .request_async(&http)
            .await
            .expect("refresh with the Secret's credentials");
        assert_ne!(
            rotated.refresh_token().unwrap().secret(),
            refresh.secret(),
            "refresh tokens rotate"
        );
    }
    Ok(SignedIn {
        subject: claims.subject().to_string(),
        refresh_token: tokens.refresh_token().map(|t| t.secret().clone()),
        access_token: tokens.access_token().secret().clone(),
        code: query["code"].clone(),
    })
}

async fn secret(client: &Client, ns: &str, name: &str) -> BTreeMap<String, String> {
    let s = Api::<Secret>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap();
    s.data
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect()
}

async fn token_status(issuer: &str, id: &str, secret: &str) -> u16 {
    client_credentials(issuer, id, secret, Some("api.read"))
        .await
        .status()
        .as_u16()
}

async fn ready_reason(client: &Client, ns: &str, name: &str) -> Option<String> {
    let oc = Api::<OAuthClient>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .ok()?;
    oc.status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| format!("{}:{}", c.status, c.reason))
}

/// Waits until the OAuthClient's Ready condition is `want` (`<status>:<reason>`).
async fn until_ready_reason(client: &Client, ns: &str, name: &str, want: &str) {
    eventually(&format!("{name} {want}"), WAIT, || async {
        (ready_reason(client, ns, name).await? == want).then_some(())
    })
    .await;
}

/// Points the OAuthClient `name` at the AuthProvider `provider` (same namespace).
async fn point_at(client: &Client, ns: &str, name: &str, provider: &str) {
    Api::<OAuthClient>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"providerRef": {"name": provider}}})),
        )
        .await
        .unwrap();
}

/// Creates an OAuthClient from its manifest.
async fn create_client(client: &Client, ns: &str, manifest: serde_json::Value) {
    Api::<OAuthClient>::namespaced(client.clone(), ns)
        .create(
            &Default::default(),
            &serde_json::from_value(manifest).unwrap(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn sample_clients_register_get_tokens_heal_and_deregister() {
    let Some(kube) = cluster().await else { return };
    if !postgres_available() {
        return;
    }
    install_crds();
    let ns = TestNamespace::new(&kube, "clients").await;
    let provider = LocalProvider::start(
        &kube,
        &ns.name,
        serde_json::json!({}),
        Duration::from_secs(2),
    )
    .await;
    let (issuer, admin) = (provider.issuer.clone(), provider.admin.clone());
    let override_url = format!("http://{admin}");

    for f in [
        "oauthclient-webapp.yaml",
        "oauthclient-spa.yaml",
        "oauthclient-machine.yaml",
    ] {
        kubectl_ok(&["apply", "--server-side", "-n", &ns.name, "-f", &sample(f)]);
    }
    for name in ["webapp", "spa", "machine"] {
        until_ready_reason(&kube, &ns.name, name, "True:Registered").await;
    }

    let webapp_status = Api::<OAuthClient>::namespaced(kube.clone(), &ns.name)
        .get("webapp")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(
        webapp_status.registered_with,
        Some(format!("{}/dev", ns.name)),
        "the status names the provider holding the registration"
    );

    // Each application's Secret has what it needs, and only that.
    let webapp = secret(&kube, &ns.name, "webapp-oauth").await;
    assert_eq!(webapp["issuer"], issuer);
    assert_eq!(
        webapp["discovery_url"],
        format!("{issuer}/.well-known/openid-configuration")
    );
    assert_eq!(webapp["client_secret"].len(), 43);
    let spa = secret(&kube, &ns.name, "spa-oauth").await;
    assert!(
        !spa.contains_key("client_secret"),
        "public clients get no secret"
    );
    let machine = secret(&kube, &ns.name, "machine-oauth").await;
    // Gathered now: the machine client's Secret is deleted further down.
    let mut watch = SecretWatch::new();
    watch.collect(&ns.name);

    // The machine client gets a token from the running issuer with its Secret's credentials,
    // through the RP library, authenticating as the sample registers it (client_secret_post).
    let meta =
        CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.clone()).unwrap(), &rp_http())
            .await
            .expect("discovery satisfies openidconnect");
    let machine_rp = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(machine["client_id"].clone()),
        Some(ClientSecret::new(machine["client_secret"].clone())),
    )
    .set_auth_type(AuthType::RequestBody);
    let granted = machine_rp
        .exchange_client_credentials()
        .unwrap()
        .add_scope(Scope::new("api.read".into()))
        .request_async(&rp_http())
        .await
        .expect("client_credentials with the Secret's credentials");
    assert_eq!(
        granted.token_type(),
        &openidconnect::core::CoreTokenType::Bearer
    );
    assert_eq!(
        granted
            .scopes()
            .map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
        Some(vec!["api.read"])
    );
    // The registered authentication method is enforced: the same secret over HTTP Basic is not
    // accepted for a client_secret_post client.
    let basic = machine_rp
        .clone()
        .set_auth_type(AuthType::BasicAuth)
        .exchange_client_credentials()
        .unwrap()
        .request_async(&rp_http())
        .await;
    assert!(
        matches!(&basic, Err(openidconnect::RequestTokenError::ServerResponse(e)) if e.error().as_ref() == "invalid_client"),
        "{basic:?}"
    );
    // A wrong secret is refused.
    assert_eq!(
        token_status(&issuer, &machine["client_id"], "wrong").await,
        401
    );

    // A person signs in to the web app (confidential, client_secret_basic) and to the SPA
    // (public, PKCE only) with the credentials from their Secrets.
    let token = kubectl_ok(&[
        "get",
        "secret",
        "-n",
        &ns.name,
        "dev-internal",
        "-o",
        "jsonpath={.data.admin-token}",
    ]);
    let token = String::from_utf8(base64_decode(&token)).unwrap();
    let http = reqwest::Client::new();
    let created = http
        .put(format!("http://{admin}/admin/users/{USER}"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "password": PASSWORD, "email": "alice@example.com", "emailVerified": true, "name": "Alice"
        }))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "user created: {created:?}");
    let web = sign_in_to(&issuer, &webapp, "http://127.0.0.1:3000/callback")
        .await
        .expect("the web app signs alice in");
    assert!(
        web.refresh_token.is_some(),
        "the web app has the refresh_token grant"
    );
    let single_page = sign_in_to(&issuer, &spa, "http://localhost:5173/callback")
        .await
        .expect("the SPA signs alice in");
    assert_eq!(single_page.subject, web.subject, "one person, one subject");
    // A spec change re-registers: the provider sees the new redirect URIs.
    Api::<OAuthClient>::namespaced(kube.clone(), &ns.name)
        .patch(
            "webapp",
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"spec": {"redirectUris": ["https://new.example.com/cb"]}}),
            ),
        )
        .await
        .unwrap();
    eventually("the new redirect URIs at the provider", WAIT, || async {
        let reg: serde_json::Value = http
            .get(format!(
                "http://{admin}/admin/clients/{}",
                webapp["client_id"]
            ))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (reg["redirectUris"] == serde_json::json!(["https://new.example.com/cb"])).then_some(())
    })
    .await;

    // The provider enforces the new list: the old callback is never redirected to, the new
    // one works.
    match sign_in_to(&issuer, &webapp, "http://127.0.0.1:3000/callback").await {
        Err(Outcome::Page { status, .. }) => assert_eq!(status, 400),
        Err(other) => panic!("the old redirect URI was used: {other:?}"),
        Ok(_) => panic!("the old redirect URI still signs in"),
    }
    sign_in_to(&issuer, &webapp, "https://new.example.com/cb")
        .await
        .expect("the new redirect URI signs alice in");

    // A wiped database heals at the next resync: every client is registered again. (The
    // auth-server may answer from its 5-second client cache meanwhile, so the wipe is watched
    // in the database itself.)
    let ids = [&webapp, &spa, &machine]
        .map(|c| format!("'{}'", c["client_id"]))
        .join(",");
    let registered = format!("SELECT count(*) FROM clients WHERE client_id IN ({ids})");
    assert_eq!(psql_ok(&registered), "3");
    psql_ok("TRUNCATE clients");
    assert_eq!(psql_ok(&registered), "0");
    eventually("the resync to re-register every client", WAIT, || async {
        (psql_ok(&registered) == "3").then_some(())
    })
    .await;
    assert_eq!(
        token_status(&issuer, &machine["client_id"], &machine["client_secret"]).await,
        200
    );

    // Deleting the Secret rotates the client secret: a new one is written under the same
    // client_id and registered; the old one stops working.
    kubectl_ok(&["delete", "secret", "-n", &ns.name, "machine-oauth"]);
    let rotated = eventually("a new machine-oauth Secret", WAIT, || async {
        let s = Api::<Secret>::namespaced(kube.clone(), &ns.name)
            .get_opt("machine-oauth")
            .await
            .ok()??;
        let data = s.data?;
        let secret = String::from_utf8(data.get("client_secret")?.0.clone()).ok()?;
        let id = String::from_utf8(data.get("client_id")?.0.clone()).ok()?;
        Some((id, secret))
    })
    .await;
    assert_eq!(rotated.0, machine["client_id"], "the client_id is kept");
    assert_ne!(rotated.1, machine["client_secret"], "a new client_secret");
    watch.add("the machine's rotated client secret", &rotated.1);
    eventually("the new secret to be accepted", WAIT, || async {
        (token_status(&issuer, &rotated.0, &rotated.1).await == 200).then_some(())
    })
    .await;
    eventually("the old secret to be refused", WAIT, || async {
        (token_status(&issuer, &machine["client_id"], &machine["client_secret"]).await == 401)
            .then_some(())
    })
    .await;
    let machine = BTreeMap::from([
        ("client_id".to_string(), rotated.0.clone()),
        ("client_secret".to_string(), rotated.1.clone()),
    ]);

    // A Secret edited to carry another client's ID does not make the operator register over
    // that client: the ID in status wins and is written back.
    Api::<Secret>::namespaced(kube.clone(), &ns.name)
        .patch(
            "machine-oauth",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"stringData": {"client_id": webapp["client_id"]}})),
        )
        .await
        .unwrap();
    eventually(
        "machine-oauth's own client_id written back",
        WAIT,
        || async {
            (secret(&kube, &ns.name, "machine-oauth").await["client_id"] == machine["client_id"])
                .then_some(())
        },
    )
    .await;
    let registration = |id: String| {
        let (http, token) = (http.clone(), token.clone());
        let url = format!("http://{admin}/admin/clients/{id}");
        async move { http.get(url).bearer_auth(&token).send().await.unwrap() }
    };
    let webapp_registration: serde_json::Value = registration(webapp["client_id"].clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        webapp_registration["redirectUris"],
        serde_json::json!(["https://new.example.com/cb"]),
        "the web app's registration is its own: {webapp_registration}"
    );
    assert_eq!(
        token_status(&issuer, &machine["client_id"], &machine["client_secret"]).await,
        200
    );

    // A Secret that the OAuthClient did not create is neither adopted nor changed.
    let taken = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-config"},
        "stringData": {"database": "keep me"}
    });
    Api::<Secret>::namespaced(kube.clone(), &ns.name)
        .create(&Default::default(), &serde_json::from_value(taken).unwrap())
        .await
        .unwrap();
    let squatter = serde_json::json!({
        "apiVersion": "auth.palisade.dev/v1alpha1", "kind": "OAuthClient",
        "metadata": {"name": "squatter"},
        "spec": {"providerRef": {"name": "dev"}, "grantTypes": ["client_credentials"],
                 "secretName": "app-config"}
    });
    create_client(&kube, &ns.name, squatter).await;
    until_ready_reason(&kube, &ns.name, "squatter", "False:SecretConflict").await;
    let untouched = Api::<Secret>::namespaced(kube.clone(), &ns.name)
        .get("app-config")
        .await
        .unwrap();
    assert_eq!(
        secret(&kube, &ns.name, "app-config").await,
        BTreeMap::from([("database".to_string(), "keep me".to_string())])
    );
    assert!(untouched.metadata.owner_references.is_none(), "not adopted");
    kubectl_ok(&["delete", "oc", "-n", &ns.name, "squatter", "--timeout=60s"]);
    assert!(
        Api::<Secret>::namespaced(kube.clone(), &ns.name)
            .get_opt("app-config")
            .await
            .unwrap()
            .is_some(),
        "deleting the OAuthClient leaves the Secret it did not create"
    );

    // Nor does a forged Secret, controller owner reference and all, for a client whose status
    // records no ID yet (it waited for a provider that did not exist): the ID another client's
    // status records is not taken from it, and the thief gets an ID of its own.
    let thief = serde_json::json!({
        "apiVersion": "auth.palisade.dev/v1alpha1", "kind": "OAuthClient",
        "metadata": {"name": "thief"},
        "spec": {"providerRef": {"name": "nowhere"}, "grantTypes": ["client_credentials"],
                 "scopes": ["api.read"]}
    });
    create_client(&kube, &ns.name, thief).await;
    until_ready_reason(&kube, &ns.name, "thief", "False:ProviderNotFound").await;
    let clients = Api::<OAuthClient>::namespaced(kube.clone(), &ns.name);
    let waiting = clients.get("thief").await.unwrap();
    assert_eq!(
        waiting.status.as_ref().and_then(|s| s.client_id.clone()),
        None,
        "a client that never had a provider has no ID yet"
    );
    let forged_secret = format!("forged-{}", waiting.metadata.uid.clone().unwrap());
    watch.add("the forged client secret", &forged_secret);
    let forged = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "thief-oauth", "ownerReferences": [{
            "apiVersion": "auth.palisade.dev/v1alpha1", "kind": "OAuthClient", "name": "thief",
            "uid": waiting.metadata.uid, "controller": true}]},
        "stringData": {"client_id": webapp["client_id"], "client_secret": forged_secret}
    });
    Api::<Secret>::namespaced(kube.clone(), &ns.name)
        .create(
            &Default::default(),
            &serde_json::from_value(forged).unwrap(),
        )
        .await
        .unwrap();
    point_at(&kube, &ns.name, "thief", "dev").await;
    until_ready_reason(&kube, &ns.name, "thief", "True:Registered").await;
    let thief_id = clients
        .get("thief")
        .await
        .unwrap()
        .status
        .and_then(|s| s.client_id)
        .unwrap();
    assert_ne!(thief_id, webapp["client_id"]);
    assert_eq!(
        secret(&kube, &ns.name, "thief-oauth").await["client_id"],
        thief_id,
        "the Secret is rewritten with the thief's own ID"
    );
    let webapp_after: serde_json::Value = registration(webapp["client_id"].clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        webapp_after, webapp_registration,
        "the web app's registration is untouched"
    );
    eventually("a ClientIdInUse Warning Event", WAIT, || async {
        Api::<Event>::namespaced(kube.clone(), &ns.name)
            .list(&Default::default())
            .await
            .ok()?
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("ClientIdInUse")
                    && e.type_.as_deref() == Some("Warning")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("thief")
            })
            .then_some(())
    })
    .await;
    kubectl_ok(&["delete", "oc", "-n", &ns.name, "thief", "--timeout=60s"]);
    assert_eq!(registration(thief_id).await.status().as_u16(), 404);
    assert_eq!(
        registration(webapp["client_id"].clone())
            .await
            .status()
            .as_u16(),
        200,
        "deleting the thief leaves the web app registered"
    );

    // Moved to another provider (one that does not exist yet), the client leaves the old one:
    // its credentials stop working there.
    point_at(&kube, &ns.name, "machine", "elsewhere").await;
    until_ready_reason(&kube, &ns.name, "machine", "False:ProviderNotFound").await;
    eventually(
        "the old provider to refuse the moved client",
        WAIT,
        || async {
            (token_status(&issuer, &machine["client_id"], &machine["client_secret"]).await == 401)
                .then_some(())
        },
    )
    .await;
    let moved = Api::<OAuthClient>::namespaced(kube.clone(), &ns.name)
        .get("machine")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(moved.registered_with, None, "{moved:?}");

    // Deleting the OAuthClient lets go (the provider it names does not exist: the delete
    // returns) and removes its Secret.
    kubectl_ok(&["delete", "oc", "-n", &ns.name, "machine", "--timeout=60s"]);
    eventually("machine-oauth to be garbage-collected", WAIT, || async {
        Api::<Secret>::namespaced(kube.clone(), &ns.name)
            .get_opt("machine-oauth")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;

    // A client in another namespace registers while the provider admits every namespace; once
    // the provider admits only its own again, the client is refused with its condition and
    // deregistered, so its credentials stop working.
    let other = TestNamespace::new(&kube, "outsider").await;
    let _other_operator =
        Operator::start(&other.name, &["--admin-endpoint-override", &override_url]);
    let admit =
        |policy: &str| serde_json::json!({"spec": {"clientNamespaces": {"policy": policy}}});
    let providers = Api::<palisade_operator::crd::AuthProvider>::namespaced(kube.clone(), &ns.name);
    providers
        .patch("dev", &PatchParams::default(), &Patch::Merge(admit("All")))
        .await
        .unwrap();
    let outsider = serde_json::json!({
        "apiVersion": "auth.palisade.dev/v1alpha1", "kind": "OAuthClient",
        "metadata": {"name": "outsider"},
        "spec": {"providerRef": {"name": "dev", "namespace": ns.name},
                 "grantTypes": ["client_credentials"], "tokenEndpointAuthMethod": "client_secret_post"}
    });
    create_client(&kube, &other.name, outsider).await;
    until_ready_reason(&kube, &other.name, "outsider", "True:Registered").await;
    let outsider = secret(&kube, &other.name, "outsider-oauth").await;
    let outsider_token = || async {
        client_credentials(
            &issuer,
            &outsider["client_id"],
            &outsider["client_secret"],
            None,
        )
        .await
        .status()
        .as_u16()
    };
    assert_eq!(outsider_token().await, 200);
    providers
        .patch("dev", &PatchParams::default(), &Patch::Merge(admit("Same")))
        .await
        .unwrap();
    until_ready_reason(&kube, &other.name, "outsider", "False:NamespaceNotAllowed").await;
    let refused = Api::<OAuthClient>::namespaced(kube.clone(), &other.name)
        .get("outsider")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(refused.registered_with, None, "{refused:?}");
    eventually("the outsider's credentials refused", WAIT, || async {
        (outsider_token().await == 401).then_some(())
    })
    .await;
    watch.add("the outsider's client secret", &outsider["client_secret"]);

    // Nothing secret that this run handled (admin token, pepper, signing keys, every client
    // secret, alice's password, her tokens) was printed, put in an Event, a status or any
    // object other than a Secret.
    watch.collect(&ns.name);
    watch.add("alice's password", PASSWORD);
    for grant in [&web, &single_page] {
        watch.add("an access token", &grant.access_token);
        watch.add("an authorization code", &grant.code);
        if let Some(refresh) = &grant.refresh_token {
            watch.add("a refresh token", refresh);
        }
    }
    watch.add(
        "the machine's access token",
        granted.access_token().secret(),
    );
    let mut logs = provider.logs();
    logs.push(_other_operator.log.clone());
    watch.assert_clean(&ns.name, &logs);
    watch.assert_clean(&other.name, &[]);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .expect("kubectl prints base64")
}
