//! An answer as the simulator keeps it (for idempotent replay) and sends it.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Status and JSON body: everything an idempotent replay must reproduce.
#[derive(Debug, Clone, PartialEq)]
pub struct SimResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
    /// Whether this is a stored answer replayed for a repeated idempotency key.
    pub replayed: bool,
    /// `Stripe-Should-Retry`, when it is not the default for the status.
    pub should_retry: Option<bool>,
    /// `Retry-After` in seconds.
    pub retry_after: Option<u64>,
}

impl SimResponse {
    /// A fresh answer.
    pub fn new(status: u16, body: Value) -> Self {
        Self {
            status,
            body,
            replayed: false,
            should_retry: None,
            retry_after: None,
        }
    }

    /// 200 with `body`.
    pub fn ok(body: Value) -> Self {
        Self::new(200, body)
    }
}

impl IntoResponse for SimResponse {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            "request-id",
            HeaderValue::from_str(&crate::ids::new_id("req"))
                .unwrap_or(HeaderValue::from_static("req_sim")),
        );
        // Stripe sends Stripe-Should-Retry on conflicts and server errors.
        let should_retry = self
            .should_retry
            .or((self.status == 409 || self.status >= 500).then_some(true));
        if let Some(should_retry) = should_retry {
            headers.insert(
                "stripe-should-retry",
                HeaderValue::from_static(if should_retry { "true" } else { "false" }),
            );
        }
        if let Some(seconds) = self.retry_after {
            headers.insert("retry-after", HeaderValue::from(seconds));
        }
        if self.replayed {
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}
