//! `PUT/GET/DELETE /admin/users/{username}`: the user registry (idempotent). Passwords arrive
//! in clear over the admin port and are stored only as peppered argon2id hashes; nothing
//! returned ever contains a hash. `DELETE /admin/users/{username}/totp` resets a lost
//! authenticator; the TOTP secret and recovery codes are never returned.

use crate::endpoints::storable;
use crate::error::{ErrorBody, OAuthError};
use crate::state::AppState;
use crate::store::User;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use palisade_wire::registration::random_token;
use serde::{Deserialize, Serialize};

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Body of `PUT /admin/users/{username}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "password": "correct horse battery",
    "email": "alice@example.com",
    "emailVerified": true,
    "name": "Alice Example",
    "mfaRequired": true,
}))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserUpdate {
    /// New password; absent on an update keeps the current one (required on creation).
    /// At least 8 characters, at most 1024 bytes.
    #[serde(default)]
    pub password: Option<String>,
    /// An address (with `@`), at most 320 bytes.
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    /// Display name, at most 256 bytes.
    #[serde(default)]
    pub name: Option<String>,
    /// A disabled user cannot sign in, and their sessions and refresh tokens stop working.
    #[serde(default)]
    pub disabled: bool,
    /// The user must sign in with a TOTP second factor and enrols an authenticator at their
    /// next sign-in if they have none. Matters under the provider's `Optional` TOTP policy
    /// (under `Required` everyone must; under `Disabled` nobody is asked).
    #[serde(default)]
    pub mfa_required: bool,
}

/// A user as the admin API shows it (no password hash).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub username: String,
    /// The subject identifier in tokens: random, kept across updates.
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub disabled: bool,
    /// Whether a password is set (the hash itself is never shown).
    pub has_password: bool,
    /// Whether the user must use a TOTP second factor (see `UserUpdate.mfaRequired`).
    pub mfa_required: bool,
    /// Whether the user has enrolled a TOTP authenticator (its secret is never shown).
    pub totp_enrolled: bool,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            has_password: u.password_hash.is_some(),
            username: u.username,
            sub: u.sub,
            email: u.email,
            email_verified: u.email_verified,
            name: u.name,
            disabled: u.disabled,
            mfa_required: u.mfa_required,
            totp_enrolled: false,
        }
    }
}

/// Checks a username and an update beyond their JSON shape. Pure.
pub fn validate(username: &str, u: &UserUpdate, exists: bool) -> Result<(), OAuthError> {
    let bad = |m: &str| Err(OAuthError::InvalidRequest(m.into()));
    if username.is_empty() || username.len() > crate::endpoints::login::MAX_USERNAME_LEN {
        return bad("username must be 1 to 256 bytes");
    }
    if username
        .chars()
        .any(|c| c.is_control() || c.is_whitespace())
    {
        return bad("username must not contain spaces or control characters");
    }
    let strings = [
        Some(username),
        u.password.as_deref(),
        u.email.as_deref(),
        u.name.as_deref(),
    ];
    if strings.into_iter().flatten().any(|s| !storable(s)) {
        return bad("values must not contain NUL characters");
    }
    match &u.password {
        None if !exists => bad("password is required when creating a user"),
        Some(p) if p.chars().count() < MIN_PASSWORD_LEN => {
            bad("password must be at least 8 characters")
        }
        Some(p) if p.len() > crate::endpoints::login::MAX_PASSWORD_LEN => {
            bad("password must be at most 1024 bytes")
        }
        _ => Ok(()),
    }?;
    if u.email
        .as_ref()
        .is_some_and(|e| e.len() > 320 || !e.contains('@'))
    {
        return bad("email must be an address of at most 320 bytes");
    }
    if u.name.as_ref().is_some_and(|n| n.len() > 256) {
        return bad("name must be at most 256 bytes");
    }
    Ok(())
}

/// Creates or updates a user.
#[utoipa::path(
    put,
    path = "/admin/users/{username}",
    tag = "admin",
    operation_id = "put_user",
    params(("username" = String, Path, description = "1 to 256 bytes, no spaces or control characters", min_length = 1, example = "alice")),
    request_body(content = UserUpdate, description = "The user; `password` is required on creation"),
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "Created"),
        (status = 204, description = "Updated"),
        (status = 400, description = "`invalid_request`: malformed JSON, unknown fields, values the server refuses, or a path that is not valid UTF-8", body = ErrorBody),
        (status = 401, description = "`invalid_token`: the admin token is missing or wrong", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`"))),
    ),
)]
pub async fn put(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<UserUpdate>, JsonRejection>,
) -> Result<StatusCode, OAuthError> {
    let username = super::path_param(path)?;
    let Json(update) = body.map_err(|e| OAuthError::InvalidRequest(e.body_text()))?;
    // Checked before the lookup too: a NUL character cannot even be looked up.
    validate(&username, &update, true)?;
    let existing = state.store.user(&username).await?;
    validate(&username, &update, existing.is_some())?;
    let password_hash = match update.password {
        Some(p) => Some(
            crate::passwords::hash_blocking(state.passwords.clone(), p)
                .await
                .map_err(|_| OAuthError::TemporarilyUnavailable)?,
        ),
        None => existing.as_ref().and_then(|u| u.password_hash.clone()),
    };
    let created = existing.is_none();
    let user = User {
        sub: existing.map(|u| u.sub).unwrap_or_else(|| random_token(16)),
        username: username.clone(),
        password_hash,
        email: update.email,
        email_verified: update.email_verified,
        name: update.name,
        disabled: update.disabled,
        mfa_required: update.mfa_required,
    };
    state.store.put_user(&user).await?;
    tracing::info!(sub = %user.sub, created, disabled = user.disabled, mfa_required = user.mfa_required, "user saved");
    Ok(if created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    })
}

