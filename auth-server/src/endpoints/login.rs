//! `/login`: the sign-in page for a parked authorization request.
//!
//! GET renders the form; POST checks the CSRF token, then the password, then starts a session
//! and finishes the authorization with a code. CSRF is a double submit: the form carries a
//! random token that must equal the one in a sealed, SameSite=Lax cookie, compared in constant
//! time. A cross-site POST carries no Lax cookie, and the sealed value cannot be forged.

use super::authorize::issue_code;
use super::html::{self, LoginForm};
use crate::audit::{AuditEvent, AuditRecord, Outcome};
use crate::cookies::CSRF_COOKIE;
use crate::mfa::policy::NextStep;
use crate::sessions;
use crate::state::AppState;
use crate::store::{AuthorizationRequest, PendingAuthorization, StoreError, User};
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Form;
use chrono::{DateTime, Utc};
use palisade_wire::registration::random_token;
use std::collections::HashMap;
use subtle::ConstantTimeEq;

/// The message of a failed sign-in; the same for unknown users, wrong passwords and disabled
/// accounts, so the page does not reveal which usernames exist.
pub const LOGIN_FAILED: &str = "Incorrect username or password.";
/// Longest accepted username and password.
pub const MAX_USERNAME_LEN: usize = 256;
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Lifetime of the CSRF cookie: as long as a parked request lives.
const CSRF_COOKIE_TTL_SECS: u64 = super::authorize::LOGIN_REQUEST_TTL_SECS as u64;

/// Whether the form's CSRF token equals the cookie's, in constant time.
pub fn csrf_matches(cookie: Option<&str>, form: Option<&str>) -> bool {
    match (cookie, form) {
        (Some(c), Some(f)) if !c.is_empty() => {
            c.len() == f.len() && bool::from(c.as_bytes().ct_eq(f.as_bytes()))
        }
        _ => false,
    }
}

/// The sign-in page's form, as `POST /login` and `POST /upstream/{name}/start` receive it:
/// a 400 error page when it is malformed, a 403 one when its CSRF token does not match the
/// cookie's. Returns the form and the (matching) token.
pub fn sign_in_form(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<(HashMap<String, String>, String), Box<Response>> {
    let form = match form {
        Ok(Form(form)) if form.values().all(|v| super::storable(v)) => form,
        _ => {
            return Err(Box::new(html::error_page(
                StatusCode::BAD_REQUEST,
                "The sign-in form is malformed.",
            )))
        }
    };
    let cookie = state.cookies.open(headers, CSRF_COOKIE);
    if !csrf_matches(cookie.as_deref(), form.get("csrf").map(String::as_str)) {
        return Err(Box::new(html::error_page(
            StatusCode::FORBIDDEN,
            "The sign-in form expired or did not come from this site. Reload the sign-in page and try again.",
        )));
    }
    Ok((form, cookie.unwrap_or_default()))
}

/// The page of an unknown or expired parked request.
pub const EXPIRED: &str = "This sign-in request is unknown or has expired.";

/// The parked request `id`, if it is still open; otherwise the error page to show.
pub async fn live_pending(state: &AppState, id: &str) -> Result<PendingAuthorization, Response> {
    match state.store.pending(id).await {
        Ok(Some(p)) if p.expires_at > Utc::now() => Ok(p),
        Ok(_) => Err(html::error_page(StatusCode::BAD_REQUEST, EXPIRED)),
        Err(_) => Err(html::unavailable_page()),
    }
}

async fn client_name(state: &AppState, client_id: &str) -> String {
    match state.store.client(client_id).await {
        Ok(Some(c)) => c.client_name.clone().unwrap_or_else(|| c.client_id.clone()),
        _ => client_id.to_string(),
    }
}

async fn form_page(
    state: &AppState,
    status: StatusCode,
    request_id: &str,
    pending: &PendingAuthorization,
    csrf: &str,
    error: Option<&str>,
) -> Response {
    let prefix = crate::url_path(&state.config.issuer);
    let action = format!("{prefix}/login");
    let upstreams: Vec<html::UpstreamButton<'_>> = state
        .federation
        .all()
        .iter()
        .map(|u| html::UpstreamButton {
            action: format!("{prefix}/upstream/{}/start", u.name()),
            display_name: u.display_name(),
        })
        .collect();
    html::login_page(
        status,
        &LoginForm {
            action: &action,
            request_id,
            csrf,
            client_name: &client_name(state, &pending.request.client_id).await,
            error,
            offer_totp_enrolment: state.config.totp_policy
                == palisade_wire::contract::TotpPolicy::Optional,
            upstreams: &upstreams,
        },
    )
}

/// The query of `GET /login`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginQuery {
    /// The parked authorization request `/authorize` redirected with.
    #[param(min_length = 1)]
    pub request: String,
}

