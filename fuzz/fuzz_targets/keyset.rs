//! The key-set file the operator mounts: `KeySet::from_json` (wire) and `LoadedKeys::new`
//! (auth-server), with the invariants the schedule promises and a sign/verify round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_auth_server::keys::{decoding_key, LoadedKeys};
use palisade_auth_server::tokens::{verify, ACCESS_TOKEN_TYP};
use palisade_fuzz as fx;
use palisade_wire::keyset::{KeySet, PublicJwk};

fuzz_target!(init: fx::init(), |data: &[u8]| {
    let Ok(set) = KeySet::from_json(data) else {
        return;
    };
    let mut kids = std::collections::HashSet::new();
    for k in &set.keys {
        assert!(k.publish_at <= k.activate_at && k.activate_at <= k.retire_at);
        assert!(k.retire_at <= k.delete_at);
        assert!(kids.insert(k.kid.as_str()), "duplicate kid {}", k.kid);
    }
    // What we write we read back unchanged.
    let again = KeySet::from_json(set.to_json().as_bytes()).expect("round trip");
    assert_eq!(again, set);
    let now = fx::now();
    if let Some(k) = set.signing_key(now) {
        assert!(k.can_sign(now) && k.is_published(now));
    }
    if let Some(t) = set.next_change_after(now) {
        assert!(t > now);
    }
    let Ok(loaded) = LoadedKeys::new(set) else {
        return;
    };
    let jwks = loaded.jwks(now);
    let published = loaded.set.published(now).count();
    let listed = jwks["keys"].as_array().expect("keys array");
    assert_eq!(listed.len(), published);
    for jwk in listed {
        let jwk: PublicJwk = serde_json::from_value(jwk.clone()).expect("our JWKS parses");
        assert!(decoding_key(&jwk).is_some(), "published key cannot verify");
    }
    assert_eq!(loaded.jwks_json(now), serde_json::to_vec(&jwks).unwrap());
    // The signing key signs tokens that verify.
    if loaded.set.signing_key(now).is_some() {
        let claims = fx::access_claims();
        let token = loaded
            .sign(&claims, ACCESS_TOKEN_TYP, now)
            .expect("a signing key signs");
        assert_eq!(verify(&loaded, fx::ISSUER, &token, now), Ok(claims));
    }
});
