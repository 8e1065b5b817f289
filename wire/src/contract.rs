//! The pod contract: what the operator renders into the auth-server Deployment and what the
//! auth-server reads at start-up. Both sides use these constants, so they cannot drift apart.

/// Public OIDC port (behind the Service and Ingress).
pub const PUBLIC_PORT: u16 = 8080;
/// Admin API and metrics port; never exposed through the Ingress.
pub const ADMIN_PORT: u16 = 8081;

/// Path prefix of the admin client registry: `PUT/GET/DELETE {ADMIN_CLIENTS_PATH}/{client_id}`.
pub const ADMIN_CLIENTS_PATH: &str = "/admin/clients";

/// Path prefix of the admin user registry: `PUT/GET/DELETE {ADMIN_USERS_PATH}/{username}`.
pub const ADMIN_USERS_PATH: &str = "/admin/users";

/// Key of the key-set JSON inside Secret `<provider>-signing-keys`.
pub const KEYSET_SECRET_KEY: &str = "keyset.json";
/// Directory where the signing-key Secret is mounted.
pub const KEYSET_MOUNT_DIR: &str = "/etc/palisade/keys";

/// Keys inside Secret `<provider>-internal`; each becomes a file under [`INTERNAL_MOUNT_DIR`].
pub const INTERNAL_ADMIN_TOKEN_KEY: &str = "admin-token";
/// Key for the cookie/session signing key (base64url, 32 bytes or more).
pub const INTERNAL_COOKIE_KEY: &str = "cookie-key";
/// Key for the password pepper mixed into argon2id hashes.
pub const INTERNAL_PASSWORD_PEPPER_KEY: &str = "password-pepper";
/// Directory where the internal Secret is mounted.
pub const INTERNAL_MOUNT_DIR: &str = "/etc/palisade/internal";

/// Environment variables the auth-server reads (and the operator renders).
pub mod env {
    /// The issuer URL, exactly as published in discovery.
    pub const ISSUER: &str = "PALISADE_ISSUER";
    /// PostgreSQL URL; absent means the in-memory store (development only).
    pub const DATABASE_URL: &str = "DATABASE_URL";
    /// Redis URL; absent means in-process rate limits and state (single replica only).
    pub const REDIS_URL: &str = "REDIS_URL";
    /// Path of the key-set file (default `{KEYSET_MOUNT_DIR}/{KEYSET_SECRET_KEY}`).
    pub const KEYSET_FILE: &str = "PALISADE_KEYSET_FILE";
    /// Directory holding the internal secret files.
    pub const INTERNAL_DIR: &str = "PALISADE_INTERNAL_DIR";
    /// Listen address of the public port, e.g. `0.0.0.0:8080`.
    pub const PUBLIC_ADDR: &str = "PALISADE_PUBLIC_ADDR";
    /// Listen address of the admin port, e.g. `0.0.0.0:8081`.
    pub const ADMIN_ADDR: &str = "PALISADE_ADMIN_ADDR";
    /// Access-token lifetime in seconds.
    pub const ACCESS_TOKEN_TTL: &str = "PALISADE_ACCESS_TOKEN_TTL_SECONDS";
    /// ID-token lifetime in seconds.
    pub const ID_TOKEN_TTL: &str = "PALISADE_ID_TOKEN_TTL_SECONDS";
    /// Refresh-token lifetime in seconds.
    pub const REFRESH_TOKEN_TTL: &str = "PALISADE_REFRESH_TOKEN_TTL_SECONDS";
    /// Authorization-code lifetime in seconds.
    pub const AUTHORIZATION_CODE_TTL: &str = "PALISADE_AUTHORIZATION_CODE_TTL_SECONDS";
    /// Browser-session lifetime in seconds (default 8 hours).
    pub const SESSION_TTL: &str = "PALISADE_SESSION_TTL_SECONDS";
    /// Rate limits as JSON of [`crate::contract::RateLimits`].
    pub const RATE_LIMITS: &str = "PALISADE_RATE_LIMITS";
    /// How long audit records are kept, in seconds (default 30 days).
    pub const AUDIT_RETENTION: &str = "PALISADE_AUDIT_RETENTION_SECONDS";
    /// How client_credentials tokens are audited: one of [`crate::contract::MachineTokenAudit`]'s
    /// names (default `PerMinute`).
    pub const AUDIT_MACHINE_TOKENS: &str = "PALISADE_AUDIT_MACHINE_TOKENS";
    /// Log filter, e.g. `info` or `palisade_auth_server=debug`.
    pub const LOG_LEVEL: &str = "PALISADE_LOG_LEVEL";
    /// `json` (production) or `text`.
    pub const LOG_FORMAT: &str = "PALISADE_LOG_FORMAT";
    /// TOTP second-factor policy: one of [`crate::contract::TotpPolicy`]'s names
    /// (`Disabled`, `Optional`, `Required`); absent means `Optional`.
    pub const TOTP_POLICY: &str = "PALISADE_TOTP_POLICY";
    /// Upstream OpenID providers as JSON of a list of [`crate::contract::Upstream`]; absent
    /// means none. Client secrets are not in it: see [`crate::contract::upstream_secret_env`].
    pub const UPSTREAMS: &str = "PALISADE_UPSTREAMS";
    /// Prefix of the variables holding the upstreams' client secrets.
    pub const UPSTREAM_SECRET_PREFIX: &str = "PALISADE_UPSTREAM_CLIENT_SECRET_";
}

