//! `/authorize` (RFC 6749 §4.1, OpenID Connect Core §3.1.2), GET and POST.
//!
//! The request is parsed once into an [`AuthorizationRequest`]. Until the client and its
//! redirect URI are known to be registered, errors are shown as a page and never redirected
//! (an open redirector otherwise); afterwards they go back to the redirect URI with `state`
//! and `iss` (RFC 9207). A signed-in browser gets a code at once; otherwise the request is
//! parked and the browser sent to `/login`.

use super::html;
use crate::error::AuthorizationError;
use crate::grants::pkce;
use crate::sessions;
use crate::state::AppState;
use crate::store::{secret_hash, AuthorizationRequest, CodeGrant, PendingAuthorization, Session};
use crate::tokens::verify_id_token_hint;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use chrono::{DateTime, Utc};
use palisade_wire::registration::{random_token, ClientRegistration, GrantType};
use std::collections::HashMap;

/// How long a parked request waits for the user to sign in.
pub const LOGIN_REQUEST_TTL_SECS: i64 = 15 * 60;
/// Longest accepted value of any authorization parameter.
pub const MAX_PARAM_LEN: usize = 2048;

/// Raw parameters in order, duplicates kept (so that they can be refused).
pub type RawParams = Vec<(String, String)>;

/// A validated request plus the `prompt`/`max_age` decisions that do not need storing.
#[derive(Debug, PartialEq, Eq)]
pub struct Validated {
    pub request: AuthorizationRequest,
    /// `prompt=none`: never show the login page.
    pub prompt_none: bool,
    /// `prompt=login`: sign in again even with a session.
    pub prompt_login: bool,
}

/// The one rule for redirect URIs: an exact string match with a registered one (no prefix,
/// no normalisation, no wildcards).
pub fn redirect_uri_registered(reg: &ClientRegistration, uri: &str) -> bool {
    reg.redirect_uris.iter().any(|r| r == uri)
}

/// Parameters as a map; a repeated or oversized parameter, or one with a NUL character, is
/// reported by name. A request object (`request`) may be longer: it is never read, only
/// answered with `request_not_supported` at the client's redirect URI.
pub fn single_valued(raw: &RawParams) -> Result<HashMap<&str, &str>, String> {
    let mut map = HashMap::new();
    for (k, v) in raw {
        if v.len() > MAX_PARAM_LEN && k != "request" {
            return Err(format!("parameter {k} is too long"));
        }
        if !super::storable(v) {
            return Err(format!("parameter {k} contains a NUL character"));
        }
        if map.insert(k.as_str(), v.as_str()).is_some() {
            return Err(format!("parameter {k} is repeated"));
        }
    }
    Ok(map)
}

/// Step one: the client and redirect URI. A failure here is a message for an error page,
/// never a redirect (the redirect URI is not trusted yet).
pub fn validate_client<'a>(
    params: &HashMap<&str, &'a str>,
    client: Option<&ClientRegistration>,
) -> Result<&'a str, String> {
    let page = |m: &str| Err(m.to_string());
    let Some(client) = client else {
        return page(
            "The application is not registered with this sign-in service (unknown client_id).",
        );
    };
    match params.get("redirect_uri") {
        None | Some(&"") => page("The application did not say where to return (missing redirect_uri)."),
        Some(uri) if redirect_uri_registered(client, uri) => Ok(*uri),
        Some(_) => page("The application asked to return to an address it has not registered (redirect_uri mismatch)."),
    }
}

