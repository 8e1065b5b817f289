//! The second factor of the login UI: `/login/totp` (a TOTP or recovery code),
//! `/login/totp/enrol` (first code of a new authenticator) and `/login/totp/continue` (after
//! the recovery codes were shown).
//!
//! After a correct password, `/login` parks the sign-in server-side under a random id (the
//! authorization request, the user, the step, the hash of the browser's CSRF token) and shows
//! the next page; the browser only carries the id. Every form is a CSRF double submit, and the
//! cookie must also be the one the sign-in was parked with. Five wrong codes end a parked
//! sign-in; the `mfa` rate limit bounds attempts per client address.

use super::html::{self, EnrolForm, RecoveryCodesForm, TotpForm};
use super::login::{csrf_matches, set_cookie, signed_in};
use crate::audit::{AuditEvent, AuditRecord, Outcome};
use crate::auth_methods::{MULTI_FACTOR, ONE_TIME_PASSWORD, PASSWORD, RECOVERY_CODE};
use crate::cookies::CSRF_COOKIE;
use crate::mfa::policy::{self, NextStep};
use crate::mfa::{recovery, totp};
use crate::state::AppState;
use crate::store::{
    secret_hash, AuthorizationRequest, ParkedSignIn, PendingAuthorization, Session, SignInStep,
    StoreError, TotpEnrolment, User,
};
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use chrono::{DateTime, Utc};
use palisade_wire::registration::random_token;
use std::collections::HashMap;
use subtle::ConstantTimeEq;

/// How long a parked sign-in waits for its second factor.
pub const SIGN_IN_TTL_SECS: i64 = 10 * 60;
/// Wrong codes after which a parked sign-in ends (the user starts again with the password).
pub const MAX_WRONG_CODES: u32 = 5;
/// Longest accepted code field (a recovery code is 19 characters).
const MAX_CODE_LEN: usize = 64;

const EXPIRED: &str =
    "This sign-in is unknown or has expired. Go back to the application and sign in again.";
const WRONG_CODE: &str = "That code is not valid. Check your authenticator app and try again.";
const TOO_MANY: &str = "Too many incorrect codes. Go back to the application and sign in again.";
const BACKING_OFF: &str =
    "Too many incorrect codes for this account. Wait a few minutes, then try again.";

fn path(state: &AppState, tail: &str) -> String {
    format!("{}/login/totp{tail}", crate::url_path(&state.config.issuer))
}

/// What `/login` does after a correct password: the [`NextStep`] for this user under the
/// provider's policy; `asked` when the user ticked "Set up two-step verification".
pub async fn next_step(state: &AppState, user: &User, asked: bool) -> Result<NextStep, StoreError> {
    let enrolled = state.store.totp(&user.sub).await?.is_some();
    Ok(policy::next_step(
        state.config.totp_policy,
        user.mfa_required || asked,
        enrolled,
    ))
}

/// Whether an existing session may be reused for `user` without signing in again.
pub async fn session_suffices(
    state: &AppState,
    session: &Session,
    user: &User,
) -> Result<bool, StoreError> {
    let enrolled = state.store.totp(&user.sub).await?.is_some();
    Ok(policy::session_suffices(
        state.config.totp_policy,
        user.mfa_required,
        enrolled,
        &session.amr,
    ))
}

