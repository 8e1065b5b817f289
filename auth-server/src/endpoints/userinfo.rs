//! `/userinfo` (OpenID Connect Core §5.3), GET or POST with a Bearer access token in the
//! `Authorization` header (RFC 6750 §2.1) or, on a POST, as `access_token` in a form body
//! (§2.2). The token must verify with our keys, not be revoked, carry `openid`, and belong to a
//! user who still exists and is enabled. Claims follow the token's scopes.

use crate::error::{ErrorBody, OAuthError};
use crate::grants::profile_claims;
use crate::revocation::access_token_revoked;
use crate::state::AppState;
use crate::tokens::verify;
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};

/// The bearer token of the `Authorization` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// The userinfo answer (OpenID Connect Core §5.3.2): `sub` and the claims the token's scopes
/// release ([`profile_claims`]). Documentation of that map's shape.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UserInfo {
    /// The user's subject identifier.
    pub sub: String,
    /// With scope `profile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// With scope `profile`, when the user has a name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// With scope `email`, when the user has an address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// With scope `email`, when the user has an address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// The form body of a POST to `/userinfo` that carries its token there (RFC 6750 §2.2).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct UserinfoForm {
    /// The access token, when it is not in the `Authorization` header (never both).
    #[schema(min_length = 1)]
    pub access_token: String,
}

/// The userinfo endpoint, GET: the token in the `Authorization` header.
#[utoipa::path(
    get,
    path = "/userinfo",
    tag = "public",
    security(("access_token" = [])),
    responses(
        (status = 200, description = "The user's claims", body = UserInfo,
         headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 401, description = "`invalid_token`: no bearer token (the challenge then carries no error code, RFC 6750 §3.1), or not a live token of this issuer for an enabled user", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`, or `Bearer realm=\"palisade\"` without a token"))),
        (status = 403, description = "`insufficient_scope`: the token lacks `openid`", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer error=\"insufficient_scope\"`"))),
    ),
)]
pub async fn userinfo(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let token = bearer(&headers).ok_or(OAuthError::NoToken)?;
    answer(&state, token).await
}

/// The userinfo endpoint, POST: the token in the `Authorization` header or as `access_token`
/// in a form body, not both.
#[utoipa::path(
    post,
    path = "/userinfo",
    tag = "public",
    operation_id = "userinfo_post",
    security((), ("access_token" = [])),
    request_body(content = Option<UserinfoForm>, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The user's claims", body = UserInfo,
         headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, description = "`invalid_request`: a token in both the header and the body, or a malformed body", body = ErrorBody),
        (status = 401, description = "`invalid_token`: no token (the challenge then carries no error code, RFC 6750 §3.1), or not a live token of this issuer for an enabled user", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`, or `Bearer realm=\"palisade\"` without a token"))),
        (status = 403, description = "`insufficient_scope`: the token lacks `openid`", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer error=\"insufficient_scope\"`"))),
    ),
)]
pub async fn userinfo_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<super::FormPairs>, FormRejection>,
) -> Result<Response, OAuthError> {
    // A POST without a form body (no Content-Type, say) carries its token in the header only.
    let body_token = match form {
        Err(FormRejection::InvalidFormContentType(_)) => None,
        form => super::form(form)?.remove("access_token"),
    };
    match (bearer(&headers), body_token.as_deref()) {
        (Some(_), Some(_)) => Err(OAuthError::InvalidRequest(
            "send the access token in the Authorization header or the body, not both".into(),
        )),
        (Some(token), None) => answer(&state, token).await,
        (None, Some(token)) if !token.is_empty() => answer(&state, token).await,
        (None, _) => Err(OAuthError::NoToken),
    }
}

/// The claims for `token`, or why not.
async fn answer(state: &AppState, token: &str) -> Result<Response, OAuthError> {
    let claims = verify(
        &state.keys.get(),
        &state.config.issuer,
        token,
        chrono::Utc::now(),
    )
    .map_err(|_| OAuthError::Unauthorized)?;
    if access_token_revoked(state.store.as_ref(), &claims).await? {
        return Err(OAuthError::Unauthorized);
    }
    if !claims.scope.split(' ').any(|s| s == "openid") {
        return Err(OAuthError::InsufficientScope(
            "the access token lacks the openid scope".into(),
        ));
    }
    let user = match state.store.user_by_sub(&claims.sub).await? {
        Some(u) if !u.disabled => u,
        _ => return Err(OAuthError::Unauthorized),
    };
    let mut body = profile_claims(&user, &claims.scope);
    body.insert("sub".into(), user.sub.into());
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::AUTHORIZATION, v.parse().unwrap());
            m
        };
        assert_eq!(bearer(&h("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&h("bearer abc")), Some("abc"));
        assert_eq!(bearer(&h("Basic abc")), None);
        assert_eq!(bearer(&h("Bearer ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
