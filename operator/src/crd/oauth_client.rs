//! `OAuthClient`: an application registered with an AuthProvider.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use palisade_wire::registration::{GrantType, TokenEndpointAuthMethod};
use serde::{Deserialize, Serialize};

/// An OAuthClient registers an application with an AuthProvider. Palisade generates the
/// client's credentials, writes them to a Secret in this namespace (keys `client_id`,
/// `client_secret`, `issuer`, `discovery_url`) and keeps the registration in place.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "auth.palisade.dev",
    version = "v1alpha1",
    kind = "OAuthClient",
    namespaced,
    shortname = "oc",
    category = "palisade",
    status = "OAuthClientStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Client ID","type":"string","jsonPath":".status.clientId"}"#,
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.providerRef.name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("!self.public || self.tokenEndpointAuthMethod == 'none'")
    .message("a public client has no secret: set tokenEndpointAuthMethod: none"))]
#[x_kube(validation = Rule::new("self.public || self.tokenEndpointAuthMethod != 'none'")
    .message("tokenEndpointAuthMethod: none is only for public clients: set public: true, or use client_secret_basic"))]
#[x_kube(validation = Rule::new("!self.public || !('client_credentials' in self.grantTypes)")
    .message("a public client cannot use the client_credentials grant (it has no secret to authenticate with)"))]
#[x_kube(validation = Rule::new("!('authorization_code' in self.grantTypes) || size(self.redirectUris) > 0")
    .message("the authorization_code grant needs at least one entry in redirectUris"))]
#[serde(rename_all = "camelCase")]
pub struct OAuthClientSpec {
    /// The AuthProvider to register with.
    pub provider_ref: ProviderRef,

    /// Human-readable name shown on the login page. Default: the OAuthClient's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub client_name: Option<String>,

    /// Where the provider may send users back after sign-in; matched exactly. Absolute URLs,
    /// no fragment, https (http only for 127.0.0.1, localhost or [::1]).
    #[serde(default)]
    #[schemars(length(max = 20))]
    #[x_kube(validation = Rule::new(REDIRECT_RULE).message(REDIRECT_MESSAGE))]
    pub redirect_uris: Vec<RedirectUri>,

    /// Where the provider may send users after logout (RP-initiated logout); same rules as
    /// `redirectUris`.
    #[serde(default)]
    #[schemars(length(max = 20))]
    #[x_kube(validation = Rule::new(REDIRECT_RULE).message(REDIRECT_MESSAGE))]
    pub post_logout_redirect_uris: Vec<RedirectUri>,

    /// Grants the client may use: authorization_code, refresh_token, client_credentials.
    /// Default: [authorization_code].
    #[serde(default = "default_grant_types")]
    #[schemars(length(min = 1, max = 3))]
    #[x_kube(validation = Rule::new("self.all(g, self.exists_one(h, h == g))").message("grantTypes must not repeat a grant type"))]
    pub grant_types: Vec<GrantType>,

    /// Scopes the client may request. Default: [openid, profile, email].
    #[serde(default = "default_scopes")]
    #[schemars(length(max = 50))]
    pub scopes: Vec<Scope>,

    /// How the client authenticates at the token endpoint: client_secret_basic (default),
    /// client_secret_post, or none (public clients only).
    #[serde(default)]
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,

    /// A public client (single-page or native app) has no secret and must use PKCE.
    /// Default false.
    #[serde(default)]
    pub public: bool,

    /// Name of the Secret receiving the credentials. Default `<name>-oauth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub secret_name: Option<String>,
}

const REDIRECT_RULE: &str = "self.all(u, isURL(u) && !u.contains('#') && (url(u).getScheme() == 'https' || (url(u).getScheme() == 'http' && url(u).getHostname() in ['127.0.0.1', 'localhost', '::1'])))";
const REDIRECT_MESSAGE: &str =
    "redirect URIs must be absolute https:// URLs without a fragment (http:// is allowed only for 127.0.0.1, localhost and [::1])";

/// A redirect URI (at most 2048 characters).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(transparent)]
pub struct RedirectUri(#[schemars(length(min = 1, max = 2048))] pub String);

/// An OAuth scope name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Scope(
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[\x21\x23-\x5B\x5D-\x7E]+$")
    )]
    pub String,
);

fn default_grant_types() -> Vec<GrantType> {
    vec![GrantType::AuthorizationCode]
}

fn default_scopes() -> Vec<Scope> {
    ["openid", "profile", "email"]
        .into_iter()
        .map(|s| Scope(s.into()))
        .collect()
}

/// Reference to an AuthProvider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRef {
    /// Name of the AuthProvider.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the AuthProvider. Default: this OAuthClient's namespace. The provider's
    /// `clientNamespaces` must admit this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
}

/// Observed state of an OAuthClient.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthClientStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The generated client_id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The Secret holding the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// The AuthProvider (`<namespace>/<name>`) that holds the client's registration. When
    /// `spec.providerRef` moves the client to another provider, the operator deregisters it
    /// here first, so its credentials never keep working at a provider it left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_with: Option<String>,
    /// Conditions: Ready (reasons Registered; ProviderNotFound, NamespaceNotAllowed and
    /// SecretConflict, which need a person to act; ProviderUnavailable and
    /// DeregistrationPending, which the operator retries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
