//! Grant handlers behind the `/token` dispatcher (`endpoints/token.rs`), one file each, and the
//! token minting they share.

pub mod authorization_code;
pub mod client_credentials;
pub mod pkce;
pub mod refresh_token;

use crate::audit::{AuditEvent, AuditRecord, Outcome};
use crate::error::OAuthError;
use crate::metrics::GrantLabels;
use crate::state::AppState;
use crate::store::{secret_hash, RefreshGrant, User};
use crate::tokens::{at_hash, AccessClaims, IdClaims, ACCESS_TOKEN_TYP, ID_TOKEN_TYP};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use palisade_wire::registration::{random_token, ClientRegistration, GrantType};

/// The profile claims a scope set releases (ID token and `/userinfo` alike).
pub fn profile_claims(user: &User, scope: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    let has = |s: &str| scope.split(' ').any(|x| x == s);
    if has("profile") {
        m.insert("preferred_username".into(), user.username.clone().into());
        if let Some(name) = &user.name {
            m.insert("name".into(), name.clone().into());
        }
    }
    if has("email") {
        if let Some(email) = &user.email {
            m.insert("email".into(), email.clone().into());
            m.insert("email_verified".into(), user.email_verified.into());
        }
    }
    m
}

/// A token endpoint success response (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// A JWT access token (`typ` `at+jwt`, RFC 9068).
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(value_type = String, example = "Bearer")]
    pub token_type: &'static str,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
    /// The granted scopes, space-separated (absent when none were granted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The ID token (a JWT), when `openid` was granted to a user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// An opaque, single-use refresh token, for clients registered with the refresh_token grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// What a user's token response is minted from.
pub struct UserGrant<'a> {
    pub client: &'a ClientRegistration,
    pub user: &'a User,
    /// Scope of this access token.
    pub scope: String,
    /// Scope the refresh token keeps (narrowing at refresh does not shrink it).
    pub refresh_scope: String,
    pub auth_time: i64,
    /// How the user authenticated (`amr`), carried from the session.
    pub amr: Vec<String>,
    pub sid: String,
    pub nonce: Option<String>,
    pub family_id: String,
    pub access_jti: String,
    pub grant_type: GrantType,
    /// A refresh token already stored by a rotation; `None`: mint one when the client may
    /// refresh.
    pub refresh_token: Option<String>,
}

/// Mints the access token, the ID token (with `openid`) and, for clients allowed the
/// refresh_token grant, a new refresh token in the grant's family.
pub async fn user_tokens(
    state: &AppState,
    g: UserGrant<'_>,
    now: DateTime<Utc>,
) -> Result<Response, OAuthError> {
    let c = &state.config;
    let keys = state.keys.get();
    let alg = keys
        .set
        .signing_key(now)
        .ok_or(OAuthError::TemporarilyUnavailable)?
        .alg;
    let access = AccessClaims::for_user(
        &c.issuer,
        &g.client.client_id,
        &g.user.sub,
        g.scope.clone(),
        g.access_jti.clone(),
        now,
        c.ttls.access,
    )
    .under_grant(&g.family_id);
    let access_token = keys
        .sign(&access, ACCESS_TOKEN_TYP, now)
        .ok_or(OAuthError::TemporarilyUnavailable)?;
    let mut body = TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: c.ttls.access,
        scope: None,
        id_token: None,
        refresh_token: None,
    };
    if g.scope.split(' ').any(|s| s == "openid") {
        let id = IdClaims {
            iss: c.issuer.clone(),
            sub: g.user.sub.clone(),
            aud: g.client.client_id.clone(),
            azp: g.client.client_id.clone(),
            exp: now.timestamp() + c.ttls.id as i64,
            iat: now.timestamp(),
            auth_time: g.auth_time,
            acr: crate::auth_methods::acr(&g.amr),
            amr: g.amr.clone(),
            nonce: g.nonce.clone(),
            at_hash: Some(at_hash(&body.access_token, alg)),
            sid: g.sid.clone(),
            profile: profile_claims(g.user, &g.scope),
        };
        body.id_token = Some(
            keys.sign(&id, ID_TOKEN_TYP, now)
                .ok_or(OAuthError::TemporarilyUnavailable)?,
        );
    }
    if let Some(token) = g.refresh_token {
        body.refresh_token = Some(token);
    } else if g.client.grant_types.contains(&GrantType::RefreshToken) {
        let token = random_token(32);
        let grant = RefreshGrant {
            family_id: g.family_id.clone(),
            client_id: g.client.client_id.clone(),
            sub: g.user.sub.clone(),
            scope: g.refresh_scope.clone(),
            auth_time: g.auth_time,
            amr: g.amr.clone(),
            sid: g.sid.clone(),
            expires_at: now + chrono::Duration::seconds(c.ttls.refresh as i64),
        };
        state
            .store
            .put_refresh(&secret_hash(&token), &grant)
            .await?;
        body.refresh_token = Some(token);
    }
    body.scope = Some(g.scope);
    issued(state, g.grant_type, &g.user.sub, &g.client.client_id, now);
    Ok(token_response(body))
}

