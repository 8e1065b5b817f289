//! The refresh_token grant (RFC 6749 §6) with rotation: every use marks the token used and
//! stores a new one in the same family, in one atomic step. Presenting a used token means two parties hold it, so
//! the whole family is revoked (RFC 9700 §4.14.2).

use super::{active_user, narrow_scope, user_tokens, UserGrant};
use crate::audit::{AuditEvent, AuditRecord, Outcome};
use crate::endpoints::{required, Params};
use crate::error::OAuthError;
use crate::revocation::revoke_grant;
use crate::state::AppState;
use crate::store::{secret_hash, Redeemed, RefreshGrant};
use axum::response::Response;
use chrono::{DateTime, Utc};
use palisade_wire::registration::{random_token, ClientRegistration, GrantType};

/// What to do with a presented refresh token.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Valid: mint new tokens from this grant.
    Rotate(RefreshGrant),
    /// Refuse without side effects.
    Reject(&'static str),
    /// Refuse and revoke the family of user `sub`; `reuse` when it was a replay of a used
    /// token.
    RevokeFamily {
        family_id: String,
        sub: String,
        reuse: bool,
    },
}

/// Decides from the redemption, the family's state and the clock. Pure.
pub fn decide(
    redeemed: Redeemed<RefreshGrant>,
    family_revoked: bool,
    client_id: &str,
    now: DateTime<Utc>,
) -> Decision {
    match redeemed {
        Redeemed::Unknown => Decision::Reject("the refresh token is invalid"),
        Redeemed::AlreadyUsed(g) => Decision::RevokeFamily {
            family_id: g.family_id,
            sub: g.sub,
            reuse: true,
        },
        Redeemed::Fresh(_) if family_revoked => Decision::Reject("the refresh token was revoked"),
        // Another client holding this token means it leaked: the whole family goes.
        Redeemed::Fresh(g) if g.client_id != client_id => Decision::RevokeFamily {
            family_id: g.family_id,
            sub: g.sub,
            reuse: false,
        },
        Redeemed::Fresh(g) if g.expires_at <= now => {
            Decision::Reject("the refresh token has expired")
        }
        Redeemed::Fresh(g) => Decision::Rotate(g),
    }
}

/// Handles `grant_type=refresh_token` for an authenticated client. Nothing is written until
/// the rotation, which uses the old token and stores the new one in one atomic step: a failure
/// on the way (an outage, the request deadline) leaves the presented token valid for a retry
/// instead of turning that retry into a replay.
pub async fn grant(
    state: &AppState,
    client: &ClientRegistration,
    p: &Params,
) -> Result<Response, OAuthError> {
    if !client.grant_types.contains(&GrantType::RefreshToken) {
        return Err(OAuthError::UnauthorizedClient(
            "this client may not use refresh_token".into(),
        ));
    }
    let token = required(p, "refresh_token")?;
    let hash = secret_hash(token);
    let now = Utc::now();
    // Read as if unused: a used token fails the rotation below and is judged as a replay.
    let presented = match state.store.refresh(&hash).await? {
        Some(g) => Redeemed::Fresh(g),
        None => Redeemed::Unknown,
    };
    let family_revoked = match &presented {
        Redeemed::Fresh(g) => state.store.is_family_revoked(&g.family_id).await?,
        _ => false,
    };
    let g = match decide(presented, family_revoked, &client.client_id, now) {
        Decision::Rotate(g) => g,
        refused => return Err(refuse(state, client, refused, now).await),
    };
    let scope = narrow_scope(&g.scope, p.get("scope").map(String::as_str))?;
    let user = active_user(state, &g.sub).await?;
    let new_token = random_token(32);
    let successor = g.successor(now, state.config.ttls.refresh);
    if !state
        .store
        .rotate_refresh(&hash, &secret_hash(&new_token), &successor)
        .await?
    {
        // Used before (or by a racing request): a replay.
        let replay = decide(
            state.store.redeem_refresh(&hash).await?,
            false,
            &client.client_id,
            now,
        );
        return Err(refuse(state, client, replay, now).await);
    }
    user_tokens(
        state,
        UserGrant {
            client,
            user: &user,
            scope,
            refresh_scope: g.scope,
            auth_time: g.auth_time,
            amr: g.amr,
            sid: g.sid,
            nonce: None,
            family_id: g.family_id,
            access_jti: crate::tokens::new_jti(),
            grant_type: GrantType::RefreshToken,
            refresh_token: Some(new_token),
        },
        now,
    )
    .await
}

/// The error for a refused token, revoking its family when the decision says so.
async fn refuse(
    state: &AppState,
    client: &ClientRegistration,
    decision: Decision,
    now: DateTime<Utc>,
) -> OAuthError {
    match decision {
        Decision::Reject(why) => OAuthError::InvalidGrant(why.into()),
        Decision::RevokeFamily {
            family_id,
            sub,
            reuse,
        } => {
            let revoked =
                revoke_grant(state.store.as_ref(), &family_id, &state.config.ttls, now).await;
            if let Err(e) = revoked {
                return e.into();
            }
            state.audit.record(
                AuditRecord::new(AuditEvent::RefreshReuse, Outcome::Failure, now)
                    .subject(sub)
                    .client(&client.client_id)
                    .detail(if reuse {
                        "a used refresh token was presented again; its family is revoked"
                    } else {
                        "a refresh token was presented by another client; its family is revoked"
                    }),
            );
            if reuse {
                state.metrics.refresh_reuse_detected.inc();
            }
            tracing::warn!(client_id = %client.client_id, reuse, "refresh token family revoked");
            OAuthError::InvalidGrant("the refresh token is invalid".into())
        }
        // Only reached when a token used meanwhile reads as fresh again: refuse it.
        Decision::Rotate(_) => OAuthError::InvalidGrant("the refresh token is invalid".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(now: DateTime<Utc>) -> RefreshGrant {
        RefreshGrant {
            family_id: "fam".into(),
            client_id: "app".into(),
            sub: "u".into(),
            scope: "openid".into(),
            auth_time: now.timestamp(),
            amr: vec!["pwd".into()],
            sid: "s".into(),
            expires_at: now + chrono::Duration::seconds(60),
        }
    }

    #[test]
    fn a_fresh_token_of_a_live_family_rotates() {
        let now = Utc::now();
        assert_eq!(
            decide(Redeemed::Fresh(grant(now)), false, "app", now),
            Decision::Rotate(grant(now))
        );
    }

    #[test]
    fn reused_refresh_token_revokes_family() {
        let now = Utc::now();
        assert_eq!(
            decide(Redeemed::AlreadyUsed(grant(now)), false, "app", now),
            Decision::RevokeFamily {
                family_id: "fam".into(),
                sub: "u".into(),
                reuse: true
            }
        );
    }

    #[test]
    fn revoked_families_expired_unknown_and_foreign_tokens_are_refused() {
        let now = Utc::now();
        assert!(matches!(
            decide(Redeemed::Fresh(grant(now)), true, "app", now),
            Decision::Reject(_)
        ));
        let later = now + chrono::Duration::seconds(60);
        assert!(matches!(
            decide(Redeemed::Fresh(grant(now)), false, "app", later),
            Decision::Reject(_)
        ));
        assert!(matches!(
            decide(Redeemed::Unknown, false, "app", now),
            Decision::Reject(_)
        ));
        assert_eq!(
            decide(Redeemed::Fresh(grant(now)), false, "other", now),
            Decision::RevokeFamily {
                family_id: "fam".into(),
                sub: "u".into(),
                reuse: false
            }
        );
    }
}
