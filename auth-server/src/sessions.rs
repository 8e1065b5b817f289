//! Browser sessions: a random token in a sealed cookie; the store keeps only its hash, with the
//! user's `sub`, `auth_time` and the public session id (`sid`).

use crate::cookies::SESSION_COOKIE;
use crate::state::AppState;
use crate::store::{secret_hash, Session, StoreError, User};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use palisade_wire::registration::random_token;

/// The signed-in user of this browser, if the session is live and the user may still sign in.
pub async fn current(
    state: &AppState,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Result<Option<(Session, User)>, StoreError> {
    let Some(token) = state.cookies.open(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some(session) = state.store.session(&secret_hash(&token)).await? else {
        return Ok(None);
    };
    if session.expires_at <= now {
        return Ok(None);
    }
    match state.store.user_by_sub(&session.sub).await? {
        Some(user) if !user.disabled => Ok(Some((session, user))),
        _ => Ok(None),
    }
}

/// Starts a session for `user`, who authenticated by the methods `amr`; returns it and the `Set-Cookie` value.
pub async fn start(
    state: &AppState,
    user: &User,
    amr: Vec<String>,
    now: DateTime<Utc>,
) -> Result<(Session, String), StoreError> {
    let token = random_token(32);
    let ttl = state.config.ttls.session;
    let session = Session {
        sid: random_token(16),
        sub: user.sub.clone(),
        auth_time: now.timestamp(),
        amr,
        expires_at: now + chrono::Duration::seconds(ttl as i64),
    };
    state
        .store
        .put_session(&secret_hash(&token), &session)
        .await?;
    Ok((session, state.cookies.seal(SESSION_COOKIE, &token, ttl)))
}

/// Ends this browser's session (if any); returns the `Set-Cookie` value clearing the cookie.
pub async fn end(state: &AppState, headers: &HeaderMap) -> Result<String, StoreError> {
    if let Some(token) = state.cookies.open(headers, SESSION_COOKIE) {
        state.store.delete_session(&secret_hash(&token)).await?;
    }
    Ok(state.cookies.clear(SESSION_COOKIE))
}
