//! `AuthProvider`: one OpenID Connect issuer, run by Palisade.

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use palisade_wire::keyset::Algorithm;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An AuthProvider runs an OpenID Connect issuer: Palisade creates its Deployment, Services,
/// autoscaler, disruption budget, Ingress, Secrets and database migrations, rotates its signing
/// keys, and rolls back a failed upgrade by itself.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "auth.palisade.dev",
    version = "v1alpha1",
    kind = "AuthProvider",
    namespaced,
    shortname = "ap",
    category = "palisade",
    status = "AuthProviderStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Issuer","type":"string","jsonPath":".spec.issuer"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.currentRevision"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self.allowInsecureIssuer || self.issuer.startsWith('https://')")
    .message("issuer must be an https:// URL (set allowInsecureIssuer: true to allow http:// for local development)"))]
#[serde(rename_all = "camelCase")]
pub struct AuthProviderSpec {
    /// The issuer URL exactly as relying parties will see it, e.g. `https://id.example.com` or
    /// `https://example.com/auth`. Must be https unless `allowInsecureIssuer` is true. No query
    /// or fragment. Discovery is served at `<issuer>/.well-known/openid-configuration`.
    #[schemars(length(min = 8, max = 512))]
    #[x_kube(validation = Rule::new("isURL(self) && (self.startsWith('https://') || self.startsWith('http://')) && !self.contains('?') && !self.contains('#')")
        .message("issuer must be an absolute http(s) URL without query or fragment, e.g. https://id.example.com"))]
    pub issuer: String,

    /// Allow a plain `http://` issuer. For local development only: tokens and cookies then
    /// travel unencrypted. Default false.
    #[serde(default)]
    pub allow_insecure_issuer: bool,

    /// Container image of the auth-server. Default: the image the operator was installed with
    /// (its `--auth-server-image` flag). Changing it starts a rollout, with automatic rollback
    /// if the new pods do not become ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// Number of auth-server pods when `autoscaling` is not set. Default 2. Forced to 1 when
    /// `redis` is not set (the status says so).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 100))]
    pub replicas: i32,

    /// Scale the auth-server with a HorizontalPodAutoscaler (autoscaling/v2). When absent, no
    /// autoscaler is created and `replicas` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,

    /// PostgreSQL holding clients, users, sessions and refresh tokens.
    pub database: Database,

    /// Redis for rate limits and short-lived state shared between replicas. Without it the
    /// provider runs a single replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<Redis>,

    /// Expose the issuer through an Ingress. The admin port is never exposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Ingress>,

    /// Signing keys and their rotation schedule.
    #[serde(default)]
    pub signing_keys: SigningKeys,

    /// How long access tokens, ID tokens, refresh tokens and authorization codes stay valid.
    #[serde(default)]
    pub tokens: Tokens,

    /// Per-endpoint rate limits, per client address. An endpoint without an entry is not
    /// limited.
    #[serde(default)]
    pub rate_limits: RateLimits,

    /// The audit trail: every sign-in, second factor, token issued, refresh-token reuse,
    /// client registration change and signing-key rotation is recorded in the database (listed
    /// by `GET /admin/audit` on the admin port) and logged under the target
    /// `palisade::audit`. Records never hold secrets.
    #[serde(default)]
    pub audit: Audit,

    /// Multi-factor sign-in: whether users are asked for a TOTP code from an authenticator
    /// app after their password.
    #[serde(default)]
    pub mfa: Mfa,

    /// How upgrades are rolled out and rolled back.
    #[serde(default)]
    pub rollout: Rollout,

    /// Which namespaces may register OAuthClients with this provider. Default: only the
    /// provider's own namespace.
    #[serde(default)]
    pub client_namespaces: ClientNamespaces,

    /// CPU and memory requests and limits of the auth-server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Node labels the auth-server pods must be scheduled on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Tolerations of the auth-server pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Affinity rules of the auth-server pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Log level of the auth-server: error, warn, info (default), debug or trace. Audit lines
    /// (target `palisade::audit`) are written at every level. Logs never contain secrets or
    /// tokens at any level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,

    /// Upstream OpenID Connect providers users may sign in with ("Sign in with Google /
    /// Microsoft Entra ID"), shown as buttons under the password form, in this order. Register
    /// `<issuer>/upstream/<name>/callback` as the redirect URI at each upstream. At most 16,
    /// names unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.all(u, self.exists_one(o, o.name == u.name))")
        .message("upstreams[].name must be unique"))]
    pub upstreams: Vec<UpstreamProvider>,
}

