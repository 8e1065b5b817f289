//! `GET /admin/audit`: the audit trail, newest first, filtered and paged.

use crate::audit::{AuditQuery, AuditRecord};
use crate::error::{ErrorBody, OAuthError};
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use std::collections::HashMap;

/// One page of audit records.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// Newest first.
    pub records: Vec<AuditRecord>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<i64>,
}

/// The filters of `GET /admin/audit` (documentation only: the handler reads a map).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AuditParams {
    /// `login`, `mfa`, `federated_login`, `token_issued`, `refresh_reuse`,
    /// `client_registration` or `key_rotation`.
    event: Option<String>,
    /// `success` or `failure`.
    outcome: Option<String>,
    /// A user's `sub` (or a client's id, for client_credentials tokens).
    subject: Option<String>,
    username: Option<String>,
    client_id: Option<String>,
    /// RFC 3339: records at or after this time.
    since: Option<String>,
    /// RFC 3339: records before this time.
    until: Option<String>,
    /// The `next` of the previous page.
    before: Option<i64>,
    /// 1 to 1000 (default 100).
    limit: Option<u32>,
}

/// Lists audit records.
#[utoipa::path(
    get,
    path = "/admin/audit",
    tag = "admin",
    operation_id = "list_audit",
    params(AuditParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Matching records, newest first", body = AuditPage),
        (status = 400, description = "`invalid_request`: a filter is malformed (the description names it)", body = ErrorBody),
        (status = 401, description = "`invalid_token`: the admin token is missing or wrong", body = ErrorBody,
         headers(("WWW-Authenticate" = String, description = "`Bearer error=\"invalid_token\"`"))),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<AuditPage>, OAuthError> {
    let Query(params) = query.map_err(|e| OAuthError::InvalidRequest(e.body_text()))?;
    if params.values().any(|v| !crate::endpoints::storable(v)) {
        return Err(OAuthError::InvalidRequest(
            "values must not contain NUL characters".into(),
        ));
    }
    let q = AuditQuery::parse(&params).map_err(OAuthError::InvalidRequest)?;
    let records = state.store.audit(&q).await?;
    let next = (records.len() == q.limit)
        .then(|| records.last().map(|r| r.id))
        .flatten();
    Ok(Json(AuditPage { records, next }))
}
