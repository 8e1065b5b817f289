//! The OAuth 2.0 error vocabulary (RFC 6749 §5.2, RFC 6750, RFC 7009, RFC 7662) and how each
//! error becomes an HTTP response. Handlers return these; nothing else reaches the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// The JSON body of every error of the API endpoints and the admin API (RFC 6749 §5.2).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error code: `invalid_request`, `invalid_client`, `invalid_grant`,
    /// `unauthorized_client`, `unsupported_grant_type`, `invalid_scope`, `invalid_token`,
    /// `insufficient_scope`, `not_found`, `too_many_requests` or `temporarily_unavailable`.
    #[schema(example = "invalid_request")]
    pub error: String,
    /// A sentence for the developer reading it.
    pub error_description: String,
}

/// An error a client is told about.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    /// Client authentication failed: 401 with `WWW-Authenticate`.
    #[error("client authentication failed")]
    InvalidClient,
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("{0}")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidScope(String),
    /// Storage or another dependency is down: 503, retry later.
    #[error("the service is temporarily unavailable")]
    TemporarilyUnavailable,
    /// Bearer token wrong (or, on the admin API, missing): 401 with
    /// `WWW-Authenticate: Bearer error="invalid_token"`.
    #[error("unauthorized")]
    Unauthorized,
    /// No access token at all at a protected resource: 401 with a `WWW-Authenticate` challenge
    /// that carries no error code (RFC 6750 §3.1).
    #[error("an access token is required")]
    NoToken,
    #[error("not found")]
    NotFound,
    /// A rate limit refused the request: 429 with `Retry-After` (seconds).
    #[error("too many requests; retry later")]
    TooManyRequests(u64),
    /// A valid bearer token without the scope the resource needs (RFC 6750 §3.1): 403.
    #[error("{0}")]
    InsufficientScope(String),
}

/// Errors of the authorization endpoint that are sent back to the client's (validated)
/// redirect URI (RFC 6749 §4.1.2.1, OpenID Connect Core §3.1.2.6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("{0}")]
    UnsupportedResponseType(String),
    #[error("{0}")]
    InvalidScope(String),
    #[error("the user must sign in, which prompt=none forbids")]
    LoginRequired,
    #[error("request objects are not supported")]
    RequestNotSupported,
    #[error("request_uri is not supported")]
    RequestUriNotSupported,
    #[error("the service is temporarily unavailable")]
    TemporarilyUnavailable,
}

impl AuthorizationError {
    /// The RFC error code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthorizationError::InvalidRequest(_) => "invalid_request",
            AuthorizationError::UnauthorizedClient(_) => "unauthorized_client",
            AuthorizationError::UnsupportedResponseType(_) => "unsupported_response_type",
            AuthorizationError::InvalidScope(_) => "invalid_scope",
            AuthorizationError::LoginRequired => "login_required",
            AuthorizationError::RequestNotSupported => "request_not_supported",
            AuthorizationError::RequestUriNotSupported => "request_uri_not_supported",
            AuthorizationError::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

impl OAuthError {
    fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::TemporarilyUnavailable => "temporarily_unavailable",
            OAuthError::Unauthorized | OAuthError::NoToken => "invalid_token",
            OAuthError::NotFound => "not_found",
            OAuthError::TooManyRequests(_) => "too_many_requests",
            OAuthError::InsufficientScope(_) => "insufficient_scope",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            OAuthError::InvalidClient | OAuthError::Unauthorized | OAuthError::NoToken => {
                StatusCode::UNAUTHORIZED
            }
            OAuthError::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            OAuthError::NotFound => StatusCode::NOT_FOUND,
            OAuthError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            OAuthError::InsufficientScope(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// `text` made fit for `error_description`, which may hold only printable ASCII other than `"`
/// and `\` (RFC 6749 §4.1.2.1 and §5.2). Descriptions quote what a caller sent (a scope, a
/// prompt value, a parameter name), so each character outside that set becomes `?`.
pub fn description_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '?',
        })
        .collect()
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::warn!(error = %e, "storage unavailable");
        OAuthError::TemporarilyUnavailable
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code().to_string(),
            error_description: description_text(&self.to_string()),
        };
        let mut resp = (self.status(), Json(body)).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match self {
            OAuthError::InvalidClient => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"palisade\""),
                );
            }
            OAuthError::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            OAuthError::NoToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"palisade\""),
                );
            }
            OAuthError::InsufficientScope(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"insufficient_scope\""),
                );
            }
            OAuthError::TemporarilyUnavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            OAuthError::TooManyRequests(secs) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_client_is_401_with_www_authenticate() {
        let resp = OAuthError::InvalidClient.into_response();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn descriptions_hold_only_the_characters_rfc_6749_allows() {
        assert_eq!(
            description_text("unknown scope \"é\\x\"\n"),
            "unknown scope ???x??"
        );
        assert_eq!(
            description_text("missing parameter code"),
            "missing parameter code"
        );
        let resp =
            OAuthError::InvalidScope("scope \u{7f}\"x\" is not allowed".into()).into_response();
        let body = body_text(resp);
        assert!(
            body.contains(r#""error_description":"scope ??x? is not allowed""#),
            "{body}"
        );
    }

    fn body_text(resp: Response) -> String {
        let bytes =
            futures::executor::block_on(axum::body::to_bytes(resp.into_body(), 4096)).unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn a_request_without_a_token_gets_a_challenge_without_an_error_code() {
        let resp = OAuthError::NoToken.into_response();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            resp.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"palisade\""
        );
        let resp = OAuthError::Unauthorized.into_response();
        assert_eq!(
            resp.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
    }

    #[test]
    fn storage_outage_is_503_with_retry_after_never_500() {
        let resp = OAuthError::TemporarilyUnavailable.into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "5");
        assert_eq!(
            OAuthError::InvalidGrant("x".into())
                .into_response()
                .status(),
            StatusCode::BAD_REQUEST
        );
    }
}