/// Step two: everything else, reported to the redirect URI. Pure.
pub fn validate_request(
    params: &HashMap<&str, &str>,
    client: &ClientRegistration,
    redirect_uri: &str,
) -> Result<Validated, AuthorizationError> {
    use AuthorizationError as E;
    let get = |k: &str| params.get(k).copied().filter(|v| !v.is_empty());
    if params.contains_key("request") {
        return Err(E::RequestNotSupported);
    }
    if params.contains_key("request_uri") {
        return Err(E::RequestUriNotSupported);
    }
    match get("response_type") {
        Some("code") => {}
        None => return Err(E::InvalidRequest("missing parameter response_type".into())),
        Some(_) => {
            return Err(E::UnsupportedResponseType(
                "only response_type=code is supported".into(),
            ))
        }
    }
    if let Some(mode) = get("response_mode") {
        if mode != "query" {
            return Err(E::InvalidRequest(
                "only response_mode=query is supported".into(),
            ));
        }
    }
    if !client.grant_types.contains(&GrantType::AuthorizationCode) {
        return Err(E::UnauthorizedClient(
            "this client may not use the authorization code flow".into(),
        ));
    }
    let scopes: Vec<&str> = get("scope")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    if !scopes.contains(&"openid") {
        return Err(E::InvalidScope("scope must include openid".into()));
    }
    // `offline_access` is implied by the refresh_token grant (refresh tokens are issued to
    // clients registered with that grant, with or without it).
    let allowed = |s: &str| {
        client.scopes.iter().any(|a| a == s)
            || (s == "offline_access" && client.grant_types.contains(&GrantType::RefreshToken))
    };
    if let Some(s) = scopes.iter().find(|s| !allowed(s)) {
        return Err(E::InvalidScope(format!(
            "scope {s} is not allowed for this client"
        )));
    }
    let mut ordered = vec!["openid"];
    for s in scopes {
        if !ordered.contains(&s) {
            ordered.push(s);
        }
    }
    let code_challenge = match (get("code_challenge"), get("code_challenge_method")) {
        (None, None) if client.public => {
            return Err(E::InvalidRequest(
                "public clients must use PKCE (code_challenge with code_challenge_method=S256)"
                    .into(),
            ))
        }
        (None, None) => None,
        (Some(c), Some("S256")) if pkce::well_formed(c) => Some(c.to_string()),
        (Some(_), Some("S256")) => {
            return Err(E::InvalidRequest(
                "code_challenge must be 43 to 128 base64url characters".into(),
            ))
        }
        (None, Some(_)) => return Err(E::InvalidRequest("missing code_challenge".into())),
        // RFC 7636 defaults an absent method to `plain`, which is refused like an explicit one.
        (Some(_), _) => {
            return Err(E::InvalidRequest(
                "code_challenge_method must be S256 (plain is not allowed)".into(),
            ))
        }
    };
    let prompts: Vec<&str> = get("prompt")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(p) = prompts
        .iter()
        .find(|p| !matches!(**p, "none" | "login" | "consent" | "select_account"))
    {
        return Err(E::InvalidRequest(format!("unknown prompt value {p}")));
    }
    let prompt_none = prompts.contains(&"none");
    if prompt_none && prompts.len() > 1 {
        return Err(E::InvalidRequest(
            "prompt=none cannot be combined with other values".into(),
        ));
    }
    let max_age = match get("max_age") {
        None => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| E::InvalidRequest("max_age must be a number of seconds".into()))?,
        ),
    };
    Ok(Validated {
        request: AuthorizationRequest {
            client_id: client.client_id.clone(),
            redirect_uri: redirect_uri.to_string(),
            scope: ordered.join(" "),
            state: get("state").map(str::to_string),
            nonce: get("nonce").map(str::to_string),
            code_challenge,
            max_age,
        },
        prompt_none,
        prompt_login: prompts.contains(&"login"),
    })
}

/// How a request that cannot be served is refused.
#[derive(Debug)]
pub enum Refusal<'a> {
    /// An error page: the client or its redirect URI is not trusted.
    Page(String),
    /// An error redirect to the registered `redirect_uri`, with the request's `state`.
    Redirect {
        redirect_uri: &'a str,
        state: Option<&'a str>,
        error: AuthorizationError,
    },
}