/// Counts and audits tokens issued to `sub` through `client_id`.
pub fn issued(
    state: &AppState,
    grant_type: GrantType,
    sub: &str,
    client_id: &str,
    now: DateTime<Utc>,
) {
    state
        .metrics
        .token_issued
        .get_or_create(&GrantLabels {
            grant_type: grant_type.as_str(),
        })
        .inc();
    if grant_type == GrantType::ClientCredentials {
        state.audit.machine_token(client_id, now);
    } else {
        state.audit.record(
            AuditRecord::new(AuditEvent::TokenIssued, Outcome::Success, now)
                .subject(sub)
                .client(client_id)
                .detail(grant_type.as_str()),
        );
    }
}

/// A token endpoint success response: JSON, never cached (RFC 6749 §5.1).
pub fn token_response<T: serde::Serialize>(body: T) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(body),
    )
        .into_response()
}

/// The user a grant was issued to, if they may still get tokens.
pub async fn active_user(state: &AppState, sub: &str) -> Result<User, OAuthError> {
    match state.store.user_by_sub(sub).await? {
        Some(u) if !u.disabled => Ok(u),
        _ => Err(OAuthError::InvalidGrant(
            "the user no longer exists or is disabled".into(),
        )),
    }
}

/// Scope narrowing (RFC 6749 §6): the requested scopes must all be in `granted`; none
/// requested means all of them.
pub fn narrow_scope(granted: &str, requested: Option<&str>) -> Result<String, OAuthError> {
    let Some(req) = requested.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(granted.to_string());
    };
    let allowed: Vec<&str> = granted.split(' ').collect();
    let mut out: Vec<&str> = Vec::new();
    for s in req.split(' ').filter(|s| !s.is_empty()) {
        if !allowed.contains(&s) {
            return Err(OAuthError::InvalidScope(format!(
                "scope {s} was not granted originally"
            )));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            username: "alice".into(),
            sub: "s-1".into(),
            password_hash: Some("$argon2id$...".into()),
            email: Some("alice@example.com".into()),
            email_verified: true,
            name: Some("Alice".into()),
            disabled: false,
            mfa_required: false,
        }
    }

    #[test]
    fn claims_follow_the_scopes_and_never_include_the_hash() {
        let none = profile_claims(&user(), "openid");
        assert!(none.is_empty());
        let email = profile_claims(&user(), "openid email");
        assert_eq!(email["email"], "alice@example.com");
        assert_eq!(email["email_verified"], true);
        assert!(!email.contains_key("name"));
        let all = profile_claims(&user(), "openid profile email");
        assert_eq!(all["preferred_username"], "alice");
        assert_eq!(all["name"], "Alice");
        assert!(!serde_json::to_string(&all).unwrap().contains("argon2"));
    }

    #[test]
    fn refresh_may_narrow_but_never_widen_the_scope() {
        assert_eq!(narrow_scope("openid email", None).unwrap(), "openid email");
        assert_eq!(
            narrow_scope("openid email", Some("openid")).unwrap(),
            "openid"
        );
        assert!(matches!(
            narrow_scope("openid", Some("openid email")),
            Err(OAuthError::InvalidScope(_))
        ));
    }
}
