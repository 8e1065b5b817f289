//! Applies the rotation schedule (`crate::keys::schedule`) to Secret `x-signing-keys`: creates
//! it once, rewrites it only when the key set changes, and handles emergency rotation requests.

use super::settled_keys::{Settled, SettledKeys};
use crate::apply::Applier;
use crate::keys::schedule::{plan, Policy};
use crate::owned_cache::Cached;
use crate::render::owner::Owner;
use crate::render::secrets::{
    key_set_from_secret, render_signing_keys_secret, signing_keys_secret_name,
};
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::ResourceExt;
use palisade_wire::keyset::{GeneratedKey, KeySet};

/// Annotation on the AuthProvider asking for an emergency rotation; each new value triggers
/// exactly one.
pub const ROTATE_ANNOTATION: &str = "auth.palisade.dev/rotate-keys";
/// Annotation on the key Secret recording the last request handled. It is written together
/// with the new key set, so a crash can never rotate twice for one request.
pub const ROTATE_HANDLED_ANNOTATION: &str = "auth.palisade.dev/rotate-keys-handled";

/// Whether the AuthProvider asks for a rotation not yet handled.
pub fn emergency_requested(requested: Option<&str>, handled: Option<&str>) -> bool {
    matches!(requested, Some(r) if Some(r) != handled)
}

/// Result of the key step.
#[derive(Clone, Debug)]
pub struct KeysOutcome {
    pub active_kid: String,
    /// When the active key stops signing.
    pub until: DateTime<Utc>,
    /// Next instant the schedule must run.
    pub next_wake: DateTime<Utc>,
    /// The set was written (created or rotated).
    pub written: bool,
    /// An emergency rotation was performed now.
    pub emergency: bool,
    /// When the active key started signing.
    pub active_since: DateTime<Utc>,
}

/// Errors of the key step.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("Secret {0} holds a key set that cannot be read ({1}); fix or delete the Secret")]
    Invalid(String, String),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// Generates keys for the schedule. An RSA key takes a good part of a second, so on the
/// operator's multi-threaded runtime the worker hands its other tasks over meanwhile.
fn generator() -> impl FnMut(palisade_wire::keyset::Algorithm) -> GeneratedKey {
    |alg| {
        let generate =
            || GeneratedKey::generate(alg).expect("key generation uses the OS random source");
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(generate)
            }
            _ => generate(),
        }
    }
}

fn with_handled(mut secret: Secret, handled: Option<&str>) -> Secret {
    if let Some(value) = handled {
        secret
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ROTATE_HANDLED_ANNOTATION.into(), value.into());
    }
    secret
}

/// Ensures the key Secret holds the set the schedule wants at `now`. Reads the Secret from
/// the API server unless `settled` holds the answer for the cached copy's version.
pub async fn ensure_keys(
    applier: &Applier,
    settled: &SettledKeys,
    owner: &Owner,
    policy: &Policy,
    rotate_request: Option<&str>,
    now: DateTime<Utc>,
) -> Result<KeysOutcome, KeysError> {
    let name = signing_keys_secret_name(owner);
    let ns = &owner.namespace;
    if let Cached::Present(cached) = applier.cache().get::<Secret>(ns, &name) {
        let handled = cached
            .annotations()
            .get(ROTATE_HANDLED_ANNOTATION)
            .map(String::as_str);
        let emergency = emergency_requested(rotate_request, handled);
        let version = cached.resource_version();
        if let Some(outcome) = settled.recall(ns, &name, version.as_deref(), policy, emergency, now)
        {
            return Ok(outcome);
        }
    }
    let outcome = decide_keys(applier, owner, &name, policy, rotate_request, now).await;
    // An answer that wrote nothing holds for the version read until the set's next instant.
    let kept = match &outcome {
        Ok((k, Some(version))) if !k.written => Some(Settled::new(version.clone(), *policy, k)),
        _ => None,
    };
    settled.keep(ns, &name, kept);
    outcome.map(|(k, _)| k)
}

/// The key step on the Secret as the API server has it, with the resourceVersion it read
/// (`None`: there was no Secret).
async fn decide_keys(
    applier: &Applier,
    owner: &Owner,
    name: &str,
    policy: &Policy,
    rotate_request: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(KeysOutcome, Option<String>), KeysError> {
    let name = name.to_string();
    let api: Api<Secret> = Api::namespaced(applier.client().clone(), &owner.namespace);
    let live = api.get_opt(&name).await?;
    let read_version = live.as_ref().and_then(|l| l.resource_version());
    let mut gen = generator();
    let (keys, written, emergency) = match live {
        None => {
            // First key set. A rotation request that predates the provider is already satisfied.
            let p = plan(&KeySet::default(), policy, now, false, &mut gen);
            let secret = with_handled(render_signing_keys_secret(owner, &p.keys), rotate_request);
            let was_created = applier.create_if_absent(&owner.namespace, secret).await?;
            let keys = if was_created {
                p.keys
            } else {
                // Created meanwhile by someone else (a previous leader): use theirs.
                read(&api.get(&name).await?, &name)?
            };
            (keys, was_created, false)
        }
        Some(live) => {
            let stored = read(&live, &name)?;
            let handled = live
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ROTATE_HANDLED_ANNOTATION))
                .map(String::as_str);
            let emergency = emergency_requested(rotate_request, handled);
            let p = plan(&stored, policy, now, emergency, &mut gen);
            if p.changed || emergency {
                let mut secret = with_handled(
                    render_signing_keys_secret(owner, &p.keys),
                    rotate_request.or(handled),
                );
                secret.metadata.resource_version = live.metadata.resource_version.clone();
                // Keep annotations others put on the Secret (only ours are overwritten).
                if let Some(existing) = &live.metadata.annotations {
                    let ann = secret
                        .metadata
                        .annotations
                        .get_or_insert_with(Default::default);
                    for (k, v) in existing {
                        ann.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                applier.replace(&owner.namespace, &secret).await?;
                (p.keys, true, emergency)
            } else {
                (stored, false, false)
            }
        }
    };
    let active = keys
        .signing_key(now)
        .ok_or_else(|| KeysError::Invalid(name.clone(), "no key can sign now".into()))?;
    let outcome = KeysOutcome {
        active_kid: active.kid.clone(),
        until: active.retire_at,
        active_since: active.activate_at,
        // Publishing, activation, retirement and deletion instants all deserve a look.
        next_wake: keys.next_change_after(now).unwrap_or(active.retire_at),
        written,
        emergency,
    };
    Ok((outcome, read_version))
}

fn read(secret: &Secret, name: &str) -> Result<KeySet, KeysError> {
    match key_set_from_secret(secret) {
        Some(Ok(keys)) => Ok(keys),
        Some(Err(e)) => Err(KeysError::Invalid(name.into(), e.to_string())),
        None => Err(KeysError::Invalid(
            name.into(),
            "the keyset.json key is missing".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_annotation_value_asks_for_one_rotation() {
        assert!(!emergency_requested(None, None));
        assert!(emergency_requested(Some("2026-11-23"), None));
        assert!(!emergency_requested(Some("2026-11-23"), Some("2026-11-23")));
        assert!(emergency_requested(Some("again"), Some("2026-11-23")));
    }
}