/// The sign-in form `POST /login` receives (documentation only: the handler reads a map).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct LoginSubmission {
    /// The parked authorization request.
    pub request: String,
    /// The anti-forgery token of the form; must equal the `palisade_csrf` cookie's.
    pub csrf: String,
    pub username: String,
    pub password: String,
    /// `1` to set up a TOTP authenticator after the password (offered under the `Optional`
    /// policy to users without one).
    #[schema(nullable = false)]
    pub enrol_totp: Option<String>,
}

/// GET `/login?request=<id>`.
#[utoipa::path(
    get,
    path = "/login",
    tag = "public",
    operation_id = "login_get",
    params(LoginQuery),
    responses(
        (status = 200, description = "The sign-in page; sets the `palisade_csrf` cookie", content_type = "text/html", body = String),
        (status = 400, description = "An error page: the request is unknown or has expired", content_type = "text/html", body = String),
    ),
)]
pub async fn login_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let request = query.ok().and_then(|Query(q)| q.get("request").cloned());
    let Some(id) = request.filter(|r| super::storable(r)) else {
        return html::error_page(StatusCode::BAD_REQUEST, EXPIRED);
    };
    let pending = match live_pending(&state, &id).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    // One token per browser, reused across tabs, so that two open sign-in pages both work.
    let csrf = state
        .cookies
        .open(&headers, CSRF_COOKIE)
        .filter(|c| c.len() >= 32)
        .unwrap_or_else(|| random_token(32));
    let mut resp = form_page(&state, StatusCode::OK, &id, &pending, &csrf, None).await;
    set_cookie(
        &mut resp,
        &state.cookies.seal(CSRF_COOKIE, &csrf, CSRF_COOKIE_TTL_SECS),
    );
    resp
}

