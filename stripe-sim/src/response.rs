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
    /// What Stripe's own headers say of the request; set as the answer leaves.
    pub stamp: Stamp,
}

/// The headers Stripe puts on an answer about its request: `Request-Id`,
/// `Stripe-Version`, a `Warning` when the version asked for was served as
/// another, and for an idempotent POST its `Idempotency-Key` with
/// `Idempotent-Replayed`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stamp {
    /// `req_…`.
    pub request_id: Option<String>,
    /// The API version the request was served at.
    pub version: Option<String>,
    /// Why the version served is not the one asked for.
    pub warning: Option<String>,
    /// The request's `Idempotency-Key`, on a POST.
    pub idempotency_key: Option<String>,
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
            stamp: Stamp::default(),
        }
    }

    /// 200 with `body`.
    pub fn ok(body: Value) -> Self {
        Self::new(200, body)
    }
}

impl Stamp {
    /// Adds `request_log_url`, Stripe's link to the request in the
    /// Dashboard, to an error that has none yet.
    pub fn log_url(&self, response: &mut SimResponse) {
        if let Some(error) = response
            .body
            .get_mut("error")
            .and_then(|e| e.as_object_mut())
            && !error.contains_key("request_log_url")
            && let Some(request_id) = &self.request_id
        {
            error.insert(
                "request_log_url".to_owned(),
                format!("https://dashboard.stripe.com/test/logs/{request_id}").into(),
            );
        }
    }
}

impl IntoResponse for SimResponse {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.body)).into_response();
        let headers = response.headers_mut();
        let request_id = self
            .stamp
            .request_id
            .unwrap_or_else(|| crate::ids::new_id("req"));
        let text = |value: &str| HeaderValue::from_str(value).ok();
        if let Some(value) = text(&request_id) {
            headers.insert("request-id", value);
        }
        if let Some(value) = self.stamp.version.as_deref().and_then(text) {
            headers.insert("stripe-version", value);
        }
        if let Some(value) = self.stamp.warning.as_deref().and_then(text) {
            headers.insert("warning", value);
        }
        if let Some(value) = self.stamp.idempotency_key.as_deref().and_then(text) {
            headers.insert("idempotency-key", value);
            headers.insert(
                "idempotent-replayed",
                HeaderValue::from_static(if self.replayed { "true" } else { "false" }),
            );
        }
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
        response
    }
}