/// Steps one and two on single-valued parameters and the looked-up `client`: the redirect URI,
/// the `state` to echo and the validated request. Pure.
pub fn validate<'a>(
    params: &HashMap<&str, &'a str>,
    client: Option<&ClientRegistration>,
) -> Result<(&'a str, Option<&'a str>, Validated), Refusal<'a>> {
    let redirect_uri = validate_client(params, client).map_err(Refusal::Page)?;
    let Some(client) = client else {
        return Err(Refusal::Page("Unknown client.".into()));
    };
    let state = params.get("state").copied().filter(|s| !s.is_empty());
    match validate_request(params, client, redirect_uri) {
        Ok(v) => Ok((redirect_uri, state, v)),
        Err(error) => Err(Refusal::Redirect {
            redirect_uri,
            state,
            error,
        }),
    }
}

/// Whether a session is recent enough for `max_age` (OpenID Connect Core §3.1.2.1).
/// `max_age=0` asks for a sign-in now, as `prompt=login` does.
pub fn session_fresh_enough(session: &Session, max_age: Option<u64>, now: DateTime<Utc>) -> bool {
    match max_age {
        None => true,
        Some(0) => false,
        Some(max) => now.timestamp() - session.auth_time <= max as i64,
    }
}

/// Whether a session belongs to the user an `id_token_hint` names (OpenID Connect Core
/// §3.1.2.1): a session of someone else does not count, so `prompt=none` gets
/// `login_required` and otherwise the login page is shown.
pub fn session_matches_hint(session: &Session, hint_sub: Option<&str>) -> bool {
    hint_sub.is_none_or(|sub| sub == session.sub)
}

/// A 303 to `uri` with `params` added to its query.
pub fn redirect_with(uri: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(uri) else {
        return html::error_page(
            StatusCode::BAD_REQUEST,
            "The return address is not a valid URL.",
        );
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    see_other(url.as_str())
}

/// A 303 See Other to `location`, never cached.
pub fn see_other(location: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The error redirect of RFC 6749 §4.1.2.1 with `iss` (RFC 9207).
pub fn error_redirect(
    issuer: &str,
    redirect_uri: &str,
    state: Option<&str>,
    error: &AuthorizationError,
) -> Response {
    let description = crate::error::description_text(&error.to_string());
    let mut params = vec![
        ("error", error.code()),
        ("error_description", description.as_str()),
    ];
    if let Some(s) = state {
        params.push(("state", s));
    }
    params.push(("iss", issuer));
    redirect_with(redirect_uri, &params)
}

/// Issues a code for `request` to the signed-in `session` and redirects to the client.
pub async fn issue_code(
    state: &AppState,
    request: AuthorizationRequest,
    session: &Session,
    now: DateTime<Utc>,
) -> Response {
    let code = random_token(32);
    let grant = CodeGrant {
        sub: session.sub.clone(),
        auth_time: session.auth_time,
        amr: session.amr.clone(),
        sid: session.sid.clone(),
        family_id: random_token(16),
        access_jti: crate::tokens::new_jti(),
        expires_at: now + chrono::Duration::seconds(state.config.ttls.authorization_code as i64),
        request,
    };
    let r = &grant.request;
    if state
        .store
        .put_code(&secret_hash(&code), &grant)
        .await
        .is_err()
    {
        return error_redirect(
            &state.config.issuer,
            &r.redirect_uri,
            r.state.as_deref(),
            &AuthorizationError::TemporarilyUnavailable,
        );
    }
    tracing::info!(client_id = %r.client_id, sid = %session.sid, "authorization code issued");
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &r.state {
        params.push(("state", s.as_str()));
    }
    params.push(("iss", state.config.issuer.as_str()));
    redirect_with(&r.redirect_uri, &params)
}

/// The parameters of an authorization request (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1),
/// in the query (GET) or a form (POST). Documentation only: the handler reads the raw pairs so
/// that it can refuse repeated and oversized ones (at most 2048 bytes each, except a request
/// object, `request`, which is refused whatever its size).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthorizationParams {
    /// Must be `code`.
    #[param(example = "code", min_length = 1)]
    #[schema(example = "code", min_length = 1)]
    pub response_type: String,
    /// A registered client.
    #[param(example = "dev-client", min_length = 1)]
    #[schema(example = "dev-client", min_length = 1)]
    pub client_id: String,
    /// One of the client's registered redirect URIs, exactly.
    #[param(example = "http://127.0.0.1:8765/callback", min_length = 1)]
    #[schema(example = "http://127.0.0.1:8765/callback", min_length = 1)]
    pub redirect_uri: String,
    /// Space-separated; must include `openid`; every scope must be allowed for the client.
    #[param(example = "openid profile email", min_length = 1)]
    #[schema(example = "openid profile email", min_length = 1)]
    pub scope: String,
    /// Returned unchanged to the client.
    #[schema(nullable = false, example = "af0ifjsldkj")]
    #[param(nullable = false, example = "af0ifjsldkj")]
    pub state: Option<String>,
    /// Copied into the ID token.
    #[schema(nullable = false)]
    #[param(nullable = false)]
    pub nonce: Option<String>,
    /// PKCE (RFC 7636): base64url SHA-256 of the verifier, 43 to 128 characters. Required for
    /// public clients.
    #[schema(
        nullable = false,
        example = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )]
    #[param(
        nullable = false,
        example = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )]
    pub code_challenge: Option<String>,
    /// `S256` (`plain` is refused).
    #[schema(nullable = false, example = "S256")]
    #[param(nullable = false, example = "S256")]
    pub code_challenge_method: Option<String>,
    /// `query` only.
    #[schema(nullable = false)]
    #[param(nullable = false)]
    pub response_mode: Option<String>,
    /// `none`, or any of `login`, `consent`, `select_account`.
    #[schema(nullable = false)]
    #[param(nullable = false)]
    pub prompt: Option<String>,
    /// Maximum authentication age in seconds (`0` asks for a sign-in now, like `prompt=login`).
    #[schema(nullable = false)]
    #[param(nullable = false)]
    pub max_age: Option<String>,
    /// An ID token this issuer gave the client earlier (expired ones too): a session of another
    /// user then does not count. One this issuer did not sign is `invalid_request`.
    #[schema(nullable = false)]
    #[param(nullable = false)]
    pub id_token_hint: Option<String>,
}

