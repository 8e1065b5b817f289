//! `/upstream/{name}/start` and `/upstream/{name}/callback`: signing in through an upstream
//! OpenID provider (federation).
//!
//! Start (a form POST from the sign-in page, CSRF-checked like the password form) stores the
//! sign-in's nonce, PKCE verifier and parked request under the hash of a random `state`, binds
//! that state to the browser with a sealed cookie, and redirects to the upstream. The callback
//! accepts the state once, only from the same browser, exchanges the code, validates the ID
//! token, links or creates the local user, starts a session (`amr: ["fed"]`) and finishes the
//! parked authorization exactly as a password sign-in does. Every failure shows one generic
//! page and logs a structured reason, never a token, code or secret.

use super::html;
use super::login::{live_pending, set_cookie, sign_in_form, signed_in};
use crate::audit::{AuditEvent, AuditRecord, Outcome};
use crate::cookies::UPSTREAM_COOKIE;
use crate::federation::linking::{self, Link};
use crate::federation::upstream::Upstream;
use crate::federation::FederationError;
use crate::metrics::FederatedLoginLabels;
use crate::state::AppState;
use crate::store::{secret_hash, UpstreamLogin, User};
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use chrono::{DateTime, Utc};
use palisade_wire::contract::upstream_callback_path;
use palisade_wire::registration::random_token;
use std::collections::HashMap;
use subtle::ConstantTimeEq;

/// How long a sign-in at an upstream may take, from the redirect to the callback.
pub const UPSTREAM_LOGIN_TTL_SECS: i64 = 10 * 60;
/// The `amr` value of a federated sign-in. RFC 8176 registers none for federation; `fed` is
/// Palisade's (docs/decisions.md): the upstream authenticated the user, by its own methods.
pub const AMR_FEDERATED: &str = crate::auth_methods::FEDERATED;
/// Longest `code` accepted from an upstream.
const MAX_CODE_LEN: usize = 4096;

/// The redirect URI to register at upstream `name`: the issuer + `/upstream/<name>/callback`.
pub fn callback_url(state: &AppState, name: &str) -> String {
    state.config.endpoint(&upstream_callback_path(name))
}

fn count(state: &AppState, upstream: &str, outcome: &'static str) {
    state
        .metrics
        .federated_login
        .get_or_create(&FederatedLoginLabels {
            upstream: upstream.to_string(),
            outcome,
        })
        .inc();
}

/// Logs and counts a failure and renders the generic page; `request_id` (still open) gives a
/// link back to the sign-in page.
fn failed(
    state: &AppState,
    upstream: &Upstream,
    error: &FederationError,
    request_id: Option<&str>,
) -> Response {
    count(state, upstream.name(), error.outcome());
    state.audit.record(
        AuditRecord::new(AuditEvent::FederatedLogin, Outcome::Failure, Utc::now()).detail(format!(
            "{}: {}",
            upstream.name(),
            error.outcome()
        )),
    );
    tracing::warn!(upstream = %upstream.name(), outcome = error.outcome(), reason = %error, "federated sign-in failed");
    let status = match error {
        FederationError::Discovery(_)
        | FederationError::Exchange(_)
        | FederationError::InvalidIdToken(_) => StatusCode::BAD_GATEWAY,
        FederationError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        FederationError::Disabled | FederationError::UsernameTaken => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    };
    let retry = request_id.map(|id| {
        let mut url = url::Url::parse(&state.config.endpoint("/login")).ok();
        if let Some(u) = url.as_mut() {
            u.query_pairs_mut().append_pair("request", id);
        }
        url.map(String::from).unwrap_or_default()
    });
    html::upstream_failed_page(status, upstream.display_name(), retry.as_deref())
}

fn unknown_upstream() -> Response {
    html::error_page(
        StatusCode::NOT_FOUND,
        "This sign-in method is not available.",
    )
}

/// The sign-in form `POST /upstream/{name}/start` receives.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct UpstreamStart {
    /// The parked authorization request.
    pub request: String,
    /// The anti-forgery token of the sign-in page; must equal the `palisade_csrf` cookie's.
    pub csrf: String,
}

