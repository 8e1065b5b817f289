//! Palisade as a relying party of one upstream OpenID provider, through the `openidconnect`
//! crate: discovery (cached), the authorization URL with state, nonce and PKCE S256, the code
//! exchange and the ID token's validation (signature against the upstream's JWKS, issuer,
//! audience, expiry, nonce). The JWKS is fetched again once when a token names an unknown key
//! (the upstream rotated): at once the first time, then at most once a minute. Only the
//! upstream's own token endpoint supplies tokens, so nobody else can force these fetches.

use super::config::UpstreamConfig;
use super::linking::{map_claims, UpstreamIdentity};
use super::FederationError;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClientAuthMethod,
    CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthType, AuthorizationCode, ClaimsVerificationError, Client, ClientId,
    ClientSecret, CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IdTokenFields, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, SignatureVerificationError, StandardErrorResponse,
    StandardTokenResponse, TokenResponse,
};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long discovery (and the JWKS fetched with it) is reused.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// Shortest time between two JWKS refreshes caused by unknown key ids (the first one after
/// discovery is not held back).
pub const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// Timeout of one request to an upstream. A start makes at most two (discovery and JWKS), a
/// callback usually two (code exchange, and JWKS after a rotation), so both fit in the
/// server's 5-second request deadline and a slow upstream gets the sign-in-failed page.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Every claim of the ID token beyond the standard ones, so claim mapping can name any claim
/// (e.g. Entra ID's `oid`).
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct ExtraClaims {
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}
impl AdditionalClaims for ExtraClaims {}

type Fields = IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type Tokens = StandardTokenResponse<Fields, CoreTokenType>;
type RpClient = Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The HTTP client used towards upstreams: no redirects followed, short timeouts.
pub fn http_client() -> anyhow::Result<openidconnect::reqwest::Client> {
    Ok(openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(1))
        .timeout(UPSTREAM_TIMEOUT)
        .build()?)
}

/// The client authentication at the upstream's token endpoint: `client_secret_basic` unless
/// the upstream only lists `client_secret_post`. Pure.
pub fn auth_type(supported: Option<&Vec<CoreClientAuthMethod>>) -> AuthType {
    match supported {
        Some(methods)
            if !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
                && methods.contains(&CoreClientAuthMethod::ClientSecretPost) =>
        {
            AuthType::RequestBody
        }
        _ => AuthType::BasicAuth,
    }
}

struct Discovered {
    metadata: CoreProviderMetadata,
    fetched: Instant,
    /// When an unknown key id last caused a JWKS refresh.
    jwks_refreshed: Option<Instant>,
}

/// The per-sign-in secrets of a redirect to the upstream; kept server-side until the callback.
pub struct Started {
    /// Where to send the browser.
    pub url: url::Url,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// One configured upstream and its cached discovery.
pub struct Upstream {
    pub config: UpstreamConfig,
    discovered: RwLock<Option<Arc<Discovered>>>,
}

impl Upstream {
    /// An upstream not yet discovered (discovery happens at the first sign-in with it, so an
    /// upstream that is down never stops the server or the password sign-in).
    pub fn new(config: UpstreamConfig) -> Self {
        Upstream {
            config,
            discovered: RwLock::new(None),
        }
    }

    /// The URL name.
    pub fn name(&self) -> &str {
        &self.config.upstream.name
    }

    /// The button text.
    pub fn display_name(&self) -> &str {
        &self.config.upstream.display_name
    }

    fn cached(&self) -> Option<Arc<Discovered>> {
        self.discovered.read().ok().and_then(|d| d.clone())
    }

    fn remember(&self, d: Discovered) -> Arc<Discovered> {
        let d = Arc::new(d);
        if let Ok(mut slot) = self.discovered.write() {
            *slot = Some(d.clone());
        }
        d
    }

    async fn discovered(
        &self,
        http: &openidconnect::reqwest::Client,
    ) -> Result<Arc<Discovered>, FederationError> {
        if let Some(d) = self
            .cached()
            .filter(|d| d.fetched.elapsed() < DISCOVERY_TTL)
        {
            return Ok(d);
        }
        let issuer = IssuerUrl::new(self.config.upstream.issuer.clone())
            .map_err(|e| FederationError::Discovery(e.to_string()))?;
        // Checks that the document's issuer is exactly this one, and fetches the JWKS.
        let metadata = CoreProviderMetadata::discover_async(issuer, http)
            .await
            .map_err(|e| FederationError::Discovery(e.to_string()))?;
        Ok(self.remember(Discovered {
            metadata,
            fetched: Instant::now(),
            jwks_refreshed: None,
        }))
    }