/// An upstream OpenID Connect provider (this provider acts as its relying party).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamProvider {
    /// Short name used in URLs and usernames, a DNS label such as `google` or `entra`. The
    /// redirect URI to register at the upstream is `<issuer>/upstream/<name>/callback`.
    /// Users created by this upstream are named `<name>:<upstream subject>`; renaming an
    /// upstream therefore makes its users new users.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Button text on the sign-in page: "Sign in with <displayName>". Not blank.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"\S"))]
    pub display_name: String,
    /// The upstream's issuer URL, e.g. `https://accounts.google.com` or
    /// `https://login.microsoftonline.com/<tenant-id>/v2.0`; discovery is read from
    /// `<issuer>/.well-known/openid-configuration` and its `issuer` must equal this value.
    /// https only; plain http is accepted for 127.0.0.1, ::1 and localhost, for tests.
    #[schemars(length(min = 8, max = 512))]
    #[x_kube(validation = Rule::new("isURL(self) && !self.contains('?') && !self.contains('#') && !self.contains('@') && (self.startsWith('https://') || (self.startsWith('http://') && url(self).getHostname() in ['127.0.0.1', '::1', 'localhost']))")
        .message("issuer must be an https:// URL without user info, query or fragment (http:// only for 127.0.0.1, ::1 or localhost)"))]
    pub issuer: String,
    /// The client ID this provider was registered with at the upstream.
    #[schemars(length(min = 1, max = 512))]
    pub client_id: String,
    /// The Secret key (in this AuthProvider's namespace) holding the client secret issued by
    /// the upstream. It reaches the pods as an environment variable from the Secret and is
    /// never copied elsewhere. While it is missing the provider is not Ready
    /// (reason `UpstreamSecretMissing`).
    pub client_secret_ref: SecretKeyRef,
    /// Scopes to request; `openid` is always sent. Default `openid email profile`.
    #[serde(default = "default_upstream_scopes")]
    #[schemars(length(max = 32))]
    pub scopes: Vec<UpstreamScope>,
    /// Which claims of the upstream's ID token fill the local user.
    #[serde(default)]
    pub claims: UpstreamClaims,
    /// Which local user a first sign-in becomes. `SubjectOnly` (default): a new user, whose
    /// email this provider does not treat as verified. `VerifiedEmail` (this upstream is
    /// trusted for addresses): the existing user with the same verified email, if the
    /// upstream says the email is verified; an unverified email never links. Later sign-ins
    /// always use the link made by the first one.
    #[serde(default)]
    pub account_linking: palisade_wire::contract::AccountLinking,
}

fn default_upstream_scopes() -> Vec<UpstreamScope> {
    palisade_wire::contract::Upstream::default_scopes()
        .into_iter()
        .map(UpstreamScope)
        .collect()
}

/// An OAuth scope (RFC 6749 §3.3 characters), e.g. `email`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(transparent)]
pub struct UpstreamScope(
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[!#-\[\]-~]+$"))] pub String,
);

/// Names of ID-token claims.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamClaims {
    /// The claim identifying the user at the upstream, stable for life. Default `sub`; for
    /// Microsoft Entra ID use `oid` (its `sub` differs per application).
    #[serde(default = "palisade_wire::contract::ClaimMapping::default_subject")]
    #[schemars(length(min = 1, max = 64))]
    pub subject: String,
    /// The claim holding the email address. Default `email`. An address from any other claim
    /// is never treated as verified (`email_verified` vouches for `email` only).
    #[serde(default = "palisade_wire::contract::ClaimMapping::default_email")]
    #[schemars(length(min = 1, max = 64))]
    pub email: String,
    /// The claim holding the display name. Default `name`.
    #[serde(default = "palisade_wire::contract::ClaimMapping::default_name")]
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
}

impl Default for UpstreamClaims {
    fn default() -> Self {
        use palisade_wire::contract::ClaimMapping;
        UpstreamClaims {
            subject: ClaimMapping::default_subject(),
            email: ClaimMapping::default_email(),
            name: ClaimMapping::default_name(),
        }
    }
}

