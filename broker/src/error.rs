//! The broker's HTTP error: one code per failure a caller can act on.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to an HTTP caller as `{"error":{"code","message"}}`.
///
/// The message says what the caller did wrong; internal causes (database
/// errors, upstream I/O) go to the log and the caller sees only `internal`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or wrong admin token.
    #[error("missing or invalid admin token")]
    Unauthorized,
    /// A request field failed validation; the message names the field.
    #[error("{0}")]
    InvalidRequest(String),
    /// No such key (or vendor).
    #[error("{0}")]
    NotFound(String),
    /// The vault token is unknown.
    #[error("unknown vault key")]
    InvalidKey,
    /// The vault key was revoked.
    #[error("vault key has been revoked")]
    KeyRevoked,
    /// The vault key is past its `expires_at`.
    #[error("vault key has expired")]
    KeyExpired,
    /// The path is not in normal form (dot segments, empty segments, encoded separators).
    #[error("{0}")]
    InvalidPath(String),
    /// The key's allowlist does not cover this method and path.
    #[error("{0}")]
    EndpointNotAllowed(String),
    /// The request moves money in a currency the broker has no USD rate for.
    #[error("{0}")]
    CurrencyNotAllowed(String),
    /// The request would take the key past its daily spend cap.
    #[error("{0}")]
    CapExhausted(String),
    /// A proxied request's parameters or headers cannot be read unambiguously; the message names which.
    #[error("{0}")]
    BadParameter(String),
    /// A proxied request's method is not GET, POST or DELETE.
    #[error("method {0} is not proxied (GET, POST and DELETE are)")]
    MethodNotAllowed(String),
    /// A proxied POST body is not a form.
    #[error("request bodies must be application/x-www-form-urlencoded")]
    UnsupportedMediaType,
    /// The request body did not arrive within the body read timeout.
    #[error("request body did not arrive within {0} s")]
    RequestTimeout(u64),
    /// The request names an object the key neither created nor was issued for.
    #[error("{0}")]
    ObjectNotAllowed(String),
    /// The request asks for a `Stripe-Account` the key was not issued for.
    #[error("{0}")]
    AccountNotAllowed(String),
    /// A role token asked for a key outside its role's bounds, or for what only the admin may do.
    #[error("{0}")]
    RoleLimit(String),
    /// The thing to create exists already.
    #[error("{0}")]
    Conflict(String),
    /// The request body is over the proxy's limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// Upstream did not answer within the configured timeout.
    #[error("upstream did not answer in time")]
    UpstreamTimeout,
    /// Upstream could not be reached.
    #[error("upstream is unavailable")]
    UpstreamUnavailable,
    /// The bodies the broker holds at once are at their bound; the request was not read.
    #[error("the broker is holding as many request bodies as it may; retry shortly")]
    Busy,
    /// The request's audit record could not be written, so its answer is withheld.
    #[error("the broker could not record this request; retry it with the same Idempotency-Key")]
    AuditUnavailable,
    /// Anything the caller cannot fix; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::InvalidRequest(_) => "invalid_request",
            Self::NotFound(_) => "not_found",
            Self::InvalidKey => "invalid_key",
            Self::KeyRevoked => "key_revoked",
            Self::KeyExpired => "key_expired",
            Self::InvalidPath(_) => "invalid_path",
            Self::EndpointNotAllowed(_) => "endpoint_not_allowed",
            Self::CurrencyNotAllowed(_) => "currency_not_allowed",
            Self::CapExhausted(_) => "cap_exhausted",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::BadParameter(_) => "invalid_request",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RequestTimeout(_) => "request_timeout",
            Self::ObjectNotAllowed(_) => "object_not_allowed",
            Self::AccountNotAllowed(_) => "account_not_allowed",
            Self::RoleLimit(_) => "role_limit",
            Self::Conflict(_) => "conflict",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::AuditUnavailable => "audit_unavailable",
            Self::Busy => "busy",
            Self::Internal(_) => "internal",
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized | Self::InvalidKey | Self::KeyRevoked | Self::KeyExpired => {
                StatusCode::UNAUTHORIZED
            }
            Self::InvalidRequest(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::InvalidPath(_) | Self::BadParameter(_) => StatusCode::BAD_REQUEST,
            Self::EndpointNotAllowed(_)
            | Self::CurrencyNotAllowed(_)
            | Self::ObjectNotAllowed(_)
            | Self::AccountNotAllowed(_)
            | Self::RoleLimit(_) => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::CapExhausted(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Self::AuditUnavailable | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stripe's error `type` for this answer, which Stripe's libraries read
    /// (with the status) to choose the error class they raise: the broker's
    /// own failures are `api_error`, every refusal `invalid_request_error`.
    pub fn error_type(&self) -> &'static str {
        if self.status().is_server_error() {
            "api_error"
        } else {
            "invalid_request_error"
        }
    }

    /// The request parameter at fault, as Stripe names it in `param`: the
    /// one a refusal's message names as "parameter `…`".
    fn param(&self, message: &str) -> Option<String> {
        if !matches!(self, Self::BadParameter(_) | Self::EndpointNotAllowed(_)) {
            return None;
        }
        let (_, rest) = message.split_once("parameter `")?;
        let (name, _) = rest.split_once('`')?;
        Some(name.to_owned())
    }

    /// Wraps an internal failure whose details must not reach the caller.
    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::internal(err)
    }
}

/// The header on every answer the broker refused itself, naming its code.
pub const BROKER_ERROR_HEADER: axum::http::HeaderName =
    axum::http::HeaderName::from_static("keylease-error");

/// The code of the error an answer carries, in its extensions, for whoever
/// audits the answer after the handler.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(error = %cause, "internal error while serving a request");
        }
        let message = self.to_string();
        let mut error = json!({
            "type": self.error_type(),
            "code": self.code(),
            "message": message,
        });
        if let Some(param) = self.param(&message) {
            error["param"] = json!(param);
        }
        let body = json!({ "error": error });
        let mut response = (self.status(), axum::Json(body)).into_response();
        // Tells the broker's own refusals from Stripe's answers, which are
        // Stripe-shaped too: Stripe's never carry this header.
        response.headers_mut().insert(
            BROKER_ERROR_HEADER,
            axum::http::HeaderValue::from_static(self.code()),
        );
        response.extensions_mut().insert(ErrorCode(self.code()));
        response
    }
}