    fn client(
        &self,
        metadata: &CoreProviderMetadata,
        redirect_uri: &str,
    ) -> Result<RpClient, FederationError> {
        let redirect = RedirectUrl::new(redirect_uri.to_string())
            .map_err(|e| FederationError::Discovery(format!("redirect URI: {e}")))?;
        Ok(RpClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.config.upstream.client_id.clone()),
            Some(ClientSecret::new(self.config.client_secret.clone())),
        )
        .set_redirect_uri(redirect)
        .set_auth_type(auth_type(metadata.token_endpoint_auth_methods_supported())))
    }

    /// The authorization URL for a new sign-in (discovering the upstream if needed), with a
    /// fresh random state, nonce and PKCE S256 challenge.
    pub async fn start(
        &self,
        http: &openidconnect::reqwest::Client,
        redirect_uri: &str,
    ) -> Result<Started, FederationError> {
        let d = self.discovered(http).await?;
        self.authorization_request(&d.metadata, redirect_uri)
    }

    /// The authorization URL at a discovered upstream, with a fresh random state, nonce and
    /// PKCE S256 challenge, and the secrets to keep until the callback.
    pub fn authorization_request(
        &self,
        metadata: &CoreProviderMetadata,
        redirect_uri: &str,
    ) -> Result<Started, FederationError> {
        let client = self.client(metadata, redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in self
            .config
            .upstream
            .scopes
            .iter()
            .filter(|s| *s != "openid")
        {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Started {
            url,
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges `code`, validates the ID token against `nonce` and maps its claims.
    pub async fn finish(
        &self,
        http: &openidconnect::reqwest::Client,
        redirect_uri: &str,
        code: &str,
        nonce: &str,
        pkce_verifier: &str,
    ) -> Result<UpstreamIdentity, FederationError> {
        let d = self.discovered(http).await?;
        let client = self.client(&d.metadata, redirect_uri)?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| FederationError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(http)
            .await
            .map_err(|e| {
                FederationError::Exchange(match e {
                    // The upstream's error code only; descriptions may echo request values.
                    RequestTokenError::ServerResponse(r) => {
                        format!("token endpoint: {}", r.error())
                    }
                    other => other.to_string(),
                })
            })?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| FederationError::InvalidIdToken("no ID token in the response".into()))?;
        let nonce = Nonce::new(nonce.to_string());
        let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(c) => c.clone(),
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) if d
                .jwks_refreshed
                .is_none_or(|t| t.elapsed() >= JWKS_REFRESH_INTERVAL) =>
            {
                let d = self.refresh_jwks(http, &d).await?;
                let client = self.client(&d.metadata, redirect_uri)?;
                let verifier = client.id_token_verifier();
                let claims = id_token
                    .claims(&verifier, &nonce)
                    .map_err(|e| FederationError::InvalidIdToken(e.to_string()))?
                    .clone();
                claims
            }
            Err(e) => return Err(FederationError::InvalidIdToken(e.to_string())),
        };
        map_claims(&self.config.upstream.claims, &claims_json(&claims)?)
            .map_err(FederationError::Claims)
    }

    async fn refresh_jwks(
        &self,
        http: &openidconnect::reqwest::Client,
        d: &Discovered,
    ) -> Result<Arc<Discovered>, FederationError> {
        tracing::info!(upstream = %self.name(), "ID token names an unknown key; fetching the upstream's JWKS again");
        let jwks = CoreJsonWebKeySet::fetch_async(d.metadata.jwks_uri(), http)
            .await
            .map_err(|e| FederationError::Discovery(format!("JWKS: {e}")))?;
        Ok(self.remember(Discovered {
            metadata: d.metadata.clone().set_jwks(jwks),
            fetched: d.fetched,
            jwks_refreshed: Some(Instant::now()),
        }))
    }
}

