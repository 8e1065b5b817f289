//! `/revoke` (RFC 7009): revokes an access token or a refresh token (its whole family) the
//! calling client holds. Unknown or invalid tokens are answered 200 too, as the RFC requires.

use super::{form, required, FormPairs};
use crate::client_auth::authenticate_form;
use crate::error::{ErrorBody, OAuthError};
use crate::revocation::revoke_grant;
use crate::state::AppState;
use crate::store::secret_hash;
use crate::tokens::verify;
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Form;

/// The revocation endpoint.
#[utoipa::path(
    post,
    path = "/revoke",
    tag = "public",
    operation_id = "revoke",
    request_body(content = super::TokenForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = []), ()),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke (unknown, invalid or another client's token): the answer is the same"),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_client`: client authentication failed", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Basic realm=\"palisade\"`"))),
    ),
)]
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Form<FormPairs>, FormRejection>,
) -> Result<StatusCode, OAuthError> {
    let p = form(body)?;
    let client = authenticate_form(state.store.as_ref(), &headers, &p).await?;
    let token = required(&p, "token")?;
    if let Ok(claims) = verify(
        &state.keys.get(),
        &state.config.issuer,
        token,
        chrono::Utc::now(),
    ) {
        // A client may revoke only its own tokens; others are silently ignored (RFC 7009 §2.1).
        if claims.client_id == client.client_id {
            let expires =
                chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or_else(chrono::Utc::now);
            state.store.revoke_jti(&claims.jti, expires).await?;
        }
    } else if let Some(g) = state.store.refresh(&secret_hash(token)).await? {
        if g.client_id == client.client_id {
            // The whole grant: its refresh tokens and the access tokens minted under it.
            revoke_grant(
                state.store.as_ref(),
                &g.family_id,
                &state.config.ttls,
                chrono::Utc::now(),
            )
            .await?;
        }
    }
    Ok(StatusCode::OK)
}