/// Parks the sign-in of `user` (password verified) for `step` and shows its page. `csrf` is
/// the browser's (already checked) CSRF token.
pub async fn begin(
    state: &AppState,
    pending: PendingAuthorization,
    user: &User,
    step: NextStep,
    csrf: &str,
    now: DateTime<Utc>,
) -> Response {
    let step = match step {
        NextStep::Verify => SignInStep::Verify,
        NextStep::Enrol => SignInStep::Enrol {
            secret_sealed: state.totp_secrets.seal(&totp::new_secret(), &user.sub),
        },
        NextStep::Done => return html::error_page(StatusCode::BAD_REQUEST, EXPIRED),
    };
    let parked = ParkedSignIn {
        request: pending.request,
        sub: user.sub.clone(),
        username: user.username.clone(),
        step,
        csrf_hash: secret_hash(csrf),
        expires_at: now + chrono::Duration::seconds(SIGN_IN_TTL_SECS),
    };
    let id = random_token(32);
    if state.store.put_sign_in(&id, &parked).await.is_err() {
        return html::unavailable_page();
    }
    tracing::info!(sub = %parked.sub, client_id = %parked.request.client_id,
        enrol = matches!(parked.step, SignInStep::Enrol { .. }), "mfa: password verified, second factor asked");
    audit(
        state,
        &parked,
        Outcome::Success,
        if matches!(parked.step, SignInStep::Enrol { .. }) {
            "password accepted; authenticator enrolment asked"
        } else {
            "password accepted; code asked"
        },
    );
    page_for(state, StatusCode::OK, &id, &parked, csrf, None)
}

/// The page of a parked sign-in's current step.
fn page_for(
    state: &AppState,
    status: StatusCode,
    id: &str,
    parked: &ParkedSignIn,
    csrf: &str,
    error: Option<&str>,
) -> Response {
    let page = step_page(state, status, id, parked, csrf, error);
    with_csrf_cookie(state, page, csrf)
}

/// Sets the CSRF cookie again (same token) for as long as a parked sign-in lives: the one
/// set by `GET /login` may lapse while the user installs an authenticator app.
fn with_csrf_cookie(state: &AppState, mut page: Response, csrf: &str) -> Response {
    let cookie = state
        .cookies
        .seal(CSRF_COOKIE, csrf, SIGN_IN_TTL_SECS as u64);
    set_cookie(&mut page, &cookie);
    page
}

fn step_page(
    state: &AppState,
    status: StatusCode,
    id: &str,
    parked: &ParkedSignIn,
    csrf: &str,
    error: Option<&str>,
) -> Response {
    match &parked.step {
        SignInStep::Verify => html::totp_page(
            status,
            &TotpForm {
                action: &path(state, ""),
                sign_in: id,
                csrf,
                error,
            },
        ),
        SignInStep::Enrol { secret_sealed } => {
            let Some(secret) = state.totp_secrets.open(secret_sealed, &parked.sub) else {
                return html::unavailable_page();
            };
            let label = totp::issuer_label(&state.config.issuer);
            let Ok(auth) = totp::authenticator(&secret, &label, &parked.username) else {
                return html::unavailable_page();
            };
            let Ok(uri) = auth.to_url() else {
                return html::unavailable_page();
            };
            // Groups of four for typing by hand (apps ignore the spaces).
            let secret_base32 = auth
                .secret()
                .to_base32()
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            html::enrol_page(
                status,
                &EnrolForm {
                    action: &path(state, "/enrol"),
                    sign_in: id,
                    csrf,
                    otpauth_uri: &uri,
                    secret_base32: &secret_base32,
                    qr_svg: &totp::qr_svg(&uri).unwrap_or_default(),
                    error,
                },
            )
        }
        SignInStep::Verified { .. } => html::error_page(StatusCode::BAD_REQUEST, EXPIRED),
    }
}

/// A second-factor form as posted (documentation only: the handlers read a map).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct CodeSubmission {
    /// The parked sign-in (from the page).
    pub signin: String,
    /// The anti-forgery token of the form; must equal the `palisade_csrf` cookie's.
    pub csrf: String,
    /// A 6-digit TOTP code or, at `/login/totp`, a recovery code (`xxxx-xxxx-xxxx-xxxx`).
    /// Absent at `/login/totp/continue`.
    #[schema(nullable = false)]
    pub code: Option<String>,
}

/// A checked form: the parked sign-in it continues, its id, the CSRF token and the code.
struct Submission {
    id: String,
    parked: ParkedSignIn,
    csrf: String,
    code: String,
}

