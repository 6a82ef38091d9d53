//! `GET /v1/audit`: what was proxied, with which key, and what it held against the cap.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::json;

use crate::auth::Authorized;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{AuditKind, KeyFilter};

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    key_id: Option<String>,
    label_prefix: Option<String>,
    limit: Option<i64>,
    /// `proxy` (the default), `admin` or `all`.
    #[serde(default)]
    kind: AuditKind,
}

/// `GET /v1/audit?key_id=…&label_prefix=…&limit=…&kind=…`, newest first.
///
/// A role token reads only the rows of keys its role issued.
pub async fn list(
    authorized: Authorized,
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(super::bad_query)?;
    let filter = KeyFilter {
        key_id: query.key_id,
        label_prefix: query.label_prefix,
        status: None,
        limit: super::limit(query.limit)?,
        role: authorized.caller.role_name().map(str::to_owned),
    };
    let records = state.store().audit(&filter, query.kind).await?;
    Ok(Json(json!({ "records": records })))
}