/// POST `/login` (form: `request`, `csrf`, `username`, `password`).
#[utoipa::path(
    post,
    path = "/login",
    tag = "public",
    operation_id = "login_post",
    request_body(content = LoginSubmission, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: a session cookie is set and the browser goes to the client with a code (or an error)",
         headers(("Location" = String, description = "The client's redirect URI"))),
        (status = 400, description = "An error page: malformed form, values too long, unknown or expired request", content_type = "text/html", body = String),
        (status = 401, description = "The sign-in page again, saying the username or password is incorrect", content_type = "text/html", body = String),
        (status = 403, description = "An error page: the CSRF token is missing or does not match the cookie", content_type = "text/html", body = String),
    ),
)]
pub async fn login_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let (form, csrf) = match sign_in_form(&state, &headers, form) {
        Ok(checked) => checked,
        Err(resp) => return *resp,
    };
    let field = |n: &str| form.get(n).map(String::as_str).unwrap_or("");
    let (request_id, username, password) = (field("request"), field("username"), field("password"));
    if username.len() > MAX_USERNAME_LEN || password.len() > MAX_PASSWORD_LEN {
        return html::error_page(
            StatusCode::BAD_REQUEST,
            "The username or password is too long.",
        );
    }
    let pending = match live_pending(&state, request_id).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let user = match state.store.user(username).await {
        Ok(u) => u,
        Err(_) => return html::unavailable_page(),
    };
    // Always one argon2 verification (a dummy one for unknown users), off the async threads.
    let verified = crate::passwords::verify_blocking(
        state.passwords.clone(),
        password.to_string(),
        user.as_ref().and_then(|u| u.password_hash.clone()),
    )
    .await;
    let user = match user {
        Some(u) if verified && !u.disabled => u,
        user => {
            state.metrics.login_failure.inc();
            let mut rec = AuditRecord::new(AuditEvent::Login, Outcome::Failure, Utc::now())
                .client(&pending.request.client_id);
            rec = match &user {
                None => rec.detail("unknown username"),
                Some(u) => rec
                    .subject(&u.sub)
                    .username(&u.username)
                    .detail(if u.disabled {
                        "the account is disabled"
                    } else {
                        "wrong password"
                    }),
            };
            state.audit.record(rec);
            tracing::info!(client_id = %pending.request.client_id, "sign-in failed");
            return form_page(
                &state,
                StatusCode::UNAUTHORIZED,
                request_id,
                &pending,
                &csrf,
                Some(LOGIN_FAILED),
            )
            .await;
        }
    };
    let next = match super::mfa::next_step(&state, &user, field("enrol_totp") == "1").await {
        Ok(n) => n,
        Err(_) => return html::unavailable_page(),
    };
    // Only one submission completes a request (a double click, or a replay, gets the page).
    let pending = match state.store.take_pending(request_id).await {
        Ok(Some(p)) => p,
        Ok(None) => return html::error_page(StatusCode::BAD_REQUEST, EXPIRED),
        Err(_) => return html::unavailable_page(),
    };
    let now = Utc::now();
    if next != NextStep::Done {
        // The second factor: the sign-in is parked server-side, never trusted to the form.
        return super::mfa::begin(&state, pending, &user, next, &csrf, now).await;
    }
    let amr = vec![crate::auth_methods::PASSWORD.to_string()];
    let record = AuditRecord::new(AuditEvent::Login, Outcome::Success, now).detail(amr.join(" "));
    match signed_in(&state, pending.request, &user, amr, record, now).await {
        Ok(resp) => {
            state.metrics.login_success.inc();
            resp
        }
        Err(_) => html::unavailable_page(),
    }
}

/// The end of every sign-in (password, second factor, upstream): starts a session for `user`,
/// who authenticated by the methods `amr`, audits `record` (its event, outcome and detail;
/// who and which client are filled in here) and finishes `request` with a code: the redirect
/// to the client, with the session cookie.
pub async fn signed_in(
    state: &AppState,
    request: AuthorizationRequest,
    user: &User,
    amr: Vec<String>,
    record: AuditRecord,
    now: DateTime<Utc>,
) -> Result<Response, StoreError> {
    let (session, set_session) = sessions::start(state, user, amr, now).await?;
    state.audit.record(
        record
            .subject(&user.sub)
            .username(&user.username)
            .client(&request.client_id),
    );
    tracing::info!(client_id = %request.client_id, sid = %session.sid, amr = ?session.amr, "signed in");
    let mut resp = issue_code(state, request, &session, now).await;
    set_cookie(&mut resp, &set_session);
    Ok(resp)
}

/// Appends a `Set-Cookie` header.
pub fn set_cookie(resp: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_needs_a_cookie_and_an_equal_form_token() {
        assert!(csrf_matches(Some("abc"), Some("abc")));
        assert!(!csrf_matches(Some("abc"), Some("abd")));
        assert!(!csrf_matches(Some("abc"), Some("abcd")));
        assert!(!csrf_matches(None, Some("abc")));
        assert!(!csrf_matches(Some("abc"), None));
        assert!(!csrf_matches(Some(""), Some("")));
    }
}
