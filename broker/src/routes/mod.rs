//! HTTP endpoints, one module per group.

pub mod admin_audit;
pub mod audit;
pub mod health;
pub mod keys;
pub mod proxy;

use axum::extract::rejection::QueryRejection;

use crate::error::ApiError;

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