/// Parses the form, checks the CSRF double submit and that the sign-in was parked by this
/// browser, and loads the live parked sign-in.
async fn submission(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
    now: DateTime<Utc>,
) -> Result<Submission, Response> {
    let form = match form {
        Ok(Form(form)) if form.values().all(|v| super::storable(v)) => form,
        _ => {
            return Err(html::error_page(
                StatusCode::BAD_REQUEST,
                "The form is malformed.",
            ))
        }
    };
    let field = |n: &str| form.get(n).cloned().unwrap_or_default();
    let cookie = state.cookies.open(headers, CSRF_COOKIE);
    let forbidden = || {
        html::error_page(
            StatusCode::FORBIDDEN,
            "The form expired or did not come from this site. Go back to the application and sign in again.",
        )
    };
    if !csrf_matches(cookie.as_deref(), form.get("csrf").map(String::as_str)) {
        return Err(forbidden());
    }
    let csrf = cookie.unwrap_or_default();
    let (id, code) = (field("signin"), field("code"));
    if code.len() > MAX_CODE_LEN || id.is_empty() || id.len() > 128 {
        return Err(html::error_page(
            StatusCode::BAD_REQUEST,
            "The code or the sign-in id is too long or missing.",
        ));
    }
    let parked = match state.store.sign_in(&id).await {
        Ok(Some(p)) if p.expires_at > now => p,
        Ok(_) => return Err(html::error_page(StatusCode::BAD_REQUEST, EXPIRED)),
        Err(_) => return Err(html::unavailable_page()),
    };
    let presented = secret_hash(&csrf);
    if !bool::from(presented.as_bytes().ct_eq(parked.csrf_hash.as_bytes())) {
        return Err(forbidden());
    }
    Ok(Submission {
        id,
        parked,
        csrf,
        code,
    })
}

/// Audits a second-factor event of the parked sign-in `p`.
fn audit(state: &AppState, p: &ParkedSignIn, outcome: Outcome, detail: &str) {
    state.audit.record(
        AuditRecord::new(AuditEvent::Mfa, outcome, Utc::now())
            .subject(&p.sub)
            .username(&p.username)
            .client(&p.request.client_id)
            .detail(detail),
    );
}

/// Charges this code attempt to the parked sign-in before the code is looked at, so that
/// requests sent in parallel cannot try more than [`MAX_WRONG_CODES`] codes between them.
/// Returns the attempt's number, or the end of the sign-in when it has none left.
async fn charge_sign_in(state: &AppState, s: &Submission) -> Result<u32, Response> {
    match state.store.sign_in_attempt(&s.id, MAX_WRONG_CODES).await {
        Ok(Some(n)) => Ok(n),
        Ok(None) => Err(end_sign_in(state, s).await),
        Err(_) => Err(html::unavailable_page()),
    }
}

/// Charges this code attempt to the user's authenticator before the code is looked at (the
/// per-user back-off holds for parallel requests too). `Ok(None)` when charged;
/// `Ok(Some(until))` when the account is backing off until then (nothing charged).
async fn charge_user(
    state: &AppState,
    sub: &str,
    read: &TotpEnrolment,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    // Compare and swap on the attempt count, starting from the enrolment the caller read; a
    // lost race re-reads and judges again.
    let mut seen = Some((read.failures, read.last_failure_at));
    for _ in 0..16 {
        let Some((failures, last_failure_at)) = seen else {
            // Reset meanwhile: nothing to charge, and the code cannot match.
            return Ok(None);
        };
        if let Some(until) = policy::backoff_until(failures, last_failure_at).filter(|u| *u > now) {
            return Ok(Some(until));
        }
        if state.store.charge_totp_attempt(sub, failures, now).await? {
            return Ok(None);
        }
        seen = state
            .store
            .totp(sub)
            .await?
            .map(|e| (e.failures, e.last_failure_at));
    }
    // Sixteen attempts raced this one: treat the account as busy for a moment.
    Ok(Some(now + chrono::Duration::seconds(1)))
}

