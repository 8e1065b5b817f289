//! The two Secrets the operator generates for a provider:
//! - `x-internal`: admin API token, cookie/session key and password pepper;
//! - `x-signing-keys`: the signing key set (format: [`palisade_wire::keyset`]).
//!
//! Both are created once (see `apply::create_if_absent`). A deleted `x-internal` is generated
//! again with a Warning Event; the key set's own rules are in `provider/keys.rs`.

use super::owner::Owner;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use palisade_wire::contract::{
    INTERNAL_ADMIN_TOKEN_KEY, INTERNAL_COOKIE_KEY, INTERNAL_PASSWORD_PEPPER_KEY, KEYSET_SECRET_KEY,
};
use palisade_wire::keyset::KeySet;
use palisade_wire::registration::random_token;
use std::collections::BTreeMap;

/// Name of a provider's internal Secret.
pub fn internal_secret_name(owner: &Owner) -> String {
    owner.child_name("internal")
}

/// Name of a provider's signing-key Secret.
pub fn signing_keys_secret_name(owner: &Owner) -> String {
    owner.child_name("signing-keys")
}

/// The random values of the internal Secret.
pub struct InternalTokens {
    pub admin_token: String,
    pub cookie_key: String,
    pub password_pepper: String,
}

impl InternalTokens {
    /// Fresh 256-bit random values.
    pub fn generate() -> Self {
        InternalTokens {
            admin_token: random_token(32),
            cookie_key: random_token(32),
            password_pepper: random_token(32),
        }
    }
}

fn secret(owner: &Owner, name: String, data: BTreeMap<String, ByteString>) -> Secret {
    Secret {
        metadata: owner.meta(name, "auth-server"),
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    }
}

/// Renders `x-internal` from the given values.
pub fn render_internal_secret(owner: &Owner, tokens: &InternalTokens) -> Secret {
    let data = BTreeMap::from([
        (
            INTERNAL_ADMIN_TOKEN_KEY.to_string(),
            ByteString(tokens.admin_token.clone().into_bytes()),
        ),
        (
            INTERNAL_COOKIE_KEY.to_string(),
            ByteString(tokens.cookie_key.clone().into_bytes()),
        ),
        (
            INTERNAL_PASSWORD_PEPPER_KEY.to_string(),
            ByteString(tokens.password_pepper.clone().into_bytes()),
        ),
    ]);
    secret(owner, internal_secret_name(owner), data)
}

/// Renders `x-signing-keys` holding `keys`.
pub fn render_signing_keys_secret(owner: &Owner, keys: &KeySet) -> Secret {
    let data = BTreeMap::from([(
        KEYSET_SECRET_KEY.to_string(),
        ByteString(keys.to_json().into_bytes()),
    )]);
    secret(owner, signing_keys_secret_name(owner), data)
}

/// Reads the key set back from a live `x-signing-keys` Secret.
pub fn key_set_from_secret(
    secret: &Secret,
) -> Option<Result<KeySet, palisade_wire::keyset::KeySetError>> {
    let bytes = secret.data.as_ref()?.get(KEYSET_SECRET_KEY)?;
    Some(KeySet::from_json(&bytes.0))
}

/// Reads the admin token from a live `x-internal` Secret.
pub fn admin_token_from_secret(secret: &Secret) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(INTERNAL_ADMIN_TOKEN_KEY)?;
    String::from_utf8(bytes.0.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::owner::fixtures::owner;
    use palisade_wire::keyset::{Algorithm, GeneratedKey};

    #[test]
    fn internal_secret_holds_three_distinct_random_values() {
        let tokens = InternalTokens::generate();
        let s = render_internal_secret(&owner(), &tokens);
        assert_eq!(s.metadata.name.as_deref(), Some("dev-internal"));
        let data = s.data.as_ref().unwrap();
        assert_eq!(data.len(), 3);
        let token = admin_token_from_secret(&s).unwrap();
        assert_eq!(token, tokens.admin_token);
        assert_eq!(token.len(), 43);
        assert_ne!(data["cookie-key"], data["password-pepper"]);
    }

    #[test]
    fn signing_key_secret_round_trips_the_key_set() {
        let now = chrono::Utc::now();
        let key = GeneratedKey::generate(Algorithm::ES256)
            .unwrap()
            .schedule(now, now, now, now);
        let set = KeySet { keys: vec![key] };
        let s = render_signing_keys_secret(&owner(), &set);
        assert_eq!(s.metadata.name.as_deref(), Some("dev-signing-keys"));
        assert_eq!(key_set_from_secret(&s).unwrap().unwrap(), set);
    }
}
