//! Fixtures shared by the fuzz targets and the seed writer ([`seeds`]): a fixed
//! clock, a committed key set, registered clients and the tokens the seeds carry. The targets
//! call the auth-server's and wire crate's own parsers; nothing here parses untrusted input.

use axum::body::Body;
use axum::extract::FromRequest;
use axum::http::{header, Method, Request};
use axum::Form;
use chrono::{DateTime, Utc};
use palisade_auth_server::keys::LoadedKeys;
use palisade_auth_server::store::{AuthorizationRequest, CodeGrant};
use palisade_auth_server::tokens::{AccessClaims, IdClaims, ACCESS_TOKEN_TYP, ID_TOKEN_TYP};
use palisade_wire::keyset::KeySet;
use palisade_wire::registration::{
    hash_client_secret, ClientRegistration, GrantType, TokenEndpointAuthMethod,
};
use std::sync::OnceLock;

pub mod seeds;

/// Called by every target before fuzzing: with `PALISADE_FUZZ_WRITE_SEEDS=1` it writes the
/// fixtures and seeds and exits instead.
pub fn init() {
    if std::env::var_os("PALISADE_FUZZ_WRITE_SEEDS").is_some_and(|v| v == "1") {
        seeds::write();
        eprintln!("wrote the fixture key set and the seed corpora");
        std::process::exit(0);
    }
    // Fail at start, not on the first input, when the fixture is missing.
    keys();
}

/// The issuer every fixture token names.
pub const ISSUER: &str = "https://id.example";
/// The confidential clients' secret.
pub const SECRET: &str = "s3cret";
/// The PKCE verifier of RFC 7636 Appendix B, and its S256 challenge.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// The registered redirect URI of the fixture clients.
pub const REDIRECT_URI: &str = "https://app.example/cb";

/// The fixed instant at which the targets run (2027-01-15): the fixture keys are published then.
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("valid instant")
}

/// Path of the committed key-set file (written once by [`seeds::write`] with the key
/// generator of `palisade-wire`).
pub fn keyset_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/keyset.json")
}

/// The committed key set, parsed by the production parser.
pub fn keyset() -> &'static KeySet {
    static SET: OnceLock<KeySet> = OnceLock::new();
    SET.get_or_init(|| {
        let bytes = std::fs::read(keyset_path()).expect("fuzz/fixtures/keyset.json");
        KeySet::from_json(&bytes).expect("fixture key set parses")
    })
}

/// The committed key set, loaded as the auth-server loads it.
pub fn keys() -> &'static LoadedKeys {
    static KEYS: OnceLock<LoadedKeys> = OnceLock::new();
    KEYS.get_or_init(|| LoadedKeys::new(keyset().clone()).expect("fixture key set loads"))
}

/// A registered client: `app` (confidential, basic), `post` (confidential, post), `spa`
/// (public), with the authorization code, refresh and client-credentials grants.
pub fn client(client_id: &str) -> Option<ClientRegistration> {
    let (method, public) = match client_id {
        "app" => (TokenEndpointAuthMethod::ClientSecretBasic, false),
        "post" => (TokenEndpointAuthMethod::ClientSecretPost, false),
        "spa" => (TokenEndpointAuthMethod::None, true),
        _ => return None,
    };
    Some(ClientRegistration {
        client_id: client_id.into(),
        client_name: None,
        redirect_uris: vec![REDIRECT_URI.into(), "http://127.0.0.1:8000/callback".into()],
        post_logout_redirect_uris: vec![],
        grant_types: if public {
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
        } else {
            vec![
                GrantType::AuthorizationCode,
                GrantType::RefreshToken,
                GrantType::ClientCredentials,
            ]
        },
        scopes: vec![
            "openid".into(),
            "profile".into(),
            "email".into(),
            "api.read".into(),
        ],
        token_endpoint_auth_method: method,
        public,
        client_secret_hash: (!public).then(|| hash_client_secret(SECRET)),
    })
}

/// An authorization code issued to `app` with the fixture PKCE challenge.
pub fn code_grant() -> CodeGrant {
    CodeGrant {
        request: AuthorizationRequest {
            client_id: "app".into(),
            redirect_uri: REDIRECT_URI.into(),
            scope: "openid profile".into(),
            state: Some("xyz".into()),
            nonce: Some("n-0S6_WzA2Mj".into()),
            code_challenge: Some(CHALLENGE.into()),
            max_age: None,
        },
        sub: "user-1".into(),
        auth_time: now().timestamp() - 30,
        amr: vec!["pwd".into()],
        sid: "sid-1".into(),
        family_id: "family-1".into(),
        access_jti: "jti-1".into(),
        expires_at: now() + chrono::Duration::seconds(60),
    }
}

/// The access-token claims of the fixture tokens (fixed, so the signed message is too).
pub fn access_claims() -> AccessClaims {
    AccessClaims {
        iss: ISSUER.into(),
        sub: "user-1".into(),
        aud: ISSUER.into(),
        exp: now().timestamp() + 300,
        iat: now().timestamp() - 10,
        jti: "jti-fixture".into(),
        client_id: "app".into(),
        scope: "openid profile".into(),
    }
}

/// The ID-token claims of the fixture tokens (expired: hints are accepted after expiry).
pub fn id_claims() -> IdClaims {
    IdClaims {
        iss: ISSUER.into(),
        sub: "user-1".into(),
        aud: "app".into(),
        azp: "app".into(),
        exp: now().timestamp() - 5,
        iat: now().timestamp() - 600,
        auth_time: now().timestamp() - 600,
        // No methods: the claims serialize as before they existed, so the signed fixture
        // tokens in the committed corpus are still the fixture's own.
        amr: vec![],
        acr: None,
        nonce: Some("n-0S6_WzA2Mj".into()),
        at_hash: None,
        sid: "sid-1".into(),
        profile: Default::default(),
    }
}

/// Signs the fixture claims with every key of the fixture set (each key signs at the instant
/// its schedule makes it the active one): `(typ, token)` pairs.
pub fn signed_tokens() -> Vec<(&'static str, String)> {
    let keys = keys();
    let mut instants: Vec<DateTime<Utc>> = keys.set.keys.iter().map(|k| k.activate_at).collect();
    instants.sort();
    instants.dedup();
    let mut out = Vec::new();
    for at in instants {
        if let Some(t) = keys.sign(&access_claims(), ACCESS_TOKEN_TYP, at) {
            out.push((ACCESS_TOKEN_TYP, t));
        }
        if let Some(t) = keys.sign(&id_claims(), ID_TOKEN_TYP, at) {
            out.push((ID_TOKEN_TYP, t));
        }
    }
    out
}

/// The signed parts (`header.payload`) of every token the fixture keys sign: the only
/// messages a signature check may accept (nothing else was ever signed).
pub fn signed_messages() -> &'static std::collections::HashSet<String> {
    static MESSAGES: OnceLock<std::collections::HashSet<String>> = OnceLock::new();
    MESSAGES.get_or_init(|| {
        signed_tokens()
            .into_iter()
            .map(|(_, t)| t.rsplit_once('.').expect("compact JWS").0.to_string())
            .collect()
    })
}

/// Runs axum's form extractor (as the handlers receive their bodies) on a
/// `application/x-www-form-urlencoded` POST of `body`.
pub fn extract_form<T>(
    path: &str,
    body: &[u8],
) -> Result<Form<T>, axum::extract::rejection::FormRejection>
where
    T: serde::de::DeserializeOwned + Send,
{
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_vec()))
        .expect("request");
    futures::executor::block_on(Form::<T>::from_request(req, &()))
}