/// Ends a parked sign-in that used up its attempts (audited once, by whoever ends it).
async fn end_sign_in(state: &AppState, s: &Submission) -> Response {
    match state.store.take_sign_in(&s.id).await {
        Ok(Some(_)) => {}
        Ok(None) => return html::error_page(StatusCode::FORBIDDEN, TOO_MANY),
        Err(_) => return html::unavailable_page(),
    }
    tracing::info!(sub = %s.parked.sub, "mfa: sign-in ended after too many wrong codes");
    audit(
        state,
        &s.parked,
        Outcome::Failure,
        "sign-in ended after too many wrong codes",
    );
    html::error_page(StatusCode::FORBIDDEN, TOO_MANY)
}

/// A wrong code (attempt number `attempt`, already charged): the page again with an error,
/// or the end of the parked sign-in after the last attempt.
async fn wrong_code(state: &AppState, s: &Submission, reason: &str, attempt: u32) -> Response {
    state.metrics.mfa_failure.inc();
    tracing::info!(sub = %s.parked.sub, attempt, reason, "mfa: code refused");
    audit(state, &s.parked, Outcome::Failure, reason);
    if attempt >= MAX_WRONG_CODES {
        return end_sign_in(state, s).await;
    }
    page_for(
        state,
        StatusCode::UNAUTHORIZED,
        &s.id,
        &s.parked,
        &s.csrf,
        Some(WRONG_CODE),
    )
}

/// Starts the session (methods `amr`) and finishes the authorization with a code.
async fn finish(
    state: &AppState,
    request: AuthorizationRequest,
    sub: &str,
    amr: Vec<String>,
    now: DateTime<Utc>,
) -> Response {
    // The user may have been disabled or deleted while the sign-in was parked.
    let user = match state.store.user_by_sub(sub).await {
        Ok(Some(u)) if !u.disabled => u,
        Ok(_) => return html::error_page(StatusCode::BAD_REQUEST, EXPIRED),
        Err(_) => return html::unavailable_page(),
    };
    let record = AuditRecord::new(AuditEvent::Login, Outcome::Success, now).detail(amr.join(" "));
    match signed_in(state, request, &user, amr, record, now).await {
        Ok(resp) => {
            state.metrics.login_success.inc();
            resp
        }
        Err(_) => html::unavailable_page(),
    }
}

fn methods(m: &[&str]) -> Vec<String> {
    m.iter().map(|s| s.to_string()).collect()
}

