//! `/token` (RFC 6749 §3.2): authenticates the client, then dispatches on `grant_type`.
//! Implemented: client_credentials. The authorization_code and refresh_token grants answer
//! `unsupported_grant_type` until the authorization endpoint lands.

use super::{form, required, Params};
use crate::client_auth::authenticate_form;
use crate::error::OAuthError;
use crate::metrics::GrantLabels;
use crate::state::AppState;
use crate::tokens::{AccessClaims, ACCESS_TOKEN_TYP};
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::{Form, Json};
use palisade_wire::registration::{ClientRegistration, GrantType};

/// Decides the granted scope: the requested scopes, all of which the client must be allowed;
/// none requested means every allowed scope.
pub fn granted_scope(
    reg: &ClientRegistration,
    requested: Option<&str>,
) -> Result<String, OAuthError> {
    match requested.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(reg.scopes.join(" ")),
        Some(req) => {
            for s in req.split(' ').filter(|s| !s.is_empty()) {
                if !reg.scopes.iter().any(|a| a == s) {
                    return Err(OAuthError::InvalidScope(format!(
                        "scope {s} is not allowed for this client"
                    )));
                }
            }
            Ok(req
                .split(' ')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" "))
        }
    }
}

/// A successful token response (RFC 6749 §5.1), serialized without an intermediate value.
#[derive(serde::Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
}

/// The token endpoint.
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Form<Params>, FormRejection>,
) -> Result<impl IntoResponse, OAuthError> {
    let p = form(body)?;
    let grant = required(&p, "grant_type")?;
    let client = authenticate_form(state.store.as_ref(), &headers, &p).await?;
    match grant {
        "client_credentials" => client_credentials(&state, &client, &p).await,
        "authorization_code" | "refresh_token" => Err(OAuthError::UnsupportedGrantType(format!(
            "{grant} is not supported by this server yet"
        ))),
        other => Err(OAuthError::UnsupportedGrantType(format!(
            "unknown grant_type {other}"
        ))),
    }
}

async fn client_credentials(
    state: &AppState,
    client: &ClientRegistration,
    p: &Params,
) -> Result<axum::response::Response, OAuthError> {
    if client.public || !client.grant_types.contains(&GrantType::ClientCredentials) {
        return Err(OAuthError::UnauthorizedClient(
            "this client may not use client_credentials".into(),
        ));
    }
    let scope = granted_scope(client, p.get("scope").map(String::as_str))?;
    let now = chrono::Utc::now();
    let ttl = state.config.ttls.access;
    let audience = p
        .get("resource")
        .cloned()
        .unwrap_or_else(|| state.config.issuer.clone());
    let claims = AccessClaims::for_client(
        &state.config.issuer,
        &client.client_id,
        &audience,
        scope.clone(),
        now,
        ttl,
    );
    let token = state
        .keys
        .get()
        .sign(&claims, ACCESS_TOKEN_TYP, now)
        .ok_or(OAuthError::TemporarilyUnavailable)?;
    state
        .metrics
        .token_issued
        .get_or_create(&GrantLabels {
            grant_type: "client_credentials",
        })
        .inc();
    let body = TokenResponse {
        access_token: &token,
        token_type: "Bearer",
        expires_in: ttl,
        scope: &scope,
    };
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(body),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_wire::registration::TokenEndpointAuthMethod;

    #[test]
    fn requested_scopes_must_be_allowed() {
        let reg = ClientRegistration {
            client_id: "m".into(),
            client_name: None,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grant_types: vec![GrantType::ClientCredentials],
            scopes: vec!["api.read".into(), "api.write".into()],
            token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
            public: false,
            client_secret_hash: None,
        };
        assert_eq!(granted_scope(&reg, None).unwrap(), "api.read api.write");
        assert_eq!(granted_scope(&reg, Some("api.read")).unwrap(), "api.read");
        assert!(matches!(
            granted_scope(&reg, Some("api.read admin")),
            Err(OAuthError::InvalidScope(_))
        ));
    }
}