/// GET `/authorize`.
#[utoipa::path(
    get,
    path = "/authorize",
    tag = "public",
    operation_id = "authorize_get",
    params(AuthorizationParams),
    responses(
        (status = 303, description = "To `/login` (no usable session), or to the client's redirect URI with `code`, `state` and `iss` (signed in), or with `error`, `error_description`, `state` and `iss` (RFC 6749 §4.1.2.1)",
         headers(("Location" = String, description = "Where the browser goes next"))),
        (status = 400, description = "An error page: unknown client, missing or unregistered redirect URI, malformed, repeated or oversized parameters (never redirected)", content_type = "text/html", body = String),
    ),
)]
pub async fn authorize_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<RawParams>, QueryRejection>,
) -> Response {
    match query {
        Ok(Query(raw)) => authorize(&state, &headers, raw).await,
        Err(_) => html::error_page(StatusCode::BAD_REQUEST, "The sign-in request is malformed."),
    }
}

/// POST `/authorize` (form-encoded, OpenID Connect Core §3.1.2.1).
#[utoipa::path(
    post,
    path = "/authorize",
    tag = "public",
    operation_id = "authorize_post",
    request_body(content = AuthorizationParams, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "As for GET", headers(("Location" = String, description = "Where the browser goes next"))),
        (status = 400, description = "An error page, as for GET", content_type = "text/html", body = String),
    ),
)]
pub async fn authorize_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<RawParams>, FormRejection>,
) -> Response {
    match form {
        Ok(Form(raw)) => authorize(&state, &headers, raw).await,
        Err(_) => html::error_page(StatusCode::BAD_REQUEST, "The sign-in request is malformed."),
    }
}

