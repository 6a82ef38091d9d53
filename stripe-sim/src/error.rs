//! Stripe's error envelope: `{"error":{"type","code","message","param","doc_url",…}}`,
//! with a card error's `decline_code`, `charge`, `payment_intent` and
//! `payment_method`. `type` is one of the four Stripe's spec allows
//! (`api_error`, `card_error`, `idempotency_error`, `invalid_request_error`);
//! the HTTP status tells libraries the rest (401: authentication).

use serde_json::{Value, json};

use crate::cards::Decline;
use crate::response::SimResponse;

/// An error as Stripe answers it. Boxed: it travels in every `Result` here.
#[derive(Debug, Clone)]
pub struct StripeError(Box<ErrorBody>);

#[derive(Debug, Clone)]
struct ErrorBody {
    status: u16,
    kind: &'static str,
    code: Option<&'static str>,
    message: String,
    param: Option<String>,
    decline_code: Option<&'static str>,
    charge: Option<String>,
    payment_intent: Option<Value>,
    payment_method: Option<Value>,
}

/// Stripe's page for an error code: `card_declined` →
/// `https://stripe.com/docs/error-codes/card-declined`.
pub fn doc_url(code: &str) -> String {
    format!(
        "https://stripe.com/docs/error-codes/{}",
        code.replace('_', "-")
    )
}

impl StripeError {
    fn new(
        status: u16,
        kind: &'static str,
        code: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        Self(Box::new(ErrorBody {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
            decline_code: None,
            charge: None,
            payment_intent: None,
            payment_method: None,
        }))
    }

    fn with_param(mut self, param: &str) -> Self {
        self.0.param = Some(param.to_owned());
        self
    }

    /// 401: no usable test secret key. Stripe's type for it is
    /// `invalid_request_error` (its spec has no other); libraries read the 401.
    pub fn authentication(message: impl Into<String>) -> Self {
        Self::new(401, "invalid_request_error", None, message)
    }

    /// 400 `invalid_request_error` with no code: Stripe's answer to an unknown
    /// `Stripe-Version`, a `return_url` a confirmation needs, and the like.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", None, message)
    }

    /// 400 naming `param`, with no code.
    pub fn invalid_request_param(param: &str, message: impl Into<String>) -> Self {
        Self::invalid_request(message).with_param(param)
    }

    /// 500 `api_error`: a failure while executing (a staged `fail_while_executing`).
    pub fn api_error(message: impl Into<String>) -> Self {
        Self::new(500, "api_error", None, message)
    }

    /// 400 `parameter_missing`.
    pub fn missing(param: &str) -> Self {
        Self::new(
            400,
            "invalid_request_error",
            Some("parameter_missing"),
            format!("Missing required param: {param}."),
        )
        .with_param(param)
    }

    /// 400 `parameter_unknown`.
    pub fn unknown(param: &str) -> Self {
        Self::new(
            400,
            "invalid_request_error",
            Some("parameter_unknown"),
            format!("Received unknown parameter: {param}"),
        )
        .with_param(param)
    }

    /// 400 `parameter_invalid_integer`.
    pub fn invalid_integer(param: &str) -> Self {
        Self::new(
            400,
            "invalid_request_error",
            Some("parameter_invalid_integer"),
            format!("Invalid integer: {param} must be a whole number."),
        )
        .with_param(param)
    }

    /// 400 `parameter_invalid_empty` or a bad enum value, with Stripe's generic code.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self::new(
            400,
            "invalid_request_error",
            Some("parameter_invalid"),
            message,
        )
        .with_param(param)
    }

    /// 400 with a specific code, e.g. `amount_too_large`.
    pub fn invalid_with_code(
        code: &'static str,
        param: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        let error = Self::new(400, "invalid_request_error", Some(code), message);
        match param {
            Some(param) => error.with_param(param),
            None => error,
        }
    }

    /// 404 `resource_missing`.
    pub fn resource_missing(param: &str, what: &str, id: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            Some("resource_missing"),
            format!("No such {what}: '{id}'"),
        )
        .with_param(param)
    }

    /// 404 for a URL the simulator does not serve.
    pub fn unrecognized_url(method: &str, path: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            None,
            format!("Unrecognized request URL ({method}: {path})."),
        )
    }

    /// 400 `payment_intent_unexpected_state`, with the PaymentIntent.
    pub fn unexpected_state(message: impl Into<String>, payment_intent: Value) -> Self {
        let mut error = Self::new(
            400,
            "invalid_request_error",
            Some("payment_intent_unexpected_state"),
            message,
        );
        error.0.payment_intent = Some(payment_intent);
        error
    }

    /// 402 `card_error` (`card_declined`, `expired_card`, `authentication_required`, …):
    /// the decline, the failed charge and payment method, and the PaymentIntent.
    pub fn card_error(
        decline: &Decline,
        charge: &str,
        payment_method: Value,
        payment_intent: Value,
    ) -> Self {
        let mut error = Self::new(402, "card_error", Some(decline.code), decline.message);
        error.0.param = decline.param.map(str::to_owned);
        error.0.decline_code = Some(decline.decline_code);
        error.0.charge = Some(charge.to_owned());
        error.0.payment_method = Some(payment_method);
        error.0.payment_intent = Some(payment_intent);
        error
    }

    /// 400 `idempotency_error`: the key was used with other parameters.
    pub fn idempotency_mismatch() -> Self {
        Self::new(
            400,
            "idempotency_error",
            None,
            "Keys for idempotent requests can only be used with the same parameters they were first used with.",
        )
    }

    /// 409: the key's first request is still executing.
    pub fn idempotency_in_flight() -> Self {
        Self::new(
            409,
            "invalid_request_error",
            Some("idempotency_key_in_use"),
            "There is currently another in-progress request using this idempotency key. Try again later.",
        )
    }

    /// Whether this is a 402 card error: a decline that records a failed attempt.
    pub fn is_card_error(&self) -> bool {
        self.0.kind == "card_error"
    }

    /// This error as a response.
    pub fn response(&self) -> SimResponse {
        let this = &self.0;
        let mut error = json!({ "type": this.kind, "message": this.message });
        if let Some(code) = this.code {
            error["code"] = json!(code);
            error["doc_url"] = json!(doc_url(code));
        }
        if let Some(param) = &this.param {
            error["param"] = json!(param);
        }
        if let Some(decline_code) = this.decline_code {
            error["decline_code"] = json!(decline_code);
        }
        if let Some(charge) = &this.charge {
            error["charge"] = json!(charge);
        }
        if let Some(payment_intent) = &this.payment_intent {
            error["payment_intent"] = payment_intent.clone();
        }
        if let Some(payment_method) = &this.payment_method {
            error["payment_method"] = payment_method.clone();
        }
        SimResponse::new(this.status, json!({ "error": error }))
    }
}