/// POST `/upstream/{name}/start` (form: `request`, `csrf`).
#[utoipa::path(
    post,
    path = "/upstream/{name}/start",
    tag = "public",
    operation_id = "upstream_start",
    params(("name" = String, Path, description = "The upstream provider's name")),
    request_body(content = UpstreamStart, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To the upstream's authorization endpoint; sets the `palisade_upstream` cookie",
         headers(("Location" = String, description = "The upstream's authorization URL"))),
        (status = 400, description = "An error page: malformed form, unknown or expired request", content_type = "text/html", body = String),
        (status = 403, description = "An error page: the CSRF token is missing or does not match the cookie", content_type = "text/html", body = String),
        (status = 404, description = "An error page: no upstream has this name", content_type = "text/html", body = String),
        (status = 502, description = "The sign-in-failed page: the upstream's discovery could not be fetched", content_type = "text/html", body = String),
    ),
)]
pub async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let Some(upstream) = state.federation.get(&name) else {
        return unknown_upstream();
    };
    let form = match sign_in_form(&state, &headers, form) {
        Ok((form, _)) => form,
        Err(resp) => return *resp,
    };
    let request_id = form.get("request").map(String::as_str).unwrap_or("");
    let pending = match live_pending(&state, request_id).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let started = match upstream
        .start(&state.federation.http, &callback_url(&state, &name))
        .await
    {
        Ok(s) => s,
        Err(e) => return failed(&state, upstream, &e, Some(request_id)),
    };
    let now = Utc::now();
    let expires_at = login_expiry(now, pending.expires_at);
    let login = UpstreamLogin {
        upstream: name.clone(),
        request_id: request_id.to_string(),
        nonce: started.nonce,
        pkce_verifier: started.pkce_verifier,
        expires_at,
    };
    if let Err(e) = state
        .store
        .put_upstream_login(&secret_hash(&started.state), &login)
        .await
    {
        return failed(&state, upstream, &e.into(), Some(request_id));
    }
    tracing::info!(upstream = %name, client_id = %pending.request.client_id, "federated sign-in started");
    let mut resp = super::authorize::see_other(started.url.as_str());
    let ttl = (expires_at - now).num_seconds().max(1) as u64;
    set_cookie(
        &mut resp,
        &state.cookies.seal(UPSTREAM_COOKIE, &started.state, ttl),
    );
    resp
}

/// When an upstream sign-in lapses: [`UPSTREAM_LOGIN_TTL_SECS`] from now, and never after
/// the parked request it finishes. Pure.
pub fn login_expiry(now: DateTime<Utc>, pending_expires_at: DateTime<Utc>) -> DateTime<Utc> {
    (now + chrono::Duration::seconds(UPSTREAM_LOGIN_TTL_SECS)).min(pending_expires_at)
}

/// Whether the callback's `state` is the one this browser was sent off with (constant time).
pub fn state_bound(cookie: Option<&str>, state: &str) -> bool {
    match cookie {
        Some(c) if !c.is_empty() => {
            c.len() == state.len() && bool::from(c.as_bytes().ct_eq(state.as_bytes()))
        }
        _ => false,
    }
}

/// The query of the callback (RFC 6749 §4.1.2 and §4.1.2.1).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UpstreamCallback {
    /// The upstream's authorization code.
    pub code: Option<String>,
    /// The state sent to the upstream.
    pub state: Option<String>,
    /// The upstream's error code, e.g. `access_denied`.
    pub error: Option<String>,
    /// Not shown to the user.
    pub error_description: Option<String>,
}

/// GET `/upstream/{name}/callback`: where the upstream sends the browser back. Register
/// `<issuer>/upstream/<name>/callback` as the redirect URI at the upstream.
#[utoipa::path(
    get,
    path = "/upstream/{name}/callback",
    tag = "public",
    operation_id = "upstream_callback",
    params(("name" = String, Path, description = "The upstream provider's name"), UpstreamCallback),
    responses(
        (status = 303, description = "Signed in: a session cookie is set and the browser goes to the client with a code (or an error)",
         headers(("Location" = String, description = "The client's redirect URI"))),
        (status = 400, description = "The sign-in-failed page: the upstream returned an error, or the state is missing, unknown, used or from another browser", content_type = "text/html", body = String),
        (status = 403, description = "The sign-in-failed page: the local user is disabled, or the name a new user would get belongs to a password user", content_type = "text/html", body = String),
        (status = 404, description = "An error page: no upstream has this name", content_type = "text/html", body = String),
        (status = 502, description = "The sign-in-failed page: the code exchange failed or the ID token is invalid", content_type = "text/html", body = String),
        (status = 503, description = "The sign-in-failed page: storage is unavailable", content_type = "text/html", body = String),
    ),
)]
pub async fn callback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let Some(upstream) = state.federation.get(&name) else {
        return unknown_upstream();
    };
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let bound = query
        .get("state")
        .is_some_and(|s| state_bound(state.cookies.open(&headers, UPSTREAM_COOKIE).as_deref(), s));
    let mut resp = match finish(&state, upstream, bound, &query).await {
        Ok(resp) => resp,
        Err((e, request_id)) => failed(&state, upstream, &e, request_id.as_deref()),
    };
    // A callback with this browser's state spends the binding cookie, whatever happened; a
    // forged one leaves it, so a link planted by someone else cannot break a sign-in.
    if bound {
        set_cookie(&mut resp, &state.cookies.clear(UPSTREAM_COOKIE));
    }
    resp
}

type Failure = (FederationError, Option<String>);

