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
    /// Log filter, e.g. `info` or `palisade_auth_server=debug`.
    pub const LOG_LEVEL: &str = "PALISADE_LOG_LEVEL";
    /// `json` (production) or `text`.
    pub const LOG_FORMAT: &str = "PALISADE_LOG_FORMAT";
    /// TOTP second-factor policy: one of [`crate::contract::TotpPolicy`]'s names
    /// (`Disabled`, `Optional`, `Required`); absent means `Optional`.
    pub const TOTP_POLICY: &str = "PALISADE_TOTP_POLICY";
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
    use super::TotpPolicy;

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
}
