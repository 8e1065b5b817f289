//! The OAuthClient reconcile: resolve the provider, enforce its namespace policy, keep the
//! credentials Secret, register with the admin API (deregistering first from a provider the
//! client left), report status. A finalizer deregisters the client on deletion, and lets go
//! when the provider itself is gone.

use super::admin::{base_url, AdminError};
use super::credentials::{self, Credentials};
use super::events::transition_event;
use super::policy::namespace_allowed;
use super::registered_with::{deregister_at, held_by, provider_key, split_key, to_leave};
use crate::apply::{needs_apply, stamp};
use crate::context::Context;
use crate::crd::{AuthProvider, OAuthClient, OAuthClientStatus};
use crate::owned_cache::Cached;
use crate::provider::desired::discovery_url;
use crate::provider::status::{merge, Verdict};
use crate::render::owner::Owner;
use crate::render::secrets::{admin_token_from_secret, internal_secret_name};
use crate::status_patch::replace_status;
use chrono::Utc;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::ResourceExt;
use palisade_wire::registration::{hash_client_secret, ClientRegistration};
use std::sync::Arc;
use std::time::Duration;

/// Finalizer that deregisters the client before the OAuthClient goes away.
pub const FINALIZER: &str = "auth.palisade.dev/deregister";

/// Reconcile errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
    #[error("the OAuthClient has no namespace")]
    NotStored,
    #[error("could not deregister: {0}")]
    Deregister(AdminError),
}

/// Why a client is not registered, as a Ready=False verdict.
fn not_ready(reason: &'static str, message: String) -> Verdict {
    Verdict {
        type_: "Ready",
        ok: false,
        reason,
        message,
    }
}