fn default_replicas() -> i32 {
    2
}

/// Verbosity of the auth-server's logs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The level as a tracing filter directive.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Multi-factor sign-in settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Mfa {
    /// When users sign in with a time-based one-time password (TOTP, RFC 6238: the 6-digit
    /// codes of Google Authenticator, Authy, 1Password and the like) after their password:
    /// `Disabled` never asks; `Optional` (default) asks users who enrolled an authenticator and
    /// makes users an administrator marked `mfaRequired` enrol at their next sign-in;
    /// `Required` asks everyone, and a user without an authenticator enrols one at their next
    /// sign-in. Enrolment shows a QR code and ten single-use recovery codes. Tightening the
    /// policy also ends single sign-on for sessions that did not use a second factor.
    #[serde(default)]
    pub totp: palisade_wire::contract::TotpPolicy,
}

/// HorizontalPodAutoscaler settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas")
    .message("autoscaling.minReplicas must not be greater than autoscaling.maxReplicas"))]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    /// Fewest auth-server pods the autoscaler keeps, even when idle. Default 2.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Most auth-server pods the autoscaler may run under load.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Average CPU utilization to aim for, in percent of the CPU request (1–100). If neither
    /// target is set, 80% CPU is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "targetCPUUtilizationPercentage")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: Option<i32>,
    /// Average memory utilization to aim for, in percent of the memory request (1–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub target_memory_utilization_percentage: Option<i32>,
}

/// A key in a Secret in the AuthProvider's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// PostgreSQL connection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Database {
    /// The Secret key holding the PostgreSQL URL (`postgres://user:pass@host:5432/db`). The
    /// `uri` key of a CloudNativePG application Secret works as is.
    pub url_secret_ref: SecretKeyRef,
}

/// Redis connection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Redis {
    /// The Secret key holding the Redis URL (`redis://host:6379` or `rediss://...`).
    pub url_secret_ref: SecretKeyRef,
}

/// Ingress settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Ingress {
    /// Host name served, e.g. `id.example.com`; normally the issuer's host.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub host: String,
    /// IngressClass to use; the cluster default when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Extra annotations for the Ingress (e.g. for the ingress controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// TLS for the host. With `clusterIssuer`, cert-manager issues the certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IngressTls>,
}

/// Ingress TLS settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IngressTls {
    /// Secret holding (or receiving, with cert-manager) the certificate. Default `<name>-tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// cert-manager ClusterIssuer to request the certificate from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_issuer: Option<String>,
}

/// Signing keys and their rotation.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("duration(self.rotationInterval) > duration(self.publishLead)")
    .message("signingKeys.rotationInterval must be longer than signingKeys.publishLead"))]
#[serde(rename_all = "camelCase")]
pub struct SigningKeys {
    /// Signature algorithm: RS256 (default), ES256 or EdDSA. RS256 is the algorithm OpenID
    /// Connect requires every provider to offer, and the one many client libraries accept
    /// without configuration (Spring Security, openid-client, the Rust openidconnect crate).
    /// ES256 and EdDSA sign many times faster and give shorter tokens, but every relying
    /// party must then be told to accept that algorithm. Changing it rotates to a key of the
    /// new algorithm through the usual publish-ahead path.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// How long each key signs before the next one takes over, e.g. `720h` (default, 30 days).
    #[serde(default = "default_rotation_interval")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('10s')").message("rotationInterval must be at least 10s"))]
    pub rotation_interval: String,
    /// How long before it starts signing a new key is published in JWKS, e.g. `24h`
    /// (default). Must exceed the time a Secret update takes to reach the pods plus how long
    /// relying parties cache JWKS.
    #[serde(default = "default_publish_lead")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("publishLead must be at least 1s"))]
    pub publish_lead: String,
}

fn default_rotation_interval() -> String {
    "720h".into()
}
fn default_publish_lead() -> String {
    "24h".into()
}

impl Default for SigningKeys {
    fn default() -> Self {
        SigningKeys {
            algorithm: Algorithm::default(),
            rotation_interval: default_rotation_interval(),
            publish_lead: default_publish_lead(),
        }
    }
}