/// POST `/login/totp` (form: `signin`, `csrf`, `code`).
#[utoipa::path(
    post,
    path = "/login/totp",
    tag = "public",
    operation_id = "login_totp_post",
    request_body(content = CodeSubmission, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Verified: a session cookie is set and the browser goes to the client with a code",
         headers(("Location" = String, description = "The client's redirect URI"))),
        (status = 400, description = "An error page: malformed form, unknown or expired sign-in", content_type = "text/html", body = String),
        (status = 401, description = "The code page again, saying the code is not valid", content_type = "text/html", body = String),
        (status = 403, description = "An error page: CSRF failure, or too many wrong codes (the sign-in ended)", content_type = "text/html", body = String),
        (status = 429, description = "the code page again: too many wrong codes for this account (per-user back-off)", content_type = "text/html", body = String),
    ),
)]
pub async fn totp_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let now = Utc::now();
    let s = match submission(&state, &headers, form, now).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    if s.parked.step != SignInStep::Verify {
        return html::error_page(StatusCode::BAD_REQUEST, EXPIRED);
    }
    let sub = s.parked.sub.clone();
    let enrolment = match state.store.totp(&sub).await {
        Ok(Some(e)) => e,
        // Reset by an administrator while parked.
        Ok(None) => return html::error_page(StatusCode::BAD_REQUEST, EXPIRED),
        Err(_) => return html::unavailable_page(),
    };
    let backing_off = match charge_user(&state, &sub, &enrolment, now).await {
        Ok(b) => b,
        Err(_) => return html::unavailable_page(),
    };
    if let Some(until) = backing_off {
        tracing::info!(sub = %sub, failures = enrolment.failures, "mfa: code refused, user backing off");
        audit(
            &state,
            &s.parked,
            Outcome::Failure,
            "refused: the account is backing off after repeated wrong codes",
        );
        let mut resp = page_for(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &s.id,
            &s.parked,
            &s.csrf,
            Some(BACKING_OFF),
        );
        let wait = (until - now).num_seconds().max(1).to_string();
        if let Ok(v) = axum::http::HeaderValue::from_str(&wait) {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        return resp;
    }
    let attempt = match charge_sign_in(&state, &s).await {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    let amr = if totp::looks_like_totp(&s.code) {
        let Some(secret) = state.totp_secrets.open(&enrolment.secret_sealed, &sub) else {
            tracing::warn!(sub = %sub, "mfa: stored TOTP secret does not open (key changed?)");
            return html::unavailable_page();
        };
        let Ok(auth) = totp::generator(&secret) else {
            return html::unavailable_page();
        };
        let Some(step) = totp::matched_step(&auth, &s.code, now.timestamp().max(0) as u64) else {
            return wrong_code(&state, &s, "wrong totp code", attempt).await;
        };
        match state.store.accept_totp_step(&sub, step).await {
            Ok(true) => methods(&[PASSWORD, ONE_TIME_PASSWORD, MULTI_FACTOR]),
            Ok(false) => return wrong_code(&state, &s, "totp code already used", attempt).await,
            Err(_) => return html::unavailable_page(),
        }
    } else {
        match state
            .store
            .use_recovery_code(&sub, &recovery::hash(&s.code))
            .await
        {
            Ok(true) => {
                state.metrics.mfa_recovery_code_used.inc();
                methods(&[PASSWORD, MULTI_FACTOR, RECOVERY_CODE])
            }
            Ok(false) => return wrong_code(&state, &s, "wrong recovery code", attempt).await,
            Err(_) => return html::unavailable_page(),
        }
    };
    let parked = match state.store.take_sign_in(&s.id).await {
        Ok(Some(p)) => p,
        Ok(None) => return html::error_page(StatusCode::BAD_REQUEST, EXPIRED),
        Err(_) => return html::unavailable_page(),
    };
    state.metrics.mfa_success.inc();
    let recovery_code = amr.iter().any(|m| m == RECOVERY_CODE);
    tracing::info!(sub = %sub, recovery_code, "mfa: second factor verified");
    audit(
        &state,
        &parked,
        Outcome::Success,
        if recovery_code {
            "recovery code used"
        } else {
            "totp code verified"
        },
    );
    finish(&state, parked.request, &sub, amr, now).await
}

/// POST `/login/totp/enrol` (form: `signin`, `csrf`, `code`).
#[utoipa::path(
    post,
    path = "/login/totp/enrol",
    tag = "public",
    operation_id = "login_totp_enrol_post",
    request_body(content = CodeSubmission, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Enrolled: the recovery codes, shown once, and a form to continue", content_type = "text/html", body = String),
        (status = 400, description = "An error page: malformed form, unknown or expired sign-in", content_type = "text/html", body = String),
        (status = 401, description = "The enrolment page again, saying the code is not valid", content_type = "text/html", body = String),
        (status = 403, description = "An error page: CSRF failure, or too many wrong codes (the sign-in ended)", content_type = "text/html", body = String),
        (status = 409, description = "An error page: an authenticator was enrolled meanwhile", content_type = "text/html", body = String),
    ),
)]
pub async fn enrol_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let now = Utc::now();
    let s = match submission(&state, &headers, form, now).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let SignInStep::Enrol { secret_sealed } = &s.parked.step else {
        return html::error_page(StatusCode::BAD_REQUEST, EXPIRED);
    };
    let sub = s.parked.sub.clone();
    let Some(secret) = state.totp_secrets.open(secret_sealed, &sub) else {
        return html::unavailable_page();
    };
    let Ok(auth) = totp::generator(&secret) else {
        return html::unavailable_page();
    };
    let attempt = match charge_sign_in(&state, &s).await {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    let Some(step) = totp::matched_step(&auth, &s.code, now.timestamp().max(0) as u64) else {
        return wrong_code(&state, &s, "wrong enrolment code", attempt).await;
    };
    let parked = match state.store.take_sign_in(&s.id).await {
        Ok(Some(p)) => p,
        Ok(None) => return html::error_page(StatusCode::BAD_REQUEST, EXPIRED),
        Err(_) => return html::unavailable_page(),
    };
    let codes = recovery::generate();
    let enrolment = TotpEnrolment {
        secret_sealed: secret_sealed.clone(),
        // The confirming code's step is used up: it cannot sign in again.
        last_step: Some(step),
        recovery_hashes: codes.iter().map(|c| recovery::hash(c)).collect(),
        enrolled_at: now,
        failures: 0,
        last_failure_at: None,
    };
    match state.store.enrol_totp(&sub, &enrolment).await {
        Ok(true) => {}
        Ok(false) => {
            return html::error_page(
                StatusCode::CONFLICT,
                "An authenticator was already set up for this account. Go back to the application and sign in again.",
            )
        }
        Err(_) => return html::unavailable_page(),
    }
    state.metrics.mfa_enrolled.inc();
    state.metrics.mfa_success.inc();
    tracing::info!(sub = %sub, "mfa: authenticator enrolled, recovery codes issued");
    audit(
        &state,
        &parked,
        Outcome::Success,
        "authenticator enrolled; recovery codes issued",
    );
    let verified = ParkedSignIn {
        step: SignInStep::Verified {
            amr: methods(&[PASSWORD, ONE_TIME_PASSWORD, MULTI_FACTOR]),
        },
        expires_at: now + chrono::Duration::seconds(SIGN_IN_TTL_SECS),
        ..parked
    };
    let id = random_token(32);
    if state.store.put_sign_in(&id, &verified).await.is_err() {
        return html::unavailable_page();
    }
    let page = html::recovery_codes_page(&RecoveryCodesForm {
        action: &path(&state, "/continue"),
        sign_in: &id,
        csrf: &s.csrf,
        codes: &codes,
    });
    with_csrf_cookie(&state, page, &s.csrf)
}

