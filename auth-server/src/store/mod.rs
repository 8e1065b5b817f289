//! Storage behind one trait: PostgreSQL in production (`postgres.rs`), in memory for
//! development and tests (`memory.rs`).
//!
//! Authorization codes, refresh tokens and session cookies are secrets: the store only ever
//! sees their SHA-256 ([`secret_hash`]), so a database dump cannot be replayed.

pub mod memory;
pub mod postgres;

use crate::audit::{AuditQuery, AuditRecord};
use chrono::{DateTime, Utc};
use palisade_wire::registration::ClientRegistration;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Storage is unreachable or failed; clients get a 503.
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StoreError(pub String);

/// The storage key of an opaque secret (code, refresh token, session token): hex SHA-256.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// An end user who can sign in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub username: String,
    /// Stable subject identifier (`sub`), generated when the user is created.
    pub sub: String,
    /// argon2id PHC string (peppered); never leaves the server.
    pub password_hash: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub disabled: bool,
    /// Set by an administrator: under the `Optional` TOTP policy this user must enrol an
    /// authenticator (under `Required` everyone must).
    #[serde(default)]
    pub mfa_required: bool,
}

/// A user's TOTP authenticator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpEnrolment {
    /// The secret, sealed with `mfa::seal` for the user's `sub`; never logged or returned.
    pub secret_sealed: String,
    /// The last accepted time step: a code of this step or an older one is refused.
    pub last_step: Option<i64>,
    /// Hex SHA-256 of the unused recovery codes.
    pub recovery_hashes: Vec<String>,
    pub enrolled_at: DateTime<Utc>,
    /// Wrong codes since the last accepted one, across sign-ins (the per-user back-off).
    pub failures: u32,
    /// When the last wrong code was presented.
    pub last_failure_at: Option<DateTime<Utc>>,
}

/// Where a parked sign-in stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum SignInStep {
    /// Waiting for a TOTP or recovery code.
    Verify,
    /// Waiting for the first code of a new authenticator (its secret sealed for the user).
    Enrol { secret_sealed: String },
    /// Second factor done (recovery codes being shown); the next form finishes the sign-in.
    Verified { amr: Vec<String> },
}

/// A sign-in whose password was verified, parked server-side (under a random id) while the
/// second factor is asked for. The browser only holds the id; nothing it sends can claim
/// that the password was verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedSignIn {
    /// The authorization request it will finish (taken from the pending ones).
    pub request: AuthorizationRequest,
    pub sub: String,
    pub username: String,
    pub step: SignInStep,
    /// Hash of the browser's CSRF token: the parked sign-in continues only in that browser.
    pub csrf_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// A validated authorization request, parked while the user signs in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// Granted scopes, space-separated, `openid` first.
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// S256 code challenge (RFC 7636), when the client sent one.
    pub code_challenge: Option<String>,
    /// `max_age` in seconds: a session older than this must sign in again.
    pub max_age: Option<u64>,
}

/// A pending authorization request and when it lapses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    pub request: AuthorizationRequest,
    pub expires_at: DateTime<Utc>,
}

/// What an authorization code stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrant {
    pub request: AuthorizationRequest,
    /// The user's `sub`.
    pub sub: String,
    pub auth_time: i64,
    /// How the user authenticated (`amr`, RFC 8176), e.g. `["pwd"]` or `["pwd", "otp", "mfa"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// Session id (`sid` claim).
    pub sid: String,
    /// Chosen when the code is issued, so a replayed code can revoke what its first use minted
    /// without a lookup table: the refresh-token family and the access token's `jti`.
    pub family_id: String,
    pub access_jti: String,
    pub expires_at: DateTime<Utc>,
}

/// One refresh token (stored under its hash); each use rotates it to a new one in the same
/// family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshGrant {
    pub family_id: String,
    pub client_id: String,
    pub sub: String,
    pub scope: String,
    pub auth_time: i64,
    /// How the user authenticated (`amr`, RFC 8176), e.g. `["pwd"]` or `["pwd", "otp", "mfa"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    pub sid: String,
    pub expires_at: DateTime<Utc>,
}