/// Token lifetimes, as durations such as `15m` or `720h`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    /// Lifetime of access tokens (JWT), 1m–24h. Default `15m`.
    #[serde(default = "default_access_ttl", rename = "accessTokenTTL")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1m') && duration(self) <= duration('24h')")
        .message("accessTokenTTL must be between 1m and 24h"))]
    pub access_token_ttl: String,
    /// Lifetime of ID tokens, 1m–24h. Default `1h`.
    #[serde(default = "default_id_ttl", rename = "idTokenTTL")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1m') && duration(self) <= duration('24h')")
        .message("idTokenTTL must be between 1m and 24h"))]
    pub id_token_ttl: String,
    /// Lifetime of refresh tokens, 1h–8760h (one year). Each use rotates the token. Default
    /// `720h` (30 days).
    #[serde(default = "default_refresh_ttl", rename = "refreshTokenTTL")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1h') && duration(self) <= duration('8760h')")
        .message("refreshTokenTTL must be between 1h and 8760h"))]
    pub refresh_token_ttl: String,
    /// Lifetime of authorization codes, 10s–10m. Default `60s`.
    #[serde(default = "default_code_ttl", rename = "authorizationCodeTTL")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('10s') && duration(self) <= duration('10m')")
        .message("authorizationCodeTTL must be between 10s and 10m"))]
    pub authorization_code_ttl: String,
}

fn default_access_ttl() -> String {
    "15m".into()
}
fn default_id_ttl() -> String {
    "1h".into()
}
fn default_refresh_ttl() -> String {
    "720h".into()
}
fn default_code_ttl() -> String {
    "60s".into()
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens {
            access_token_ttl: default_access_ttl(),
            id_token_ttl: default_id_ttl(),
            refresh_token_ttl: default_refresh_ttl(),
            authorization_code_ttl: default_code_ttl(),
        }
    }
}

/// How the audit trail is kept.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    /// How long audit records stay in the database, 1h–87600h (ten years); older ones are
    /// deleted hourly. Default `720h` (30 days). The log stream is not affected.
    #[serde(default = "default_audit_retention")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1h') && duration(self) <= duration('87600h')")
        .message("audit.retention must be between 1h and 87600h"))]
    pub retention: String,
    /// How tokens that clients issue to themselves (client_credentials) are recorded:
    /// `PerMinute` (default), one record per client and minute with the number of tokens (a
    /// busy machine client issues thousands a minute); `PerToken`, one record per token (this
    /// costs the token endpoint about a quarter of its throughput, and the database a row per
    /// token). Tokens issued to users are always recorded one by one.
    #[serde(default)]
    pub machine_tokens: palisade_wire::contract::MachineTokenAudit,
}

fn default_audit_retention() -> String {
    "720h".into()
}

impl Default for Audit {
    fn default() -> Self {
        Audit {
            retention: default_audit_retention(),
            machine_tokens: Default::default(),
        }
    }
}

/// A token-bucket rate limit per client address.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Sustained requests per minute (at least 1).
    #[schemars(range(min = 1, max = 1000000))]
    pub requests_per_minute: u32,
    /// Requests allowed at once above the sustained rate (at least 1). Default 10.
    #[serde(default = "default_burst")]
    #[schemars(range(min = 1, max = 100000))]
    pub burst: u32,
}

fn default_burst() -> u32 {
    10
}

/// Per-endpoint rate limits.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimits {
    /// Limit for `/authorize` and the login form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize: Option<RateLimit>,
    /// Limit for `/token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<RateLimit>,
    /// Limit for `/userinfo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo: Option<RateLimit>,
    /// Limit for `/introspect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspect: Option<RateLimit>,
    /// Limit for `/revoke`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke: Option<RateLimit>,
    /// Limit for the second-factor forms (TOTP or recovery code, and TOTP enrolment). Each
    /// sign-in also ends after 5 wrong codes, whatever this limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<RateLimit>,
    /// Addresses or CIDR ranges of the proxies in front of the issuer, typically your ingress
    /// controller's pods (for example `10.0.0.0/8`). A request from one of them is limited by
    /// the client address it reports in `X-Forwarded-For` (the nearest hop that is not a trusted
    /// proxy); other requests by their own address. Leave empty when requests reach the
    /// auth-server directly: then `X-Forwarded-For` is ignored, since anyone can write it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(p, isIP(p) || isCIDR(p))").message("trustedProxies entries must be IP addresses or CIDR ranges, such as 10.0.0.0/8"))]
    pub trusted_proxies: Vec<TrustedProxy>,
}