/// The claims of a validated ID token as one JSON object (standard and other claims alike),
/// for claim mapping.
pub fn claims_json(
    claims: &openidconnect::IdTokenClaims<ExtraClaims, CoreGenderClaim>,
) -> Result<serde_json::Map<String, serde_json::Value>, FederationError> {
    match serde_json::to_value(claims) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(FederationError::InvalidIdToken(
            "claims are not an object".into(),
        )),
        Err(e) => Err(FederationError::InvalidIdToken(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_url_carries_client_scopes_state_nonce_and_s256_challenge() {
        use base64::Engine;
        use sha2::Digest;
        let metadata: CoreProviderMetadata = serde_json::from_value(serde_json::json!({
            "issuer": "https://idp.example.com",
            "authorization_endpoint": "https://idp.example.com/authorize?tenant=1",
            "token_endpoint": "https://idp.example.com/token",
            "jwks_uri": "https://idp.example.com/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }))
        .unwrap();
        let upstream = Upstream::new(UpstreamConfig {
            upstream: palisade_wire::contract::Upstream {
                name: "corp".into(),
                display_name: "Corp".into(),
                issuer: "https://idp.example.com".into(),
                client_id: "palisade".into(),
                scopes: vec!["openid".into(), "email".into(), "groups".into()],
                claims: Default::default(),
                account_linking: Default::default(),
            },
            client_secret: "s3cret".into(),
        });
        let cb = "https://id.example.com/upstream/corp/callback";
        let started = upstream.authorization_request(&metadata, cb).unwrap();
        let other = upstream.authorization_request(&metadata, cb).unwrap();
        assert_ne!(started.state, other.state, "fresh state each time");
        assert_ne!(started.nonce, other.nonce, "fresh nonce each time");
        assert_ne!(started.pkce_verifier, other.pkce_verifier);
        let url = &started.url;
        assert_eq!(url.host_str(), Some("idp.example.com"));
        assert_eq!(url.path(), "/authorize");
        let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["tenant"], "1", "the endpoint's own query is kept");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "palisade");
        assert_eq!(q["redirect_uri"], cb);
        assert_eq!(q["scope"], "openid email groups", "openid once, first");
        assert_eq!(q["state"], started.state);
        assert_eq!(q["nonce"], started.nonce);
        assert_eq!(q["code_challenge_method"], "S256");
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(started.pkce_verifier.as_bytes()));
        assert_eq!(q["code_challenge"], expected);
        assert!(!url.as_str().contains("s3cret"), "no secret in the URL");
        assert!(started.state.len() >= 22 && started.nonce.len() >= 22);
    }

    #[test]
    fn standard_and_provider_specific_claims_are_both_mappable() {
        let claims: openidconnect::IdTokenClaims<ExtraClaims, CoreGenderClaim> =
            serde_json::from_value(serde_json::json!({
                "iss": "https://login.example.com/t/v2.0",
                "aud": "app",
                "exp": 2_000_000_000,
                "iat": 1_900_000_000,
                "sub": "pairwise-sub",
                "oid": "object-id",
                "email": "a@example.com",
                "email_verified": true,
                "name": "A",
            }))
            .unwrap();
        let map = claims_json(&claims).unwrap();
        let entra = palisade_wire::contract::ClaimMapping {
            subject: "oid".into(),
            ..Default::default()
        };
        let id = map_claims(&entra, &map).unwrap();
        assert_eq!(id.subject, "object-id");
        assert_eq!(id.email.as_deref(), Some("a@example.com"));
        assert!(id.email_verified);
        assert_eq!(id.name.as_deref(), Some("A"));
        let default = map_claims(&Default::default(), &map).unwrap();
        assert_eq!(default.subject, "pairwise-sub");
    }

    #[test]
    fn token_endpoint_auth_prefers_basic() {
        use CoreClientAuthMethod::{ClientSecretBasic, ClientSecretPost, PrivateKeyJwt};
        assert!(matches!(auth_type(None), AuthType::BasicAuth));
        assert!(matches!(
            auth_type(Some(&vec![ClientSecretPost, ClientSecretBasic])),
            AuthType::BasicAuth
        ));
        assert!(matches!(
            auth_type(Some(&vec![ClientSecretPost])),
            AuthType::RequestBody
        ));
        assert!(matches!(
            auth_type(Some(&vec![PrivateKeyJwt])),
            AuthType::BasicAuth
        ));
    }
}