/// The environment variable holding the client secret of upstream `name` (a DNS label):
/// `PALISADE_UPSTREAM_CLIENT_SECRET_<NAME>`, upper-cased, `-` as `_`. The operator fills it
/// with a `secretKeyRef`, so the secret never appears in [`env::UPSTREAMS`].
pub fn upstream_secret_env(name: &str) -> String {
    let suffix: String = name
        .chars()
        .map(|c| match c {
            '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    format!("{}{suffix}", env::UPSTREAM_SECRET_PREFIX)
}

/// Path, under the issuer, where upstream `name` sends the browser back; the redirect URI to
/// register at the upstream is the issuer followed by this path.
pub fn upstream_callback_path(name: &str) -> String {
    format!("/upstream/{name}/callback")
}

/// Which local user a first sign-in through an upstream becomes (later sign-ins always use
/// the link the first one made).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum AccountLinking {
    /// A new local user, named `<upstream>:<upstream subject>`, without a password.
    #[default]
    SubjectOnly,
    /// The existing local user whose verified email equals the upstream's, when the upstream
    /// says `email_verified: true` and exactly one local user has that verified address;
    /// otherwise a new user. Use only with upstreams that verify emails and are authoritative
    /// for them (an unverified email never links).
    VerifiedEmail,
}

/// Which upstream ID-token claims fill the local user's fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimMapping {
    /// The stable user identifier at the upstream (Microsoft Entra ID: `oid`).
    #[serde(default = "ClaimMapping::default_subject")]
    pub subject: String,
    #[serde(default = "ClaimMapping::default_email")]
    pub email: String,
    #[serde(default = "ClaimMapping::default_name")]
    pub name: String,
}

impl ClaimMapping {
    /// The default subject claim, `sub`.
    pub fn default_subject() -> String {
        "sub".into()
    }
    /// The default email claim, `email`.
    pub fn default_email() -> String {
        "email".into()
    }
    /// The default name claim, `name`.
    pub fn default_name() -> String {
        "name".into()
    }
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            subject: Self::default_subject(),
            email: Self::default_email(),
            name: Self::default_name(),
        }
    }
}

/// One upstream OpenID provider users may sign in with, as rendered into [`env::UPSTREAMS`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Upstream {
    /// DNS label, used in URLs (`/upstream/<name>/...`) and usernames.
    pub name: String,
    /// Button text: "Sign in with <displayName>".
    pub display_name: String,
    /// The upstream's issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    /// Scopes requested; `openid` is always added.
    #[serde(default = "Upstream::default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub claims: ClaimMapping,
    #[serde(default)]
    pub account_linking: AccountLinking,
}

impl Upstream {
    /// `openid email profile`.
    pub fn default_scopes() -> Vec<String> {
        vec!["openid".into(), "email".into(), "profile".into()]
    }
}

use serde::{Deserialize, Serialize};

/// A token-bucket limit for one endpoint, per client address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Sustained requests per minute.
    pub requests_per_minute: u32,
    /// Extra requests allowed in a burst.
    pub burst: u32,
}