/// An IP address or CIDR range (at most 64 characters).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(transparent)]
pub struct TrustedProxy(#[schemars(length(min = 1, max = 64))] pub String);

/// Rollout and rollback behaviour.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// Seconds a new revision has to become ready before it counts as failed (30–3600).
    /// Default 600.
    #[serde(default = "default_progress_deadline")]
    #[schemars(range(min = 30, max = 3600))]
    pub progress_deadline_seconds: i32,
    /// Roll a failed revision back to the last good one automatically. Default true. When
    /// false, the failure is reported and the Deployment is left as it is.
    #[serde(default = "default_true")]
    pub auto_rollback: bool,
    /// Container restarts of new pods that count as a failed rollout (0–100). Default 3.
    #[serde(default = "default_max_restarts")]
    #[schemars(range(min = 0, max = 100))]
    pub max_restarts: i32,
}

fn default_progress_deadline() -> i32 {
    600
}
fn default_true() -> bool {
    true
}
fn default_max_restarts() -> i32 {
    3
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            progress_deadline_seconds: default_progress_deadline(),
            auto_rollback: true,
            max_restarts: default_max_restarts(),
        }
    }
}

/// Which namespaces may attach OAuthClients.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("self.policy != 'Selector' || has(self.selector)")
    .message("clientNamespaces.selector is required when clientNamespaces.policy is Selector"))]
#[serde(rename_all = "camelCase")]
pub struct ClientNamespaces {
    /// `Same` (default): only the provider's namespace. `All`: every namespace. `Selector`:
    /// namespaces whose labels match `selector`.
    #[serde(default)]
    pub policy: NamespacePolicy,
    /// Namespace label selector, used when `policy` is `Selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Namespace policy for OAuthClients.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum NamespacePolicy {
    /// Only the provider's own namespace.
    #[default]
    Same,
    /// Any namespace.
    All,
    /// Namespaces matching the selector.
    Selector,
}

/// Observed state of an AuthProvider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthProviderStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions: Ready (the issuer is served at full strength, by whichever revision),
    /// Progressing (True until every replica runs the current revision), Degraded (what went
    /// wrong), KeysReady, RolledBack.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The issuer URL being served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The OpenID discovery document URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_url: Option<String>,
    /// The redirect URI to register at each upstream provider (`spec.upstreams`, in order):
    /// `<issuer>/upstream/<name>/callback`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstream_redirect_uris: Vec<String>,
    /// Desired number of pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Pods ready to serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Revision (pod template hash) the Deployment runs now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// Last revision that rolled out successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_good_revision: Option<String>,
    /// Revision that failed and was rolled back; not retried until the spec changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_revision: Option<String>,
    /// Key ID (`kid`) that signs tokens now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_key_id: Option<String>,
    /// When the next key takes over (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation: Option<String>,
    /// Database schema version migrated to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<i64>,
}