/// POST `/login/totp/continue` (form: `signin`, `csrf`).
#[utoipa::path(
    post,
    path = "/login/totp/continue",
    tag = "public",
    operation_id = "login_totp_continue_post",
    request_body(content = CodeSubmission, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: a session cookie is set and the browser goes to the client with a code",
         headers(("Location" = String, description = "The client's redirect URI"))),
        (status = 400, description = "An error page: malformed form, unknown or expired sign-in", content_type = "text/html", body = String),
        (status = 403, description = "An error page: the CSRF token is missing or does not match", content_type = "text/html", body = String),
    ),
)]
pub async fn continue_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let now = Utc::now();
    let s = match submission(&state, &headers, form, now).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    if !matches!(s.parked.step, SignInStep::Verified { .. }) {
        return html::error_page(StatusCode::BAD_REQUEST, EXPIRED);
    }
    let parked = match state.store.take_sign_in(&s.id).await {
        Ok(Some(p)) => p,
        Ok(None) => return html::error_page(StatusCode::BAD_REQUEST, EXPIRED),
        Err(_) => return html::unavailable_page(),
    };
    let SignInStep::Verified { amr } = parked.step else {
        return html::error_page(StatusCode::BAD_REQUEST, EXPIRED);
    };
    finish(&state, parked.request, &parked.sub, amr, now).await
}