/// Reconciles one OAuthClient (through the finalizer helper).
pub async fn reconcile(client: Arc<OAuthClient>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started("oauthclient");
    let key = crate::backoff::key(client.as_ref());
    let ns = client.namespace().ok_or(Error::NotStored)?;
    let api: Api<OAuthClient> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, client, |event| async {
        match event {
            Finalizer::Apply(c) => apply(c, ctx.clone()).await,
            Finalizer::Cleanup(c) => cleanup(c, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    result
}

struct Resolved {
    provider: AuthProvider,
    admin_base: String,
    admin_token: Option<String>,
}

/// The namespace and name of the AuthProvider the client's spec names.
fn spec_provider(client: &OAuthClient) -> (String, String) {
    let ns = client.namespace().unwrap_or_default();
    let provider_ns = client.spec.provider_ref.namespace.clone().unwrap_or(ns);
    (provider_ns, client.spec.provider_ref.name.clone())
}

async fn resolve_provider(
    provider_ns: &str,
    name: &str,
    ctx: &Context,
) -> Result<Option<Resolved>, kube::Error> {
    let provider = match ctx.cached_provider(provider_ns, name) {
        Some(cached) => cached.as_ref().clone(),
        None => match Api::<AuthProvider>::namespaced(ctx.client.clone(), provider_ns)
            .get_opt(name)
            .await?
        {
            Some(p) => p,
            None => return Ok(None),
        },
    };
    let admin_token = match (Owner::of(&provider), provider.uid()) {
        (Some(owner), Some(uid)) => {
            let cached = ctx.admin_tokens.lock().unwrap().get(&uid).cloned();
            match cached {
                Some(token) => Some(token),
                None => {
                    let token = Api::<Secret>::namespaced(ctx.client.clone(), provider_ns)
                        .get_opt(&internal_secret_name(&owner))
                        .await?
                        .as_ref()
                        .and_then(admin_token_from_secret);
                    if let Some(t) = &token {
                        ctx.admin_tokens.lock().unwrap().insert(uid, t.clone());
                    }
                    token
                }
            }
        }
        _ => None,
    };
    let admin_base = base_url(
        ctx.config.admin_endpoint_override.as_deref(),
        provider_ns,
        &provider.name_any(),
    );
    Ok(Some(Resolved {
        provider,
        admin_base,
        admin_token,
    }))
}

/// Whether applying `desired` over `live` would write (the Secret's content changed).
fn would_write(desired: Option<Secret>, live: &Secret) -> bool {
    desired.is_some_and(|mut d| needs_apply(Some(live), &stamp(&mut d)))
}

/// When to look again at a client whose provider could not take its registration: soon when
/// the provider says it is Ready (its admin API should answer any moment), rarely otherwise —
/// the provider becoming Ready wakes its clients through the watch.
fn retry_after(provider: Option<&AuthProvider>) -> Action {
    match provider {
        Some(p) if p.status.as_ref().is_some_and(|s| s.is_ready()) => {
            Action::requeue(Duration::from_secs(5))
        }
        _ => Action::requeue(Duration::from_secs(60)),
    }
}

/// Forgets a provider's cached admin token after its admin API refused it (the internal Secret
/// was regenerated): the next reconcile reads it again.
fn forget_refused_token(ctx: &Context, provider: &AuthProvider, error: &AdminError) {
    if error.refused_credentials() {
        if let Some(uid) = provider.uid() {
            ctx.admin_tokens.lock().unwrap().remove(&uid);
        }
    }
}

/// What deregistering from a provider came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deregistered {
    /// The provider's admin API removed the registration.
    Removed,
    /// The provider is gone or being deleted, and its registrations with it.
    ProviderGone,
}

/// Deregisters `client_id` from the provider `key` (`<namespace>/<name>`). A provider that is
/// alive but whose admin token is not known yet fails with [`AdminError::NoToken`]: its pods
/// may still hold the registration.
async fn deregister(ctx: &Context, key: &str, client_id: &str) -> Result<Deregistered, Error> {
    let Some((namespace, name)) = split_key(key) else {
        return Ok(Deregistered::ProviderGone);
    };
    let Some(resolved) = resolve_provider(namespace, name, ctx).await? else {
        return Ok(Deregistered::ProviderGone);
    };
    if resolved.provider.metadata.deletion_timestamp.is_some() {
        return Ok(Deregistered::ProviderGone);
    }
    let token = resolved
        .admin_token
        .ok_or(Error::Deregister(AdminError::NoToken))?;
    ctx.admin
        .delete_client(&resolved.admin_base, &token, client_id)
        .await
        .map_err(|e| {
            forget_refused_token(ctx, &resolved.provider, &e);
            Error::Deregister(e)
        })?;
    Ok(Deregistered::Removed)
}

/// How leaving the provider that held a client's registration went.
enum Leaving {
    /// Nothing to leave: no provider to leave was given, or the client has no ID yet.
    Stay,
    /// The old provider no longer holds it (`removed`: its admin API removed it now).
    Left { removed: bool },
    /// Removing it failed; the old provider still holds it.
    Pending(AdminError),
}

/// Deregisters the client from `old`, a provider it left (moved away from, or refused by),
/// with a Normal Event when a registration was removed.
async fn leave(
    ctx: &Context,
    client: &OAuthClient,
    old: Option<&str>,
    client_id: Option<&str>,
    why: &str,
) -> Result<Leaving, Error> {
    let (Some(old), Some(id)) = (old, client_id) else {
        return Ok(Leaving::Stay);
    };
    match deregister(ctx, old, id).await {
        Ok(outcome) => {
            let removed = outcome == Deregistered::Removed;
            if removed {
                ctx.event(
                    client,
                    EventType::Normal,
                    "Deregistered",
                    "Deregister",
                    format!("deregistered client {id} from AuthProvider {old}: {why}"),
                );
            }
            Ok(Leaving::Left { removed })
        }
        Err(Error::Deregister(e)) => Ok(Leaving::Pending(e)),
        Err(e) => Err(e),
    }
}

/// For a client that cannot register now (its provider is missing or refuses it): leaves
/// `old`, tells how that went at the end of `msg`, and returns the provider still holding the
/// registration afterwards and whether to try again soon.
async fn leave_noting(
    ctx: &Context,
    client: &OAuthClient,
    old: Option<String>,
    client_id: Option<&str>,
    why: &str,
    msg: &mut String,
) -> Result<(Option<String>, bool), Error> {
    let id = client_id.unwrap_or_default();
    let at = old.as_deref().unwrap_or_default();
    Ok(
        match leave(ctx, client, old.as_deref(), client_id, why).await? {
            Leaving::Stay => (old, false),
            Leaving::Left { removed } => {
                if removed {
                    msg.push_str(&format!(
                        "; client {id} was deregistered from AuthProvider {at}"
                    ));
                }
                (None, false)
            }
            Leaving::Pending(e) => {
                msg.push_str(&format!(
                    "; deregistering client {id} from AuthProvider {at} failed ({e}), will retry"
                ));
                (old, true)
            }
        },
    )
}

/// The client ID in `live` when another OAuthClient's status records it. Asked only for a
/// client whose own status records no ID (the recorded one is always its own): such a client
/// takes the ID from its Secret, and a Secret anyone can create in its namespace must not
/// hand it another client's registration.
async fn taken_elsewhere(
    ctx: &Context,
    previous: &OAuthClientStatus,
    live: Option<&Secret>,
    uid: &str,
) -> Option<String> {
    if previous.client_id.is_some() {
        return None;
    }
    let id = credentials::client_id_in(live?)?;
    ctx.client_id_held_elsewhere(&id, uid).await.then_some(id)
}

/// The registration payload for the client's spec and credentials.
pub fn registration(client: &OAuthClient, creds: &Credentials) -> ClientRegistration {
    let spec = &client.spec;
    ClientRegistration {
        client_id: creds.client_id.clone(),
        client_name: Some(
            spec.client_name
                .clone()
                .unwrap_or_else(|| client.name_any()),
        ),
        redirect_uris: spec.redirect_uris.iter().map(|u| u.0.clone()).collect(),
        post_logout_redirect_uris: spec
            .post_logout_redirect_uris
            .iter()
            .map(|u| u.0.clone())
            .collect(),
        grant_types: spec.grant_types.clone(),
        scopes: spec.scopes.iter().map(|s| s.0.clone()).collect(),
        token_endpoint_auth_method: spec.token_endpoint_auth_method,
        public: spec.public,
        client_secret_hash: creds.client_secret.as_deref().map(hash_client_secret),
    }
}

async fn apply(client: Arc<OAuthClient>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = client.namespace().ok_or(Error::NotStored)?;
    let name = client.name_any();
    let previous = client.status.clone().unwrap_or_default();
    let (spec_ns, spec_name) = spec_provider(&client);
    let target = provider_key(&spec_ns, &spec_name);
    // Where the registration may be, for deciding whether to deregister; status records only
    // what is known (`recorded`), never the guess for statuses from before the field.
    let held = held_by(&previous, &target);
    let mut recorded = previous.registered_with.clone();

    let Some(resolved) = resolve_provider(&spec_ns, &spec_name, &ctx).await? else {
        let mut msg = format!(
            "AuthProvider {spec_name} not found in namespace {spec_ns}; create it or fix spec.providerRef"
        );
        // A client moved to a provider that does not exist (yet) leaves the old one all the same.
        let (left, soon) = match to_leave(held.as_deref(), &target) {
            Some(old) => {
                let why = format!("the client moved to {target}, which does not exist");
                leave_noting(
                    &ctx,
                    &client,
                    Some(old),
                    previous.client_id.as_deref(),
                    &why,
                    &mut msg,
                )
                .await?
            }
            None => (recorded, false),
        };
        let retry = if soon {
            Action::requeue(Duration::from_secs(10))
        } else {
            retry_after(None)
        };
        let verdict = not_ready("ProviderNotFound", msg);
        return finish(&client, &ctx, &previous, verdict, None, left, retry).await;
    };
    let provider_ns = resolved.provider.namespace().unwrap_or_default();

    let ns_labels = if provider_ns == ns {
        Default::default()
    } else {
        Api::<Namespace>::all(ctx.client.clone())
            .get_opt(&ns)
            .await?
            .and_then(|n| n.metadata.labels)
            .unwrap_or_default()
    };
    if !namespace_allowed(
        &resolved.provider.spec.client_namespaces,
        &provider_ns,
        &ns,
        &ns_labels,
    ) {
        let mut msg = format!(
            "AuthProvider {provider_ns}/{} does not accept clients from namespace {ns}; change its spec.clientNamespaces",
            resolved.provider.name_any()
        );
        // A registration made before the refusal must not keep working.
        let why = "the provider does not accept clients from this namespace";
        let (left, soon) = leave_noting(
            &ctx,
            &client,
            held,
            previous.client_id.as_deref(),
            why,
            &mut msg,
        )
        .await?;
        let retry = Action::requeue(Duration::from_secs(if soon { 10 } else { 60 }));
        let verdict = not_ready("NamespaceNotAllowed", msg);
        return finish(&client, &ctx, &previous, verdict, None, left, retry).await;
    }

    // A client moved to another provider leaves the old one first, before anything about its
    // Secret can stop the reconcile: a client never keeps working at a provider it left.
    let old = to_leave(held.as_deref(), &target);
    let why = format!("the client moved to {target}");
    match leave(
        &ctx,
        &client,
        old.as_deref(),
        previous.client_id.as_deref(),
        &why,
    )
    .await?
    {
        Leaving::Stay => {}
        Leaving::Left { .. } => recorded = None,
        Leaving::Pending(e) => {
            let id = previous.client_id.as_deref().unwrap_or_default();
            let old = old.unwrap_or_default();
            let verdict = not_ready(
                "DeregistrationPending",
                format!("client {id} is still registered with AuthProvider {old}, which could not deregister it ({e}); it registers with {target} once that registration is removed or {old} is deleted"),
            );
            let retry = Action::requeue(Duration::from_secs(30));
            return finish(&client, &ctx, &previous, verdict, None, recorded, retry).await;
        }
    }

    // Credentials: kept from the client's own Secret, generated only when missing. A Secret of
    // that name that the client does not control is left alone (see `controlled_by`).
    let secret_name = credentials::secret_name(&client);
    let uid = client.uid().unwrap_or_default();
    let conflict = || {
        not_ready(
            "SecretConflict",
            format!("Secret {secret_name} already exists and was not created for this OAuthClient; delete it or set spec.secretName to another name"),
        )
    };
    let issuer = resolved.provider.spec.issuer.clone();
    let discovery = discovery_url(&issuer);
    let decide_on = |live: Option<&Secret>, secret_id_taken: bool| {
        let creds = credentials::decide(
            live,
            previous.client_id.as_deref(),
            secret_id_taken,
            client.spec.public,
            &ns,
            &name,
        );
        let desired = credentials::render(&client, &creds, &issuer, &discovery);
        (creds, desired)
    };
    // The values known for the cached version settle it without a GET, unless the Secret
    // would be written (see `known_credentials`).
    let recalled = match ctx.applier.cache().get::<Secret>(&ns, &secret_name) {
        Cached::Present(cached) if credentials::controlled_by(&cached, &uid) => {
            ctx.known_credentials.recall(&ns, &cached)
        }
        _ => None,
    };
    let settled = match recalled {
        Some(live)
            if taken_elsewhere(&ctx, &previous, Some(&live), &uid)
                .await
                .is_none() =>
        {
            let (creds, desired) = decide_on(Some(&live), false);
            (!would_write(desired, &live)).then_some(creds)
        }
        _ => None,
    };
    let creds = match settled {
        Some(creds) => creds,
        None => {
            // Read from the API server, not a cache: the cache of Secrets is filled by another
            // watch than the one that woke this reconcile, and a deleted Secret (a requested
            // rotation) must be seen as deleted.
            let live = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
                .get_opt(&secret_name)
                .await?;
            if live
                .as_ref()
                .is_some_and(|l| !credentials::controlled_by(l, &uid))
            {
                let retry = Action::requeue(Duration::from_secs(60));
                return finish(&client, &ctx, &previous, conflict(), None, recorded, retry).await;
            }
            if let Some(live) = &live {
                ctx.known_credentials.remember(&ns, live);
            }
            let taken = taken_elsewhere(&ctx, &previous, live.as_ref(), &uid).await;
            if let Some(id) = &taken {
                ctx.event(
                    client.as_ref(),
                    EventType::Warning,
                    "ClientIdInUse",
                    "Create",
                    format!("Secret {secret_name} holds client_id {id}, which another OAuthClient uses; this client gets a new client_id"),
                );
            }
            let (creds, desired) = decide_on(live.as_ref(), taken.is_some());
            let rotated = live.is_some()
                && creds.client_secret.is_some()
                && live
                    .as_ref()
                    .and_then(|s| s.data.as_ref())
                    .is_some_and(|d| !d.contains_key(credentials::CLIENT_SECRET_KEY));
            // An edited client_id is written back: the operator's content did not change, so
            // the applied-content hash alone would not write.
            let over = live.as_ref().filter(|l| !credentials::id_edited(l, &creds));
            if let Some(secret) = desired {
                if let Some(applied) = ctx.applier.apply_over(&ns, secret, over).await? {
                    ctx.known_credentials.remember(&ns, &applied);
                    if live.is_none() {
                        ctx.event(
                            client.as_ref(),
                            EventType::Normal,
                            "CredentialsCreated",
                            "Create",
                            format!("wrote client credentials to Secret {secret_name}"),
                        );
                    }
                }
            }
            if rotated {
                ctx.event(
                    client.as_ref(),
                    EventType::Normal,
                    "SecretRotated",
                    "Rotate",
                    format!("generated a new client_secret in Secret {secret_name}"),
                );
            }
            creds
        }
    };

    // Registration (idempotent; repeated at every resync so a wiped database heals).
    let registered = match &resolved.admin_token {
        None => Err(format!(
            "AuthProvider {provider_ns}/{} has no admin token yet; waiting for it to be reconciled",
            resolved.provider.name_any()
        )),
        Some(token) => ctx
            .admin
            .put_client(&resolved.admin_base, token, &registration(&client, &creds))
            .await
            .map_err(|e| {
                forget_refused_token(&ctx, &resolved.provider, &e);
                format!("could not register with the provider's admin API ({e}); will retry")
            }),
    };
    if let Err(msg) = registered {
        let verdict = not_ready("ProviderUnavailable", msg);
        let retry = retry_after(Some(&resolved.provider));
        return finish(
            &client,
            &ctx,
            &previous,
            verdict,
            Some(&creds),
            recorded,
            retry,
        )
        .await;
    }
    let ok = Verdict {
        type_: "Ready",
        ok: true,
        reason: "Registered",
        message: format!("registered as {} with issuer {issuer}", creds.client_id),
    };
    finish(
        &client,
        &ctx,
        &previous,
        ok,
        Some(&creds),
        Some(target),
        Action::requeue(ctx.config.client_resync),
    )
    .await
}

async fn finish(
    client: &OAuthClient,
    ctx: &Context,
    previous: &OAuthClientStatus,
    verdict: Verdict,
    creds: Option<&Credentials>,
    registered_with: Option<String>,
    action: Action,
) -> Result<Action, Error> {
    let generation = client.metadata.generation;
    let status = OAuthClientStatus {
        observed_generation: generation,
        client_id: creds
            .map(|c| c.client_id.clone())
            .or(previous.client_id.clone()),
        secret_name: creds
            .map(|_| credentials::secret_name(client))
            .or(previous.secret_name.clone()),
        registered_with,
        conditions: merge(
            &previous.conditions,
            std::slice::from_ref(&verdict),
            generation,
            Utc::now(),
        ),
    };
    if status != *previous {
        let was = previous
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| (c.status.as_str(), c.reason.as_str()));
        let event = transition_event(was, &verdict);
        let api: Api<OAuthClient> =
            Api::namespaced(ctx.client.clone(), &client.namespace().unwrap_or_default());
        ctx.metrics.count_write("OAuthClient", "patch_status");
        api.patch_status(
            &client.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&replace_status(Some(previous), &status)),
        )
        .await?;
        if let Some(type_) = event {
            ctx.event(
                client,
                type_,
                verdict.reason,
                "Register",
                verdict.message.clone(),
            );
        }
    }
    Ok(action)
}