/// Reads a user (never the hash).
#[utoipa::path(
    get,
    path = "/admin/users/{username}",
    tag = "admin",
    operation_id = "get_user",
    params(("username" = String, Path, description = "1 to 256 bytes, no spaces or control characters", min_length = 1, example = "alice")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 401, description = "`invalid_token`: the admin token is missing or wrong", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`"))),
        (status = 400, description = "`invalid_request`: the path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<UserView>, OAuthError> {
    let username = super::path_param(path)?;
    if !storable(&username) {
        return Err(OAuthError::NotFound);
    }
    let user = state
        .store
        .user(&username)
        .await?
        .ok_or(OAuthError::NotFound)?;
    let totp_enrolled = state.store.totp(&user.sub).await?.is_some();
    Ok(Json(UserView {
        totp_enrolled,
        ..user.into()
    }))
}

/// Resets a user's TOTP authenticator (lost or replaced): removes the secret and the recovery
/// codes, so the user enrols a new authenticator at their next sign-in if the policy asks for
/// one. Idempotent; an unknown user is a 404.
#[utoipa::path(
    delete,
    path = "/admin/users/{username}/totp",
    tag = "admin",
    operation_id = "reset_user_totp",
    params(("username" = String, Path, description = "1 to 256 bytes, no spaces or control characters", min_length = 1, example = "alice")),
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Reset (or there was no authenticator)"),
        (status = 401, description = "`invalid_token`: the admin token is missing or wrong", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`"))),
        (status = 400, description = "`invalid_request`: the path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
    ),
)]
pub async fn reset_totp(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, OAuthError> {
    let username = super::path_param(path)?;
    if !storable(&username) {
        return Err(OAuthError::NotFound);
    }
    let user = state
        .store
        .user(&username)
        .await?
        .ok_or(OAuthError::NotFound)?;
    let removed = state.store.delete_totp(&user.sub).await?;
    tracing::info!(sub = %user.sub, removed, "mfa: authenticator reset by an administrator");
    if removed {
        state.audit.record(
            crate::audit::AuditRecord::new(
                crate::audit::AuditEvent::Mfa,
                crate::audit::Outcome::Success,
                chrono::Utc::now(),
            )
            .subject(&user.sub)
            .username(&user.username)
            .detail("authenticator reset by an administrator"),
        );
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a user; an unknown user is a 404.
#[utoipa::path(
    delete,
    path = "/admin/users/{username}",
    tag = "admin",
    operation_id = "delete_user",
    params(("username" = String, Path, description = "1 to 256 bytes, no spaces or control characters", min_length = 1, example = "alice")),
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`invalid_token`: the admin token is missing or wrong", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`"))),
        (status = 400, description = "`invalid_request`: the path is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, OAuthError> {
    let username = super::path_param(path)?;
    if storable(&username) && state.store.delete_user(&username).await? {
        tracing::info!("user deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(OAuthError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(password: Option<&str>) -> UserUpdate {
        UserUpdate {
            password: password.map(str::to_string),
            email: Some("a@example.com".into()),
            email_verified: true,
            name: None,
            disabled: false,
            mfa_required: false,
        }
    }

    #[test]
    fn creation_needs_a_password_and_updates_may_keep_it() {
        assert!(validate("alice", &update(None), false).is_err());
        assert!(validate("alice", &update(None), true).is_ok());
        assert!(validate("alice", &update(Some("short")), true).is_err());
        assert!(validate("alice", &update(Some("long enough")), false).is_ok());
        assert!(validate("al ice", &update(Some("long enough")), false).is_err());
        assert!(validate("", &update(Some("long enough")), false).is_err());
    }

    #[test]
    fn unknown_fields_are_refused_and_views_hide_the_hash() {
        assert!(serde_json::from_str::<UserUpdate>(r#"{"password":"x","admin":true}"#).is_err());
        let view = UserView::from(User {
            username: "a".into(),
            sub: "s".into(),
            password_hash: Some("$argon2id$secret".into()),
            email: None,
            email_verified: false,
            name: None,
            disabled: false,
            mfa_required: true,
        });
        let json = serde_json::to_string(&view).unwrap();
        assert!(!json.contains("argon2") && json.contains("\"hasPassword\":true"));
        assert!(json.contains("\"mfaRequired\":true") && json.contains("\"totpEnrolled\":false"));
    }
}
