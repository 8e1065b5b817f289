//! Client authentication at the token, introspection and revocation endpoints:
//! `client_secret_basic`, `client_secret_post` or `none` (public clients), each only as the
//! client registered it. Secrets are compared as hashes, in constant time.

use crate::error::OAuthError;
use crate::store::Store;
use axum::http::HeaderMap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use palisade_wire::registration::{
    verify_client_secret, ClientRegistration, TokenEndpointAuthMethod,
};
use std::sync::Arc;

/// Credentials as presented, before checking.
#[derive(Debug, PartialEq, Eq)]
pub struct Presented {
    pub client_id: String,
    pub secret: Option<String>,
    pub method: TokenEndpointAuthMethod,
}

/// Decodes one half of Basic credentials, which RFC 6749 §2.3.1 form-urlencodes first
/// (`+` is a space, `%XX` a byte; malformed escapes stay as they are).
fn form_decode(s: &str) -> String {
    let spaced: std::borrow::Cow<str> = if s.contains('+') {
        s.replace('+', " ").into()
    } else {
        s.into()
    };
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Reads the credentials from the Authorization header or the form. Presenting both is an
/// error (RFC 6749 §2.3).
pub fn presented(
    headers: &HeaderMap,
    form_client_id: Option<&str>,
    form_secret: Option<&str>,
) -> Result<Presented, OAuthError> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| OAuthError::InvalidClient)?;
        // The scheme name is case-insensitive (RFC 9110 §11.1).
        let Some(encoded) = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .map(|(_, encoded)| encoded)
        else {
            return Err(OAuthError::InvalidClient);
        };
        if form_secret.is_some() {
            return Err(OAuthError::InvalidRequest(
                "use one client authentication method only".into(),
            ));
        }
        let decoded = STANDARD
            .decode(encoded.trim())
            .map_err(|_| OAuthError::InvalidClient)?;
        let decoded = String::from_utf8(decoded).map_err(|_| OAuthError::InvalidClient)?;
        let (id, secret) = decoded.split_once(':').ok_or(OAuthError::InvalidClient)?;
        return Ok(Presented {
            client_id: form_decode(id),
            secret: Some(form_decode(secret)),
            method: TokenEndpointAuthMethod::ClientSecretBasic,
        });
    }
    let client_id = form_client_id.ok_or(OAuthError::InvalidClient)?;
    Ok(match form_secret {
        Some(secret) => Presented {
            client_id: client_id.into(),
            secret: Some(secret.into()),
            method: TokenEndpointAuthMethod::ClientSecretPost,
        },
        None => Presented {
            client_id: client_id.into(),
            secret: None,
            method: TokenEndpointAuthMethod::None,
        },
    })
}

/// Checks presented credentials against the registration.
pub fn verify(reg: &ClientRegistration, p: &Presented) -> Result<(), OAuthError> {
    if reg.token_endpoint_auth_method != p.method {
        return Err(OAuthError::InvalidClient);
    }
    match (&p.secret, &reg.client_secret_hash) {
        (None, None) if reg.public => Ok(()),
        (Some(secret), Some(hash)) if verify_client_secret(secret, hash) => Ok(()),
        _ => Err(OAuthError::InvalidClient),
    }
}

/// Reads, looks up and checks the client.
pub async fn authenticate(
    store: &dyn Store,
    headers: &HeaderMap,
    form_client_id: Option<&str>,
    form_secret: Option<&str>,
) -> Result<Arc<ClientRegistration>, OAuthError> {
    let p = presented(headers, form_client_id, form_secret)?;
    let reg = store
        .client(&p.client_id)
        .await?
        .ok_or(OAuthError::InvalidClient)?;
    verify(&reg, &p)?;
    Ok(reg)
}

/// [`authenticate`] with the credentials of a form body (`client_id`, `client_secret`).
pub async fn authenticate_form(
    store: &dyn Store,
    headers: &HeaderMap,
    form: &std::collections::HashMap<String, String>,
) -> Result<Arc<ClientRegistration>, OAuthError> {
    let field = |name: &str| form.get(name).map(String::as_str);
    authenticate(store, headers, field("client_id"), field("client_secret")).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_wire::registration::{hash_client_secret, GrantType};

    fn reg(method: TokenEndpointAuthMethod) -> ClientRegistration {
        ClientRegistration {
            client_id: "app".into(),
            client_name: None,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grant_types: vec![GrantType::ClientCredentials],
            scopes: vec![],
            token_endpoint_auth_method: method,
            public: false,
            client_secret_hash: Some(hash_client_secret("s3cret")),
        }
    }

    fn basic(id: &str, secret: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
                .parse()
                .unwrap(),
        );
        h
    }

    #[test]
    fn basic_credentials_verify_only_with_the_right_secret_and_method() {
        let p = presented(&basic("app", "s3cret"), None, None).unwrap();
        assert!(verify(&reg(TokenEndpointAuthMethod::ClientSecretBasic), &p).is_ok());
        assert!(
            verify(&reg(TokenEndpointAuthMethod::ClientSecretPost), &p).is_err(),
            "method must match registration"
        );
        let wrong = presented(&basic("app", "nope"), None, None).unwrap();
        assert!(verify(&reg(TokenEndpointAuthMethod::ClientSecretBasic), &wrong).is_err());
    }

    #[test]
    fn the_basic_scheme_name_is_case_insensitive() {
        let encoded = STANDARD.encode("app:s3cret");
        for scheme in ["Basic", "basic", "BASIC", "bAsIc"] {
            let mut h = HeaderMap::new();
            h.insert(
                "authorization",
                format!("{scheme} {encoded}").parse().unwrap(),
            );
            let p = presented(&h, None, None).unwrap();
            assert_eq!(
                (p.client_id.as_str(), p.secret.as_deref()),
                ("app", Some("s3cret"))
            );
        }
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            format!("Bearer {encoded}").parse().unwrap(),
        );
        assert!(matches!(
            presented(&h, None, None),
            Err(OAuthError::InvalidClient)
        ));
    }

    #[test]
    fn form_encoded_basic_credentials_are_decoded() {
        let p = presented(&basic("my%20app", "a%2Bb"), None, None).unwrap();
        assert_eq!(p.client_id, "my app");
        assert_eq!(p.secret.as_deref(), Some("a+b"));
        for (encoded, decoded) in [
            ("a+b", "a b"),
            ("plain", "plain"),
            ("50%", "50%"),
            ("%zz%2", "%zz%2"),
            ("%C3%A9", "\u{e9}"),
        ] {
            assert_eq!(form_decode(encoded), decoded, "{encoded}");
        }
    }

    #[test]
    fn two_methods_at_once_or_garbage_headers_are_refused() {
        assert!(presented(&basic("app", "s"), None, Some("s")).is_err());
        let mut h = HeaderMap::new();
        h.insert("authorization", "Basic !!!".parse().unwrap());
        assert!(matches!(
            presented(&h, None, None),
            Err(OAuthError::InvalidClient)
        ));
        assert!(matches!(
            presented(&HeaderMap::new(), None, None),
            Err(OAuthError::InvalidClient)
        ));
    }
}
