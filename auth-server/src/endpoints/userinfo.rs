//! `/userinfo` (OpenID Connect Core §5.3), GET or POST with a Bearer access token (RFC 6750
//! §2.1). The token must verify with our keys, not be revoked, carry `openid`, and belong to a
//! user who still exists and is enabled. Claims follow the token's scopes.

use crate::error::{ErrorBody, OAuthError};
use crate::grants::profile_claims;
use crate::state::AppState;
use crate::tokens::verify;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;

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

/// The userinfo endpoint (GET or POST alike).
#[utoipa::path(
    method(get, post),
    path = "/userinfo",
    tag = "public",
    security(("access_token" = [])),
    responses(
        (status = 200, description = "The user's claims", body = UserInfo,
         headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 401, description = "`invalid_token`: no bearer token, or not a live token of this issuer for an enabled user", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`"))),
        (status = 403, description = "`insufficient_scope`: the token lacks `openid`", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer error=\"insufficient_scope\"`"))),
    ),
)]
pub async fn userinfo(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let token = bearer(&headers).ok_or(OAuthError::Unauthorized)?;
    let claims = verify(
        &state.keys.get(),
        &state.config.issuer,
        token,
        chrono::Utc::now(),
    )
    .map_err(|_| OAuthError::Unauthorized)?;
    if state.store.is_revoked(&claims.jti).await? {
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
