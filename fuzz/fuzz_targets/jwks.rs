//! A JWKS document: each key parsed as the wire type `PublicJwk` and turned into a
//! verification key by `keys::decoding_key`; each key is then paired with a fixture private
//! key of its type and loaded as the auth-server loads a key set, which must refuse any
//! public key that is not the private key's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_auth_server::keys::{decoding_key, LoadedKeys};
use palisade_fuzz as fx;
use palisade_wire::keyset::{KeySet, PublicJwk};

fuzz_target!(init: fx::init(), |data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Some(list) = doc.get("keys").and_then(|k| k.as_array()) else {
        return;
    };
    for value in list.iter().take(4) {
        let Ok(jwk) = serde_json::from_value::<PublicJwk>(value.clone()) else {
            continue;
        };
        let Some(_) = decoding_key(&jwk) else {
            continue;
        };
        let Some(original) = fx::keyset()
            .keys
            .iter()
            .find(|k| k.public_jwk.kty == jwk.kty && k.is_published(fx::now()))
        else {
            continue;
        };
        let swapped = palisade_wire::keyset::SigningKey {
            public_jwk: jwk.clone(),
            ..original.clone()
        };
        if let Ok(loaded) = LoadedKeys::new(KeySet {
            keys: vec![swapped],
        }) {
            // Accepted: the JWK is the private key's public half, so it verifies what the
            // key signs.
            let claims = fx::access_claims();
            let token = loaded
                .sign(&claims, palisade_auth_server::tokens::ACCESS_TOKEN_TYP, fx::now())
                .expect("a loaded key signs within its window");
            let verified =
                palisade_auth_server::tokens::verify(&loaded, fx::ISSUER, &token, fx::now());
            assert_eq!(verified, Ok(claims));
        }
    }
});
