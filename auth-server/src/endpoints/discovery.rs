//! `/.well-known/openid-configuration` (OpenID Connect Discovery 1.0). Every URL derives from
//! the issuer exactly as configured, path component included.

use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::Serialize;

/// OpenID Provider Metadata (OpenID Connect Discovery 1.0 §3, RFC 8414, RFC 9207).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProviderMetadata {
    /// The issuer URL, exactly as it appears in tokens' `iss`.
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: String,
    pub jwks_uri: String,
    pub introspection_endpoint: String,
    pub revocation_endpoint: String,
    pub end_session_endpoint: String,
    #[schema(value_type = Vec<String>)]
    pub response_types_supported: &'static [&'static str],
    #[schema(value_type = Vec<String>)]
    pub response_modes_supported: &'static [&'static str],
    #[schema(value_type = Vec<String>)]
    pub grant_types_supported: &'static [&'static str],
    #[schema(value_type = Vec<String>)]
    pub subject_types_supported: &'static [&'static str],
    /// The algorithms of the keys in the key set (ES256, RS256, EdDSA).
    pub id_token_signing_alg_values_supported: Vec<String>,
    #[schema(value_type = Vec<String>)]
    pub token_endpoint_auth_methods_supported: &'static [&'static str],
    #[schema(value_type = Vec<String>)]
    pub introspection_endpoint_auth_methods_supported: &'static [&'static str],
    #[schema(value_type = Vec<String>)]
    pub revocation_endpoint_auth_methods_supported: &'static [&'static str],
    #[schema(value_type = Vec<String>)]
    pub code_challenge_methods_supported: &'static [&'static str],
    #[schema(value_type = Vec<String>)]
    pub scopes_supported: &'static [&'static str],
    #[schema(value_type = Vec<String>)]
    pub claims_supported: &'static [&'static str],
    /// The authentication context classes ID tokens carry in `acr`.
    #[schema(value_type = Vec<String>)]
    pub acr_values_supported: &'static [&'static str],
    #[schema(value_type = Vec<String>)]
    pub claim_types_supported: &'static [&'static str],
    #[schema(value_type = Vec<String>)]
    pub prompt_values_supported: &'static [&'static str],
    pub request_parameter_supported: bool,
    pub request_uri_parameter_supported: bool,
    pub claims_parameter_supported: bool,
    pub authorization_response_iss_parameter_supported: bool,
    pub backchannel_logout_supported: bool,
    pub frontchannel_logout_supported: bool,
}

/// The discovery document.
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "public",
    operation_id = "discovery",
    responses((status = 200, description = "The provider's metadata", body = ProviderMetadata)),
)]
pub async fn discovery(State(state): State<AppState>) -> Json<ProviderMetadata> {
    let c = &state.config;
    let algs: Vec<String> = {
        let keys = state.keys.get();
        let mut a: Vec<String> = keys.set.keys.iter().map(|k| k.alg.to_string()).collect();
        a.sort();
        a.dedup();
        a
    };
    Json(ProviderMetadata {
        issuer: c.issuer.clone(),
        authorization_endpoint: c.endpoint("/authorize"),
        token_endpoint: c.endpoint("/token"),
        userinfo_endpoint: c.endpoint("/userinfo"),
        jwks_uri: c.endpoint("/jwks"),
        introspection_endpoint: c.endpoint("/introspect"),
        revocation_endpoint: c.endpoint("/revoke"),
        end_session_endpoint: c.endpoint("/end_session"),
        response_types_supported: &["code"],
        response_modes_supported: &["query"],
        grant_types_supported: &["authorization_code", "refresh_token", "client_credentials"],
        subject_types_supported: &["public"],
        id_token_signing_alg_values_supported: algs,
        token_endpoint_auth_methods_supported: &[
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        introspection_endpoint_auth_methods_supported: &[
            "client_secret_basic",
            "client_secret_post",
        ],
        revocation_endpoint_auth_methods_supported: &[
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        code_challenge_methods_supported: &["S256"],
        scopes_supported: &["openid", "profile", "email", "offline_access"],
        claims_supported: &[
            "sub",
            "iss",
            "aud",
            "azp",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "at_hash",
            "sid",
            "amr",
            "acr",
            "name",
            "preferred_username",
            "email",
            "email_verified",
        ],
        acr_values_supported: &crate::auth_methods::ACR_VALUES,
        claim_types_supported: &["normal"],
        prompt_values_supported: &["none", "login", "consent", "select_account"],
        request_parameter_supported: false,
        request_uri_parameter_supported: false,
        claims_parameter_supported: false,
        authorization_response_iss_parameter_supported: true,
        backchannel_logout_supported: false,
        frontchannel_logout_supported: false,
    })
}