impl AuthProviderStatus {
    /// Whether the `Ready` condition is True.
    pub fn is_ready(&self) -> bool {
        self.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The messages of the CEL rules the API server would refuse `upstreams` with (evaluated
    /// client-side on the generated schema, as the API server does).
    fn refusals(upstreams: serde_json::Value) -> Vec<String> {
        let ap: AuthProvider = serde_json::from_value(json!({
            "apiVersion": "auth.palisade.dev/v1alpha1",
            "kind": "AuthProvider",
            "metadata": {"name": "x"},
            "spec": {
                "issuer": "https://id.example.com",
                "database": {"urlSecretRef": {"name": "db", "key": "uri"}},
                "upstreams": upstreams,
            },
        }))
        .unwrap();
        match kube::core::cel::validate_cel(&ap) {
            Ok(()) => vec![],
            Err(e) => e.into_vec().into_iter().map(|e| e.message).collect(),
        }
    }

    fn upstream(name: &str, issuer: &str) -> serde_json::Value {
        json!({
            "name": name,
            "displayName": "X",
            "issuer": issuer,
            "clientId": "c",
            "clientSecretRef": {"name": "s", "key": "k"},
        })
    }

    #[test]
    fn upstream_issuers_are_https_or_loopback_http() {
        for ok in [
            "https://accounts.google.com",
            "https://login.microsoftonline.com/tenant/v2.0",
            "http://127.0.0.1:9000/t",
            "http://localhost:9000",
            "http://[::1]:9000",
        ] {
            assert_eq!(
                refusals(json!([upstream("a", ok)])),
                Vec::<String>::new(),
                "{ok}"
            );
        }
        for bad in [
            "http://idp.example.com",
            "http://127.0.0.1.example.com",
            "ftp://idp.example.com",
            "https://idp.example.com/?tenant=x",
            "https://user@idp.example.com",
            "not a url",
        ] {
            let r = refusals(json!([upstream("a", bad)]));
            assert!(
                r.iter()
                    .any(|m| m.starts_with("issuer must be an https:// URL")),
                "{bad}: {r:?}"
            );
        }
    }

    #[test]
    fn upstream_names_are_unique() {
        let r = refusals(json!([
            upstream("a", "https://a.example"),
            upstream("a", "https://b.example")
        ]));
        assert_eq!(r, ["upstreams[].name must be unique"]);
        assert!(refusals(json!([
            upstream("a", "https://a.example"),
            upstream("b", "https://b.example")
        ]))
        .is_empty());
    }

    #[test]
    fn federated_sample_is_valid_and_says_what_it_means() {
        let text = include_str!("../../../config/samples/authprovider-federated.yaml");
        let ap: AuthProvider = serde_yaml::Deserializer::from_str(text)
            .map(serde_yaml::Value::deserialize)
            .map(Result::unwrap)
            .find(|d| d["kind"] == "AuthProvider")
            .map(|d| serde_yaml::from_value(d).unwrap())
            .expect("the sample has an AuthProvider");
        assert_eq!(
            kube::core::cel::validate_cel(&ap).map_err(|e| e.to_string()),
            Ok(())
        );
        let names: Vec<&str> = ap.spec.upstreams.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["google", "entra"]);
        assert_eq!(ap.spec.upstreams[1].claims.subject, "oid");
        assert_eq!(
            ap.spec.upstreams[0].account_linking,
            palisade_wire::contract::AccountLinking::VerifiedEmail
        );
    }

    #[test]
    fn invalid_upstream_sample_is_refused_with_both_messages() {
        let text = include_str!("../../../config/samples/invalid/upstream-http-issuer.yaml");
        let ap: AuthProvider = serde_yaml::from_str(text).unwrap();
        let messages: Vec<String> = kube::core::cel::validate_cel(&ap)
            .unwrap_err()
            .into_vec()
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert!(messages.contains(&"upstreams[].name must be unique".to_string()));
        assert!(messages
            .iter()
            .any(|m| m.starts_with("issuer must be an https:// URL")));
    }

    #[test]
    fn upstream_defaults_are_the_documented_ones() {
        let u: UpstreamProvider =
            serde_json::from_value(upstream("g", "https://accounts.google.com")).unwrap();
        let scopes: Vec<&str> = u.scopes.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(scopes, ["openid", "email", "profile"]);
        assert_eq!(u.claims, UpstreamClaims::default());
        assert_eq!(u.claims.subject, "sub");
        assert_eq!(
            u.account_linking,
            palisade_wire::contract::AccountLinking::SubjectOnly
        );
    }

    #[test]
    fn signing_keys_default_to_rs256_in_the_types_and_in_the_crd() {
        let spec: AuthProviderSpec = serde_json::from_value(json!({
            "issuer": "https://id.example.com",
            "database": {"urlSecretRef": {"name": "pg", "key": "uri"}}
        }))
        .unwrap();
        assert_eq!(spec.signing_keys.algorithm, Algorithm::RS256);
        let partial: SigningKeys =
            serde_json::from_value(json!({"rotationInterval": "24h"})).unwrap();
        assert_eq!(partial.algorithm, Algorithm::RS256);
        // What the API server writes into objects that leave the field out.
        let crd = serde_json::to_value(<AuthProvider as kube::CustomResourceExt>::crd()).unwrap();
        let keys = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["signingKeys"];
        assert_eq!(keys["default"]["algorithm"], "RS256");
        assert_eq!(keys["properties"]["algorithm"]["default"], "RS256");
    }
}