/// Per-endpoint rate limits, as rendered into [`env::RATE_LIMITS`]. `None` means unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize: Option<RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo: Option<RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspect: Option<RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke: Option<RateLimit>,
    /// The second-factor pages (TOTP or recovery code, and TOTP enrolment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<RateLimit>,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names the client address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
}

/// How tokens a client issues to itself (client_credentials) are audited. Tokens issued to
/// users are always audited one by one.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum MachineTokenAudit {
    /// One record per client and minute with the number of tokens issued (a busy machine
    /// client issues thousands a minute).
    #[default]
    PerMinute,
    /// One record per token.
    PerToken,
}

impl MachineTokenAudit {
    /// The name rendered into [`env::AUDIT_MACHINE_TOKENS`].
    pub fn as_str(self) -> &'static str {
        match self {
            MachineTokenAudit::PerMinute => "PerMinute",
            MachineTokenAudit::PerToken => "PerToken",
        }
    }

    /// Parses a name written by [`MachineTokenAudit::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [MachineTokenAudit::PerMinute, MachineTokenAudit::PerToken]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// When users must sign in with a TOTP second factor after their password.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum TotpPolicy {
    /// No TOTP step, even for users who enrolled an authenticator.
    Disabled,
    /// Users who enrolled an authenticator, and users an administrator marked `mfaRequired`,
    /// sign in with TOTP; everyone else with a password alone.
    #[default]
    Optional,
    /// Every user signs in with TOTP; a user without an authenticator enrols one at their
    /// next sign-in.
    Required,
}

impl TotpPolicy {
    /// The name rendered into [`env::TOTP_POLICY`].
    pub fn as_str(self) -> &'static str {
        match self {
            TotpPolicy::Disabled => "Disabled",
            TotpPolicy::Optional => "Optional",
            TotpPolicy::Required => "Required",
        }
    }

    /// Parses a name written by [`TotpPolicy::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            TotpPolicy::Disabled,
            TotpPolicy::Optional,
            TotpPolicy::Required,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// What `palisade-auth-server migrate` reports when it is done, on stdout and in the
/// container's termination message (where the operator reads it): `schema version <n>`.
pub mod migration {
    /// The container's termination-message file (Kubernetes' default path).
    pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
    const PREFIX: &str = "schema version ";

    /// The report for schema version `version`.
    pub fn report(version: i64) -> String {
        format!("{PREFIX}{version}")
    }

    /// The schema version in a report, if the text is one.
    pub fn parse_report(text: &str) -> Option<i64> {
        text.lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix(PREFIX)?.trim().parse().ok())
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn report_round_trips_and_other_text_is_not_a_version() {
            assert_eq!(super::parse_report(&super::report(7)), Some(7));
            assert_eq!(super::parse_report("log line\nschema version 3\n"), Some(3));
            assert_eq!(super::parse_report("Error: connection refused"), None);
            assert_eq!(super::parse_report("schema version x"), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_policy_names_round_trip_and_others_are_refused() {
        for p in [
            TotpPolicy::Disabled,
            TotpPolicy::Optional,
            TotpPolicy::Required,
        ] {
            assert_eq!(TotpPolicy::parse(p.as_str()), Some(p));
        }
        assert_eq!(TotpPolicy::parse("required"), None);
        assert_eq!(TotpPolicy::default(), TotpPolicy::Optional);
    }

    #[test]
    fn upstream_secret_variable_is_a_valid_env_name() {
        assert_eq!(
            upstream_secret_env("entra-id"),
            "PALISADE_UPSTREAM_CLIENT_SECRET_ENTRA_ID"
        );
    }

    #[test]
    fn upstream_defaults_fill_scopes_claims_and_linking() {
        let u: Upstream = serde_json::from_str(
            r#"{"name":"g","displayName":"Google","issuer":"https://accounts.google.com","clientId":"c"}"#,
        )
        .unwrap();
        assert_eq!(u.scopes, ["openid", "email", "profile"]);
        assert_eq!(u.claims, ClaimMapping::default());
        assert_eq!(u.account_linking, AccountLinking::SubjectOnly);
        let back: Upstream = serde_json::from_str(&serde_json::to_string(&u).unwrap()).unwrap();
        assert_eq!(back, u);
    }
}