async fn cleanup(client: Arc<OAuthClient>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.known_credentials.forget(
        &client.namespace().unwrap_or_default(),
        &credentials::secret_name(&client),
    );
    let status = client.status.clone().unwrap_or_default();
    let (spec_ns, spec_name) = spec_provider(&client);
    let (Some(client_id), Some(at)) = (
        status.client_id.clone(),
        deregister_at(&status, &provider_key(&spec_ns, &spec_name)),
    ) else {
        return Ok(Action::await_change());
    };
    match deregister(&ctx, &at, &client_id).await {
        Ok(Deregistered::Removed) => {
            ctx.event(
                client.as_ref(),
                EventType::Normal,
                "Deregistered",
                "Deregister",
                format!("deregistered client {client_id}"),
            );
        }
        Ok(Deregistered::ProviderGone) => {
            // The provider is gone, so is the registration: let go.
            ctx.event(
                client.as_ref(),
                EventType::Warning,
                "ProviderGone",
                "Deregister",
                format!("AuthProvider {at} is gone; nothing to deregister for client {client_id}"),
            );
        }
        // A client never recorded as registered (it waited for a provider still starting)
        // holds nothing there; one that was keeps its finalizer until the token is back.
        Err(Error::Deregister(AdminError::NoToken)) if status.registered_with.is_none() => {}
        Err(e) => return Err(e),
    }
    Ok(Action::await_change())
}

/// Retry policy after an error.
pub fn error_policy(client: Arc<OAuthClient>, error: &Error, ctx: Arc<Context>) -> Action {
    let retry = ctx.backoff.failed(
        crate::backoff::key(client.as_ref()),
        std::time::Instant::now(),
    );
    tracing::warn!(%error, retry_in_seconds = retry.as_secs(), "OAuthClient reconcile failed");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&crate::metrics::ErrorLabels {
            controller: "oauthclient",
            reason: "error".into(),
        })
        .inc();
    Action::requeue(retry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(value: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("app-oauth".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                credentials::CLIENT_SECRET_KEY.to_string(),
                ByteString(value.as_bytes().to_vec()),
            )])),
            ..Default::default()
        }
    }

    #[test]
    fn only_a_changed_secret_would_be_written() {
        let mut live = secret("s3cret");
        stamp(&mut live);
        assert!(!would_write(Some(secret("s3cret")), &live));
        assert!(would_write(Some(secret("rotated")), &live));
        assert!(!would_write(None, &live), "nothing to write");
        let unstamped = secret("s3cret");
        assert!(
            would_write(Some(secret("s3cret")), &unstamped),
            "a Secret not applied by the operator is applied"
        );
    }
}
