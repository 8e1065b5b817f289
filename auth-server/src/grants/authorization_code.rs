//! The authorization_code grant (RFC 6749 §4.1.3, RFC 7636): exchanges a single-use code,
//! checking PKCE and the redirect URI. A replayed code is refused and revokes what its first
//! use minted (RFC 6749 §4.1.2: "SHOULD revoke").

use super::{active_user, pkce, user_tokens, UserGrant};
use crate::endpoints::{required, Params};
use crate::error::OAuthError;
use crate::revocation::revoke_grant;
use crate::state::AppState;
use crate::store::{secret_hash, CodeGrant, Redeemed};
use axum::response::Response;
use chrono::{DateTime, Utc};
use palisade_wire::registration::{ClientRegistration, GrantType};

/// Checks a freshly redeemed code against the token request. Pure.
pub fn check(
    grant: &CodeGrant,
    client_id: &str,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), OAuthError> {
    let bad = |m: &str| Err(OAuthError::InvalidGrant(m.into()));
    if grant.expires_at <= now {
        return bad("the authorization code has expired");
    }
    if grant.request.client_id != client_id {
        return bad("the authorization code was issued to another client");
    }
    if redirect_uri != Some(grant.request.redirect_uri.as_str()) {
        return bad("redirect_uri must equal the one of the authorization request");
    }
    match (&grant.request.code_challenge, code_verifier) {
        (Some(challenge), Some(verifier)) if pkce::verify_s256(challenge, verifier) => Ok(()),
        (Some(_), Some(_)) => bad("the code_verifier does not match the code_challenge"),
        (Some(_), None) => bad("missing code_verifier"),
        // A verifier without a challenge is a PKCE downgrade attempt (RFC 9700 §2.1.1).
        (None, Some(_)) => bad("code_verifier sent but no code_challenge was"),
        (None, None) => Ok(()),
    }
}

/// Handles `grant_type=authorization_code` for an authenticated client.
pub async fn grant(
    state: &AppState,
    client: &ClientRegistration,
    p: &Params,
) -> Result<Response, OAuthError> {
    if !client.grant_types.contains(&GrantType::AuthorizationCode) {
        return Err(OAuthError::UnauthorizedClient(
            "this client may not use authorization_code".into(),
        ));
    }
    let code = required(p, "code")?;
    let now = Utc::now();
    let grant = match state.store.redeem_code(&secret_hash(code)).await? {
        Redeemed::Fresh(g) => g,
        Redeemed::AlreadyUsed(g) => {
            // The grant (its refresh tokens and access tokens), and the first access token by
            // its id too: one minted before access tokens carried their grant has no grant_id.
            let ttls = state.config.ttls;
            revoke_grant(state.store.as_ref(), &g.family_id, &ttls, now).await?;
            state
                .store
                .revoke_jti(
                    &g.access_jti,
                    now + chrono::Duration::seconds(ttls.access as i64),
                )
                .await?;
            tracing::warn!(client_id = %client.client_id, "authorization code replayed; revoked its tokens");
            return Err(OAuthError::InvalidGrant(
                "the authorization code was already used".into(),
            ));
        }
        Redeemed::Unknown => {
            return Err(OAuthError::InvalidGrant(
                "the authorization code is invalid".into(),
            ))
        }
    };
    check(
        &grant,
        &client.client_id,
        p.get("redirect_uri").map(String::as_str),
        p.get("code_verifier").map(String::as_str),
        now,
    )?;
    let user = active_user(state, &grant.sub).await?;
    let scope = grant.request.scope.clone();
    user_tokens(
        state,
        UserGrant {
            client,
            user: &user,
            scope: scope.clone(),
            refresh_scope: scope,
            auth_time: grant.auth_time,
            amr: grant.amr,
            sid: grant.sid,
            nonce: grant.request.nonce,
            family_id: grant.family_id,
            access_jti: grant.access_jti,
            grant_type: GrantType::AuthorizationCode,
            refresh_token: None,
        },
        now,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuthorizationRequest;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn code(challenge: Option<&str>, now: DateTime<Utc>) -> CodeGrant {
        CodeGrant {
            request: AuthorizationRequest {
                client_id: "app".into(),
                redirect_uri: "https://app.example/cb".into(),
                scope: "openid".into(),
                state: None,
                nonce: Some("n".into()),
                code_challenge: challenge.map(str::to_string),
                max_age: None,
            },
            sub: "u".into(),
            auth_time: now.timestamp(),
            amr: vec!["pwd".into()],
            sid: "s".into(),
            family_id: "f".into(),
            access_jti: "j".into(),
            expires_at: now + chrono::Duration::seconds(60),
        }
    }

    #[test]
    fn pkce_redirect_uri_client_and_expiry_are_all_enforced() {
        let now = Utc::now();
        let challenge = pkce::s256_challenge(VERIFIER);
        let g = code(Some(&challenge), now);
        let cb = Some("https://app.example/cb");
        assert!(check(&g, "app", cb, Some(VERIFIER), now).is_ok());
        assert!(check(&g, "app", cb, None, now).is_err(), "missing verifier");
        assert!(
            check(&g, "app", cb, Some(&challenge), now).is_err(),
            "plain"
        );
        assert!(check(&g, "other", cb, Some(VERIFIER), now).is_err());
        assert!(check(&g, "app", None, Some(VERIFIER), now).is_err());
        assert!(check(
            &g,
            "app",
            Some("https://app.example/cb2"),
            Some(VERIFIER),
            now
        )
        .is_err());
        let later = now + chrono::Duration::seconds(60);
        assert!(
            check(&g, "app", cb, Some(VERIFIER), later).is_err(),
            "expired"
        );
        let without = code(None, now);
        assert!(check(&without, "app", cb, None, now).is_ok());
        assert!(
            check(&without, "app", cb, Some(VERIFIER), now).is_err(),
            "PKCE downgrade"
        );
    }
}