async fn authorize(state: &AppState, headers: &HeaderMap, raw: RawParams) -> Response {
    let issuer = &state.config.issuer;
    let params = match single_valued(&raw) {
        Ok(p) => p,
        Err(m) => {
            return html::error_page(
                StatusCode::BAD_REQUEST,
                &format!("The sign-in request is malformed: {m}."),
            )
        }
    };
    let client = match params.get("client_id") {
        Some(id) if !id.is_empty() => match state.store.client(id).await {
            Ok(c) => c,
            Err(_) => return unavailable(),
        },
        _ => None,
    };
    let (redirect_uri, state_param, v) = match validate(&params, client.as_deref()) {
        Ok(ok) => ok,
        Err(Refusal::Page(m)) => return html::error_page(StatusCode::BAD_REQUEST, &m),
        Err(Refusal::Redirect {
            redirect_uri,
            state,
            error,
        }) => return error_redirect(issuer, redirect_uri, state, &error),
    };
    let now = Utc::now();
    let hint_sub = match params.get("id_token_hint").filter(|h| !h.is_empty()) {
        None => None,
        Some(hint) => match verify_id_token_hint(&state.keys.get(), issuer, hint, now) {
            Ok(claims) => Some(claims.sub),
            Err(_) => {
                return error_redirect(
                    issuer,
                    redirect_uri,
                    state_param,
                    &AuthorizationError::InvalidRequest(
                        "id_token_hint was not issued by this provider".into(),
                    ),
                )
            }
        },
    };
    let session = match sessions::current(state, headers, now).await {
        Ok(s) => s,
        Err(_) => {
            return error_redirect(
                issuer,
                redirect_uri,
                state_param,
                &AuthorizationError::TemporarilyUnavailable,
            )
        }
    };
    let usable = session.filter(|(s, _)| {
        !v.prompt_login
            && session_fresh_enough(s, v.request.max_age, now)
            && session_matches_hint(s, hint_sub.as_deref())
    });
    // A session without the second factor this user now needs does not count (re-prompt).
    let usable = match usable {
        Some((session, user)) => match super::mfa::session_suffices(state, &session, &user).await {
            Ok(true) => Some((session, user)),
            Ok(false) => None,
            Err(_) => {
                return error_redirect(
                    issuer,
                    redirect_uri,
                    state_param,
                    &AuthorizationError::TemporarilyUnavailable,
                )
            }
        },
        None => None,
    };
    if let Some((session, _user)) = usable {
        return issue_code(state, v.request, &session, now).await;
    }
    if v.prompt_none {
        return error_redirect(
            issuer,
            redirect_uri,
            state_param,
            &AuthorizationError::LoginRequired,
        );
    }
    let id = random_token(24);
    let pending = PendingAuthorization {
        request: v.request,
        expires_at: now + chrono::Duration::seconds(LOGIN_REQUEST_TTL_SECS),
    };
    if state.store.put_pending(&id, &pending).await.is_err() {
        return error_redirect(
            issuer,
            redirect_uri,
            state_param,
            &AuthorizationError::TemporarilyUnavailable,
        );
    }
    let login = format!("{}?request={id}", state.config.endpoint("/login"));
    see_other(&login)
}

