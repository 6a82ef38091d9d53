//! HTTP endpoints, one module per group.

pub mod admin_audit;
pub mod audit;
pub mod health;
pub mod keys;
pub mod proxy;
pub mod roles;

use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::AuditRecord;

/// Default and largest `limit` of the listing endpoints.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

/// Turns a query-string rejection into the API's `invalid_request`.
fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::InvalidRequest(rejection.body_text())
}

/// Checks a listing's `limit` (1–1000, default 100).
fn limit(requested: Option<i64>) -> Result<i64, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::InvalidRequest(format!(
            "limit must be from 1 to {MAX_LIMIT}"
        ))),
    }
}

/// The answer to a request that named no valid key (at the proxy or the
/// admin API): counted for its summary row ([`crate::unauthenticated`]),
/// never written durably on its own, and its connection closed, so that a
/// stranger holds no slot of the connection limit between its requests
/// (else kept-alive strangers could leave /healthz none).
/// The answer to a request whose audit row could not be written: 503
/// `audit_unavailable` instead of what `record` says was to be answered,
/// and the audit log's line saying so.
pub(crate) fn withhold(state: &AppState, record: &AuditRecord) -> Response {
    let refusal = ApiError::AuditUnavailable;
    if let Some(log) = state.store().audit_log() {
        let answered = AuditRecord {
            status: refusal.status().as_u16(),
            code: Some(refusal.code().to_owned()),
            ..record.as_stored()
        };
        log.withheld(&answered, record.status);
    }
    refusal.into_response()
}

pub(crate) fn answer_stranger(
    state: &AppState,
    record: &AuditRecord,
    mut response: Response,
) -> Response {
    state.metrics().unauthenticated.inc();
    state.unauthenticated().count(record);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