impl RefreshGrant {
    /// The grant of the token that replaces this one at `now`: the same family, client, user,
    /// scope and session, valid for `ttl_secs`.
    pub fn successor(&self, now: DateTime<Utc>, ttl_secs: u64) -> RefreshGrant {
        RefreshGrant {
            expires_at: now + chrono::Duration::seconds(ttl_secs as i64),
            ..self.clone()
        }
    }
}

/// A signed-in browser (stored under the hash of its cookie token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Public session id, the `sid` claim; not the cookie secret.
    pub sid: String,
    pub sub: String,
    pub auth_time: i64,
    /// How the user authenticated (`amr`, RFC 8176), e.g. `["pwd"]` or `["pwd", "otp", "mfa"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

/// A sign-in in flight at an upstream provider (stored under the hash of its `state`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamLogin {
    /// The upstream's name.
    pub upstream: String,
    /// The parked authorization request the sign-in finishes.
    pub request_id: String,
    /// The nonce the upstream's ID token must carry.
    pub nonce: String,
    /// The PKCE verifier of the code exchange.
    pub pkce_verifier: String,
    pub expires_at: DateTime<Utc>,
}

// The verifier and nonce stay out of logs, even through `{:?}`.
impl std::fmt::Debug for UpstreamLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamLogin")
            .field("upstream", &self.upstream)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Outcome of presenting a single-use secret (code or refresh token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redeemed<T> {
    /// First use; it is now marked used (atomically, across replicas).
    Fresh(T),
    /// It was used before: a replay.
    AlreadyUsed(T),
    /// Never issued, or purged.
    Unknown,
}

/// What the provider persists.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// A registered client (shared: read on every authenticated request).
    async fn client(&self, client_id: &str) -> Result<Option<Arc<ClientRegistration>>, StoreError>;
    /// Registers or replaces a client (idempotent).
    async fn put_client(&self, reg: &ClientRegistration) -> Result<(), StoreError>;
    /// Removes a client; returns whether it existed.
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError>;
    /// Marks an access token's `jti` revoked until it would have expired anyway.
    async fn revoke_jti(&self, jti: &str, expires_at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Whether a `jti` was revoked.
    async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError>;
    /// Checks that storage answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// A user by username.
    async fn user(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// A user by subject identifier.
    async fn user_by_sub(&self, sub: &str) -> Result<Option<User>, StoreError>;
    /// Creates or replaces a user (keyed by username).
    async fn put_user(&self, user: &User) -> Result<(), StoreError>;
    /// Creates a user unless one has the username already (then nothing changes); returns
    /// whether it was created.
    async fn create_user(&self, user: &User) -> Result<bool, StoreError>;
    /// Removes a user; returns whether it existed.
    async fn delete_user(&self, username: &str) -> Result<bool, StoreError>;

    /// Parks an authorization request under an opaque id.
    async fn put_pending(&self, id: &str, pending: &PendingAuthorization)
        -> Result<(), StoreError>;
    /// Reads a parked request (expired ones are the caller's to refuse).
    async fn pending(&self, id: &str) -> Result<Option<PendingAuthorization>, StoreError>;
    /// Removes and returns a parked request, atomically: only one caller gets it.
    async fn take_pending(&self, id: &str) -> Result<Option<PendingAuthorization>, StoreError>;

    /// Stores an authorization code under its hash.
    async fn put_code(&self, code_hash: &str, grant: &CodeGrant) -> Result<(), StoreError>;
    /// Marks a code used and returns it; a second call sees [`Redeemed::AlreadyUsed`].
    async fn redeem_code(&self, code_hash: &str) -> Result<Redeemed<CodeGrant>, StoreError>;

    /// Stores a refresh token under its hash.
    async fn put_refresh(&self, token_hash: &str, grant: &RefreshGrant) -> Result<(), StoreError>;
    /// Marks a refresh token used and returns it; a second call sees
    /// [`Redeemed::AlreadyUsed`].
    async fn redeem_refresh(&self, token_hash: &str) -> Result<Redeemed<RefreshGrant>, StoreError>;
    /// Rotation in one atomic step: marks `old_hash` used and stores `new_hash` with `grant`.
    /// `false`, and nothing changed, when `old_hash` is unknown or already used.
    async fn rotate_refresh(
        &self,
        old_hash: &str,
        new_hash: &str,
        grant: &RefreshGrant,
    ) -> Result<bool, StoreError>;
    /// A refresh token without using it.
    async fn refresh(&self, token_hash: &str) -> Result<Option<RefreshGrant>, StoreError>;
    /// Revokes every refresh token of a family, including ones minted later by a racing use;
    /// the mark is kept until `until` (when the family's last token has expired).
    async fn revoke_family(&self, family_id: &str, until: DateTime<Utc>) -> Result<(), StoreError>;
    /// Whether a family was revoked.
    async fn is_family_revoked(&self, family_id: &str) -> Result<bool, StoreError>;

    /// Stores a session under the hash of its cookie token.
    async fn put_session(&self, token_hash: &str, session: &Session) -> Result<(), StoreError>;
    /// A session by cookie-token hash.
    async fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError>;
    /// Ends a session.
    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;

    /// Users whose verified email equals `email`, ignoring case; at most two (enough to tell
    /// one match from an ambiguous one).
    async fn users_by_email(&self, email: &str) -> Result<Vec<User>, StoreError>;
    /// Stores an upstream sign-in in flight under the hash of its `state`.
    async fn put_upstream_login(
        &self,
        state_hash: &str,
        login: &UpstreamLogin,
    ) -> Result<(), StoreError>;
    /// Removes and returns an upstream sign-in, atomically: only one callback gets it.
    async fn take_upstream_login(
        &self,
        state_hash: &str,
    ) -> Result<Option<UpstreamLogin>, StoreError>;
    /// The local `sub` linked to an upstream account.
    async fn upstream_link(
        &self,
        upstream: &str,
        upstream_sub: &str,
    ) -> Result<Option<String>, StoreError>;
    /// Links an upstream account to local user `sub` unless it is linked already; returns
    /// the linked `sub` (the earlier one when a concurrent sign-in linked first).
    async fn link_upstream(
        &self,
        upstream: &str,
        upstream_sub: &str,
        sub: &str,
    ) -> Result<String, StoreError>;

    /// Appends audit records (their ids are assigned here, increasing).
    async fn put_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError>;
    /// Audit records matching `query`, newest first.
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
    /// Deletes audit records older than `before`; returns how many.
    async fn purge_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// A user's TOTP authenticator.
    async fn totp(&self, sub: &str) -> Result<Option<TotpEnrolment>, StoreError>;
    /// Stores a new authenticator; `false`, and nothing changed, when the user has one.
    async fn enrol_totp(&self, sub: &str, enrolment: &TotpEnrolment) -> Result<bool, StoreError>;
    /// Accepts time step `step` for the user, atomically: `true` only if it is newer than the
    /// last accepted step (which it becomes, and the failure count is reset); `false` for a
    /// replayed or older step.
    async fn accept_totp_step(&self, sub: &str, step: i64) -> Result<bool, StoreError>;
    /// Uses up the recovery code with hash `code_hash`, atomically: `true` once (and the
    /// failure count is reset).
    async fn use_recovery_code(&self, sub: &str, code_hash: &str) -> Result<bool, StoreError>;
    /// Charges one code attempt to the user's authenticator at `at` (compare and swap): only
    /// when its attempt count still is `seen` (what the caller judged the back-off on).
    /// `false`, and nothing changed, when another attempt came first or there is none. An
    /// accepted code resets the count.
    async fn charge_totp_attempt(
        &self,
        sub: &str,
        seen: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Removes a user's authenticator and recovery codes; returns whether there was one.
    async fn delete_totp(&self, sub: &str) -> Result<bool, StoreError>;

    /// Parks a sign-in under an opaque id.
    async fn put_sign_in(&self, id: &str, sign_in: &ParkedSignIn) -> Result<(), StoreError>;
    /// Reads a parked sign-in (expired ones are the caller's to refuse).
    async fn sign_in(&self, id: &str) -> Result<Option<ParkedSignIn>, StoreError>;
    /// Removes and returns a parked sign-in, atomically: only one caller gets it.
    async fn take_sign_in(&self, id: &str) -> Result<Option<ParkedSignIn>, StoreError>;
    /// Charges one code attempt to a parked sign-in, atomically, unless `max` were charged
    /// already; returns the new count (`None` when it is gone or used up).
    async fn sign_in_attempt(&self, id: &str, max: u32) -> Result<Option<u32>, StoreError>;
}