async fn finish(
    state: &AppState,
    upstream: &Upstream,
    bound: bool,
    query: &HashMap<String, String>,
) -> Result<Response, Failure> {
    let param = |n: &str| {
        query
            .get(n)
            .map(String::as_str)
            .filter(|v| !v.is_empty() && super::storable(v))
    };
    let Some(state_param) = param("state") else {
        return Err((FederationError::BadState("missing"), None));
    };
    if !bound {
        return Err((
            FederationError::BadState("not started by this browser"),
            None,
        ));
    }
    // Single use: taken (deleted) before anything else can fail.
    let login = match state
        .store
        .take_upstream_login(&secret_hash(state_param))
        .await
    {
        Ok(Some(l)) => l,
        Ok(None) => return Err((FederationError::BadState("unknown or already used"), None)),
        Err(e) => return Err((e.into(), None)),
    };
    let request_id = Some(login.request_id.clone());
    if login.upstream != upstream.name() {
        return Err((
            FederationError::BadState("issued for another upstream"),
            None,
        ));
    }
    if login.expires_at <= Utc::now() {
        return Err((FederationError::BadState("expired"), request_id));
    }
    if let Some(error) = param("error") {
        // Only the registered error-code characters are logged (RFC 6749 §4.1.2.1).
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err((FederationError::Upstream(code), request_id));
    }
    let Some(code) = param("code").filter(|c| c.len() <= MAX_CODE_LEN) else {
        return Err((FederationError::MissingCode, request_id));
    };
    let identity = upstream
        .finish(
            &state.federation.http,
            &callback_url(state, upstream.name()),
            code,
            &login.nonce,
            &login.pkce_verifier,
        )
        .await
        .map_err(|e| (e, request_id.clone()))?;
    let user = local_user(state, upstream, &identity)
        .await
        .map_err(|e| (e, request_id.clone()))?;
    if user.disabled {
        return Err((FederationError::Disabled, request_id));
    }
    let pending = match state.store.take_pending(&login.request_id).await {
        Ok(Some(p)) if p.expires_at > Utc::now() => p,
        Ok(_) => return Err((FederationError::RequestExpired, None)),
        Err(e) => return Err((e.into(), None)),
    };
    let now = Utc::now();
    let record =
        AuditRecord::new(AuditEvent::FederatedLogin, Outcome::Success, now).detail(upstream.name());
    let resp = signed_in(
        state,
        pending.request,
        &user,
        vec![AMR_FEDERATED.into()],
        record,
        now,
    )
    .await
    .map_err(|e| (e.into(), None))?;
    count(state, upstream.name(), "success");
    Ok(resp)
}

/// The local user `identity` signs in as: linked before, linked now by verified email, or
/// created (see `federation::linking`).
async fn local_user(
    state: &AppState,
    upstream: &Upstream,
    identity: &linking::UpstreamIdentity,
) -> Result<User, FederationError> {
    let store = &state.store;
    let name = upstream.name();
    let linked = store.upstream_link(name, &identity.subject).await?;
    let same_email = match (&identity.email, linked.is_none() && identity.email_verified) {
        (Some(email), true) => store.users_by_email(email).await?,
        _ => Vec::new(),
    };
    let policy = upstream.config.upstream.account_linking;
    let sub = match linking::decide(policy, identity, linked.as_deref(), &same_email) {
        Link::Existing(sub) => sub,
        Link::ByEmail(user) => {
            let sub = store
                .link_upstream(name, &identity.subject, &user.sub)
                .await?;
            tracing::info!(upstream = %name, sub = %sub, "upstream account linked to an existing user by verified email");
            sub
        }
        Link::Create => {
            let username = linking::new_username(name, &identity.subject);
            // The user of an earlier sign-in whose link was lost keeps their `sub`; of two
            // first sign-ins at once, one creates the user and both use it.
            let user = match store.user(&username).await? {
                // Never become a user who signs in with a password (one an administrator
                // happened to name like this): that would sign in as them without it.
                Some(existing) if existing.password_hash.is_some() => {
                    return Err(FederationError::UsernameTaken)
                }
                Some(existing) => existing,
                None => {
                    let user = linking::new_user(name, policy, identity, random_token(16));
                    if store.create_user(&user).await? {
                        tracing::info!(upstream = %name, sub = %user.sub, "user created from an upstream account");
                    }
                    store.user(&username).await?.ok_or_else(|| {
                        FederationError::Storage("the created user does not exist".into())
                    })?
                }
            };
            store
                .link_upstream(name, &identity.subject, &user.sub)
                .await?
        }
    };
    store
        .user_by_sub(&sub)
        .await?
        .ok_or_else(|| FederationError::Storage("the linked user does not exist".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_must_equal_the_browser_cookie() {
        assert!(state_bound(Some("abc"), "abc"));
        assert!(!state_bound(Some("abc"), "abd"));
        assert!(!state_bound(Some("abc"), "abcd"));
        assert!(!state_bound(None, "abc"));
        assert!(!state_bound(Some(""), ""));
    }

    #[test]
    fn an_upstream_sign_in_never_outlives_its_request() {
        let now = Utc::now();
        let far = now + chrono::Duration::hours(1);
        let near = now + chrono::Duration::seconds(30);
        assert_eq!(
            login_expiry(now, far),
            now + chrono::Duration::seconds(UPSTREAM_LOGIN_TTL_SECS)
        );
        assert_eq!(login_expiry(now, near), near);
    }
}
