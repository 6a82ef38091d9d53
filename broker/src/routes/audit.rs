//! `GET /v1/audit`: what was proxied, with which key, and what it held against the cap.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::json;

use crate::auth::Authorized;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::audit::Cursor;
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
    /// Follow the audit: rows after this cursor (`0` for the first), oldest
    /// first, and `next` to pass on the next call.
    after: Option<String>,
}

/// `GET /v1/audit?key_id=…&label_prefix=…&limit=…&kind=…`, newest first;
/// with `after=<cursor>`, the final rows after it, oldest first, and `next`:
/// a collector that passes each answer's `next` to its next call reads
/// every row once, across restarts of either side (rows past the audit
/// retention aside).
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
    let Some(after) = query.after else {
        let records = state.store().audit(&filter, query.kind).await?;
        return Ok(Json(json!({ "records": records })));
    };
    let cursor: Cursor = after.parse().map_err(ApiError::BadParameter)?;
    let page = state
        .store()
        .audit_after(&filter, query.kind, cursor)
        .await?;
    // An empty page leaves the cursor as it was given.
    let next = page.last().map_or(after, |(cursor, _)| cursor.to_string());
    // Each with its own cursor, for a collector that stops within a page.
    let records: Vec<serde_json::Value> = page
        .into_iter()
        .map(|(cursor, record)| {
            let mut value = json!(record);
            value["cursor"] = json!(cursor.to_string());
            value
        })
        .collect();
    Ok(Json(json!({ "records": records, "next": next })))
}
