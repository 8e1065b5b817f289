//! Writes the fixture key set (once: it is committed) and the seed inputs of every target
//! under `corpus/<target>/`. Any built target does it when started with
//! `PALISADE_FUZZ_WRITE_SEEDS=1` (see [`crate::init`]), so no second, differently instrumented
//! build of the dependencies is needed.

use crate as fx;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use palisade_auth_server::endpoints::authorize::{single_valued, validate, RawParams};
use palisade_auth_server::tokens::{verify, verify_id_token_hint, ACCESS_TOKEN_TYP};
use palisade_wire::keyset::{Algorithm, GeneratedKey, KeySet};
use std::path::Path;

fn seed(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(name), bytes).expect("seed");
}

fn keyset_fixture() {
    let path = fx::keyset_path();
    if path.exists() {
        return;
    }
    let t = fx::now();
    let s = chrono::Duration::seconds;
    let key = |alg, p: i64, a: i64, r: i64, d: i64| {
        GeneratedKey::generate(alg)
            .expect("key")
            .schedule(t + s(p), t + s(a), t + s(r), t + s(d))
    };
    let set = KeySet {
        keys: vec![
            // Deleted before the fixed clock: its tokens must be refused as unknown.
            key(Algorithm::ES256, -2000, -2000, -1500, -1000),
            key(Algorithm::ES256, -1000, -900, 1_000_000, 2_000_000),
            key(Algorithm::EdDSA, -1000, -800, 1_000_000, 2_000_000),
            key(Algorithm::RS256, -1000, -700, 1_000_000, 2_000_000),
        ],
    };
    std::fs::create_dir_all(path.parent().expect("dir")).expect("fixtures dir");
    std::fs::write(&path, set.to_json()).expect("write fixture");
}

/// Writes the fixture key set if it is missing, then every target's seeds.
pub fn write() {
    keyset_fixture();

    let token = [
        "grant_type=client_credentials&scope=api.read",
        "grant_type=client_credentials&client_id=post&client_secret=s3cret&scope=openid+api.read",
        "grant_type=authorization_code&code=Splx10BeZQQYbYS6WxSbIA&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk&client_id=app",
        "grant_type=refresh_token&refresh_token=tGzv3JOkF0XG5Qx2TlKWIA&scope=openid%20email&client_id=spa",
        "grant_type=client_credentials&grant_type=refresh_token",
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=x",
    ];
    for (i, body) in token.iter().enumerate() {
        seed("token_request", &format!("seed-{i}"), body.as_bytes());
    }

    let authorize = [
        "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=openid%20profile&state=xyz&nonce=n-0S6_WzA2Mj",
        "response_type=code&client_id=spa&redirect_uri=http://127.0.0.1:8000/callback&scope=openid+offline_access+email&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&prompt=login&max_age=300",
        "response_type=code&client_id=spa&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=openid&prompt=none&state=s",
        "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&scope=openid",
        "response_type=token&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=openid&request=eyJhbGciOiJub25lIn0",
        "client_id=app&client_id=spa",
    ];
    for (i, q) in authorize.iter().enumerate() {
        seed("authorize_request", &format!("seed-{i}"), q.as_bytes());
    }

    let basic =
        |id: &str, secret: &str| format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
    let client_auth: Vec<Vec<u8>> = vec![
        [&[1u8][..], basic("app", "s3cret").as_bytes(), b"\n\n"].concat(),
        [&[1u8][..], basic("my%20app", "a%2Bb").as_bytes(), b"\n\n"].concat(),
        [
            &[7u8][..],
            basic("app", "s3cret").as_bytes(),
            b"\napp\ns3cret",
        ]
        .concat(),
        b"\x06\npost\ns3cret".to_vec(),
        b"\x02\nspa\n".to_vec(),
        b"\x01basic !!!\n\n".to_vec(),
    ];
    for (i, input) in client_auth.iter().enumerate() {
        seed("client_auth", &format!("seed-{i}"), input);
    }

    // The seeds reach the success paths whose invariants the targets assert.
    let verified = fx::signed_tokens()
        .iter()
        .filter(|(typ, t)| match *typ {
            ACCESS_TOKEN_TYP => verify(fx::keys(), fx::ISSUER, t, fx::now()).is_ok(),
            _ => verify_id_token_hint(fx::keys(), fx::ISSUER, t, fx::now()).is_ok(),
        })
        .count();
    assert_eq!(
        verified, 6,
        "the three published keys' access and ID tokens verify"
    );
    for q in &authorize[..2] {
        let raw = fx::extract_form::<RawParams>("/authorize", q.as_bytes())
            .expect("form")
            .0;
        let params = single_valued(&raw).expect("single valued");
        let client = fx::client(params["client_id"]);
        assert!(validate(&params, client.as_ref()).is_ok(), "{q}");
    }
    let mut jwt: Vec<String> = fx::signed_tokens().into_iter().map(|(_, t)| t).collect();
    jwt.push(
        "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJpc3MiOiJodHRwczovL2lkLmV4YW1wbGUifQ.".into(),
    );
    jwt.push("not-a-jwt".into());
    for (i, t) in jwt.iter().enumerate() {
        seed("jwt", &format!("seed-{i}"), t.as_bytes());
    }

    let jwks = fx::keys().jwks(fx::now());
    seed(
        "jwks",
        "seed-0",
        serde_json::to_string(&jwks).unwrap().as_bytes(),
    );
    for (i, k) in jwks["keys"].as_array().unwrap().iter().enumerate() {
        let one = serde_json::json!({ "keys": [k] });
        seed(
            "jwks",
            &format!("seed-{}", i + 1),
            one.to_string().as_bytes(),
        );
    }

    let full = std::fs::read(fx::keyset_path()).expect("fixture");
    seed("keyset", "seed-0", &full);
    let set = fx::keyset();
    for (i, k) in set.keys.iter().enumerate() {
        let one = KeySet {
            keys: vec![k.clone()],
        };
        seed(
            "keyset",
            &format!("seed-{}", i + 1),
            one.to_json().as_bytes(),
        );
    }
    seed("keyset", "seed-empty", br#"{"keys":[]}"#);
}
