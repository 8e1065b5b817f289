//! `/end_session` (OpenID Connect RP-Initiated Logout 1.0), GET or POST: ends this browser's
//! session, then returns to `post_logout_redirect_uri` only when it is registered for the
//! client named by `id_token_hint` or `client_id`; otherwise shows a signed-out page.

use super::authorize::{redirect_with, single_valued, RawParams};
use super::html;
use crate::sessions;
use crate::state::AppState;
use crate::tokens::verify_id_token_hint;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Form;
use palisade_wire::registration::ClientRegistration;

/// Where to send the browser after logout, decided from the (already verified) parameters.
/// Pure: `None` means "show the signed-out page".
pub fn logout_redirect(
    client: Option<&ClientRegistration>,
    post_logout_redirect_uri: Option<&str>,
) -> Result<Option<String>, &'static str> {
    match (post_logout_redirect_uri, client) {
        (None, _) => Ok(None),
        (Some(_), None) => Err("post_logout_redirect_uri needs id_token_hint or client_id"),
        (Some(uri), Some(c)) if c.post_logout_redirect_uris.iter().any(|r| r == uri) => {
            Ok(Some(uri.to_string()))
        }
        (Some(_), Some(_)) => Err("post_logout_redirect_uri is not registered for this client"),
    }
}

/// The parameters of a logout request (RP-Initiated Logout 1.0 §2), in the query (GET) or a
/// form (POST). Documentation only: the handler reads the raw pairs.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EndSessionParams {
    /// An ID token this issuer signed (expired ones are fine); names the client.
    #[schema(nullable = false)]
    #[param(nullable = false)]
    pub id_token_hint: Option<String>,
    /// The client, when there is no `id_token_hint` (must match it when both are sent).
    #[schema(nullable = false)]
    #[param(nullable = false)]
    pub client_id: Option<String>,
    /// Followed only when registered for the client.
    #[schema(nullable = false)]
    #[param(nullable = false)]
    pub post_logout_redirect_uri: Option<String>,
    /// Returned unchanged with the redirect.
    #[schema(nullable = false)]
    #[param(nullable = false)]
    pub state: Option<String>,
}

/// GET `/end_session`.
#[utoipa::path(
    get,
    path = "/end_session",
    tag = "public",
    operation_id = "end_session_get",
    params(EndSessionParams),
    responses(
        (status = 200, description = "Signed out: the \"Signed out\" page; the session cookie is cleared", content_type = "text/html", body = String),
        (status = 303, description = "Signed out, back to the registered `post_logout_redirect_uri` (with `state`)",
         headers(("Location" = String, description = "The post-logout redirect URI"))),
        (status = 400, description = "An error page: the hint was not issued here, the client does not match, or the URI is not registered", content_type = "text/html", body = String),
    ),
)]
pub async fn end_session_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<RawParams>, QueryRejection>,
) -> Response {
    match query {
        Ok(Query(raw)) => end_session(&state, &headers, raw).await,
        Err(_) => html::error_page(
            StatusCode::BAD_REQUEST,
            "The sign-out request is malformed.",
        ),
    }
}

/// POST `/end_session`.
#[utoipa::path(
    post,
    path = "/end_session",
    tag = "public",
    operation_id = "end_session_post",
    request_body(content = EndSessionParams, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Signed out, as for GET", content_type = "text/html", body = String),
        (status = 303, description = "As for GET", headers(("Location" = String, description = "The post-logout redirect URI"))),
        (status = 400, description = "An error page, as for GET", content_type = "text/html", body = String),
    ),
)]
pub async fn end_session_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<RawParams>, FormRejection>,
) -> Response {
    match form {
        Ok(Form(raw)) => end_session(&state, &headers, raw).await,
        Err(_) => html::error_page(
            StatusCode::BAD_REQUEST,
            "The sign-out request is malformed.",
        ),
    }
}

async fn end_session(state: &AppState, headers: &HeaderMap, raw: RawParams) -> Response {
    let bad = |m: &str| {
        html::error_page(
            StatusCode::BAD_REQUEST,
            &format!("The sign-out request is not valid: {m}."),
        )
    };
    let params = match single_valued(&raw) {
        Ok(p) => p,
        Err(m) => return bad(&m),
    };
    let get = |k: &str| params.get(k).copied().filter(|v| !v.is_empty());
    let now = chrono::Utc::now();
    let hinted = match get("id_token_hint") {
        None => None,
        Some(hint) => {
            match verify_id_token_hint(&state.keys.get(), &state.config.issuer, hint, now) {
                Ok(claims) => Some(claims.aud),
                Err(_) => return bad("id_token_hint was not issued by this provider"),
            }
        }
    };
    let client_id = match (hinted, get("client_id")) {
        (Some(a), Some(b)) if a != b => return bad("client_id does not match id_token_hint"),
        (Some(a), _) => Some(a),
        (None, b) => b.map(str::to_string),
    };
    let client = match &client_id {
        Some(id) => match state.store.client(id).await {
            Ok(c) => c,
            Err(_) => {
                return html::error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The sign-in service is temporarily unavailable.",
                )
            }
        },
        None => None,
    };
    let target = match logout_redirect(client.as_deref(), get("post_logout_redirect_uri")) {
        Ok(t) => t,
        Err(m) => return bad(m),
    };
    let clear = match sessions::end(state, headers).await {
        Ok(c) => c,
        Err(_) => {
            return html::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The sign-in service is temporarily unavailable.",
            )
        }
    };
    tracing::info!(
        client_id = client_id.as_deref().unwrap_or("-"),
        "signed out"
    );
    let mut resp = match target {
        Some(uri) => {
            let state_param = get("state");
            let params: Vec<(&str, &str)> =
                state_param.map(|s| vec![("state", s)]).unwrap_or_default();
            redirect_with(&uri, &params)
        }
        None => html::page(
            StatusCode::OK,
            "Signed out",
            "<h1>Signed out</h1>\n<p>You have been signed out. You can close this window.</p>",
        ),
    };
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_wire::registration::{GrantType, TokenEndpointAuthMethod};

    #[test]
    fn only_registered_post_logout_uris_are_followed() {
        let c = ClientRegistration {
            client_id: "app".into(),
            client_name: None,
            redirect_uris: vec!["https://app.example/cb".into()],
            post_logout_redirect_uris: vec!["https://app.example/bye".into()],
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: vec![],
            token_endpoint_auth_method: TokenEndpointAuthMethod::None,
            public: true,
            client_secret_hash: None,
        };
        assert_eq!(logout_redirect(Some(&c), None), Ok(None));
        assert_eq!(
            logout_redirect(Some(&c), Some("https://app.example/bye")),
            Ok(Some("https://app.example/bye".into()))
        );
        assert!(logout_redirect(Some(&c), Some("https://app.example/cb")).is_err());
        assert!(logout_redirect(None, Some("https://app.example/bye")).is_err());
    }
}