fn unavailable() -> Response {
    let mut resp = html::unavailable_page();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_wire::registration::TokenEndpointAuthMethod;

    fn client(public: bool) -> ClientRegistration {
        ClientRegistration {
            client_id: "app".into(),
            client_name: None,
            redirect_uris: vec!["https://app.example/cb".into()],
            post_logout_redirect_uris: vec![],
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: vec!["openid".into(), "email".into()],
            token_endpoint_auth_method: if public {
                TokenEndpointAuthMethod::None
            } else {
                TokenEndpointAuthMethod::ClientSecretBasic
            },
            public,
            client_secret_hash: None,
        }
    }

    fn raw(pairs: &[(&str, &str)]) -> RawParams {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn validate(public: bool, extra: &[(&str, &str)]) -> Result<Validated, AuthorizationError> {
        let mut p = vec![
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", "https://app.example/cb"),
            ("scope", "openid email"),
        ];
        for (k, v) in extra {
            p.retain(|(name, _)| name != k);
            p.push((k, v));
        }
        let raw = raw(&p);
        let params = single_valued(&raw).unwrap();
        validate_request(&params, &client(public), "https://app.example/cb")
    }

    #[test]
    fn redirect_uris_match_exactly_or_not_at_all() {
        let c = client(false);
        assert!(redirect_uri_registered(&c, "https://app.example/cb"));
        for near_miss in [
            "https://app.example/cb/",
            "https://app.example/cb?x=1",
            "https://app.example/cb#f",
            "https://APP.example/cb",
            "https://app.example/c",
            "https://app.example/cb/../cb",
            "http://app.example/cb",
        ] {
            assert!(!redirect_uri_registered(&c, near_miss), "{near_miss}");
        }
    }

    #[test]
    fn unknown_client_or_mismatched_redirect_is_a_page_never_a_redirect() {
        let r = raw(&[
            ("client_id", "app"),
            ("redirect_uri", "https://evil.example/cb"),
        ]);
        let p = single_valued(&r).unwrap();
        assert!(validate_client(&p, Some(&client(false))).is_err());
        assert!(validate_client(&p, None).is_err());
        let missing = raw(&[("client_id", "app")]);
        assert!(validate_client(&single_valued(&missing).unwrap(), Some(&client(false))).is_err());
    }

    #[test]
    fn repeated_or_oversized_parameters_are_refused() {
        assert!(single_valued(&raw(&[("state", "a"), ("state", "b")])).is_err());
        let long = "x".repeat(MAX_PARAM_LEN + 1);
        assert!(single_valued(&raw(&[("state", long.as_str())])).is_err());
        // A long request object still reaches the request_not_supported answer.
        let p = raw(&[("request", long.as_str())]);
        let p = single_valued(&p).unwrap();
        assert!(matches!(
            validate_request(&p, &client(false), "https://app.example/cb"),
            Err(AuthorizationError::RequestNotSupported)
        ));
    }

    #[test]
    fn public_clients_need_s256_pkce_and_plain_is_refused() {
        assert!(matches!(
            validate(true, &[]),
            Err(AuthorizationError::InvalidRequest(_))
        ));
        assert!(matches!(
            validate(
                true,
                &[
                    ("code_challenge", CHALLENGE),
                    ("code_challenge_method", "plain")
                ]
            ),
            Err(AuthorizationError::InvalidRequest(_))
        ));
        assert!(
            matches!(
                validate(true, &[("code_challenge", CHALLENGE)]),
                Err(AuthorizationError::InvalidRequest(_))
            ),
            "an absent method means plain"
        );
        let ok = validate(
            true,
            &[
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ],
        )
        .unwrap();
        assert_eq!(ok.request.code_challenge.as_deref(), Some(CHALLENGE));
        assert!(validate(false, &[])
            .unwrap()
            .request
            .code_challenge
            .is_none());
    }

    #[test]
    fn scopes_response_type_and_prompt_are_checked() {
        let v = validate(false, &[("state", "s1"), ("nonce", "n1")]).unwrap();
        assert_eq!(v.request.scope, "openid email");
        assert_eq!(v.request.state.as_deref(), Some("s1"));
        assert_eq!(v.request.nonce.as_deref(), Some("n1"));
        let r = raw(&[("response_type", "token"), ("scope", "openid")]);
        let mut p = single_valued(&r).unwrap();
        assert!(matches!(
            validate_request(&p, &client(false), "https://app.example/cb"),
            Err(AuthorizationError::UnsupportedResponseType(_))
        ));
        p.insert("response_type", "code");
        p.insert("scope", "email");
        assert!(
            matches!(
                validate_request(&p, &client(false), "https://app.example/cb"),
                Err(AuthorizationError::InvalidScope(_))
            ),
            "openid is required"
        );
        p.insert("scope", "openid admin");
        assert!(matches!(
            validate_request(&p, &client(false), "https://app.example/cb"),
            Err(AuthorizationError::InvalidScope(_))
        ));
        assert!(
            validate(false, &[("scope", "openid offline_access")]).is_err(),
            "offline_access needs the refresh_token grant"
        );
        assert!(validate(false, &[("prompt", "none")]).unwrap().prompt_none);
        assert!(validate(false, &[("prompt", "none login")]).is_err());
        assert!(validate(false, &[("prompt", "bogus")]).is_err());
        assert!(validate(false, &[("max_age", "abc")]).is_err());
        assert!(matches!(
            validate(false, &[("request", "eyJ")]),
            Err(AuthorizationError::RequestNotSupported)
        ));
    }

    /// A session of user `u` signed in `age` seconds before `now`.
    fn session(now: DateTime<Utc>, age: i64) -> Session {
        Session {
            sid: "s".into(),
            sub: "u".into(),
            auth_time: now.timestamp() - age,
            amr: vec!["pwd".into()],
            expires_at: now,
        }
    }

    #[test]
    fn max_age_forces_a_new_login_for_old_sessions() {
        let now = Utc::now();
        let s = session(now, 100);
        assert!(session_fresh_enough(&s, None, now));
        assert!(session_fresh_enough(&s, Some(100), now));
        assert!(!session_fresh_enough(&s, Some(99), now));
        let just_now = session(now, 0);
        assert!(session_fresh_enough(&just_now, Some(1), now));
        assert!(
            !session_fresh_enough(&just_now, Some(0), now),
            "max_age=0 is prompt=login"
        );
    }

    #[test]
    fn a_hint_for_another_user_makes_the_session_unusable() {
        let s = session(Utc::now(), 0);
        assert!(session_matches_hint(&s, None));
        assert!(session_matches_hint(&s, Some("u")));
        assert!(!session_matches_hint(&s, Some("someone-else")));
    }

    #[test]
    fn error_redirects_carry_state_and_iss() {
        let resp = error_redirect(
            "https://id.example/realm",
            "https://app.example/cb?x=1",
            Some("st"),
            &AuthorizationError::LoginRequired,
        );
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let loc = url::Url::parse(resp.headers()[header::LOCATION].to_str().unwrap()).unwrap();
        let q: HashMap<_, _> = loc.query_pairs().into_owned().collect();
        assert_eq!(q["x"], "1");
        assert_eq!(q["error"], "login_required");
        assert_eq!(q["state"], "st");
        assert_eq!(q["iss"], "https://id.example/realm");
    }

    #[test]
    fn validate_pages_untrusted_redirects_and_redirects_the_rest_with_state() {
        let base = raw(&[
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", "https://app.example/cb"),
            ("state", "st"),
        ]);
        let params = single_valued(&base).unwrap();
        assert!(matches!(
            super::validate(&params, None),
            Err(Refusal::Page(m)) if m.contains("unknown client_id")
        ));
        let c = client(false);
        match super::validate(&params, Some(&c)) {
            Err(Refusal::Redirect {
                redirect_uri,
                state,
                error: AuthorizationError::InvalidScope(_),
            }) => {
                assert_eq!(redirect_uri, "https://app.example/cb");
                assert_eq!(state, Some("st"));
            }
            other => panic!("expected an invalid_scope redirect, got {other:?}"),
        }
        let mut good = base.clone();
        good.push(("scope".into(), "openid".into()));
        let params = single_valued(&good).unwrap();
        let (uri, state, v) = super::validate(&params, Some(&c)).unwrap();
        assert_eq!((uri, state), ("https://app.example/cb", Some("st")));
        assert_eq!(v.request.scope, "openid");
    }
}
