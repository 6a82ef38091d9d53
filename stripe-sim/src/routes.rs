//! The Stripe endpoints the simulator serves: routing, validation into a
//! [`Command`], and execution against an account.

use axum::http::Method;
use serde_json::Value;

use crate::account::{Account, check_expand};
use crate::error::StripeError;
use crate::params::Params;
use crate::payment_intents::{self, Confirmation, NewPaymentIntent};
use crate::refunds::{self, NewRefund};
use crate::state::Ctx;
use crate::{listing, pi_changes, reference, search};

/// A Stripe endpoint, with the id in its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/payment_intents`.
    CreatePaymentIntent,
    /// `GET /v1/payment_intents`.
    ListPaymentIntents,
    /// `GET /v1/payment_intents/search`.
    SearchPaymentIntents,
    /// `GET /v1/payment_intents/{id}`.
    RetrievePaymentIntent(String),
    /// `POST /v1/payment_intents/{id}`.
    UpdatePaymentIntent(String),
    /// `POST /v1/payment_intents/{id}/confirm`.
    ConfirmPaymentIntent(String),
    /// `POST /v1/payment_intents/{id}/capture`.
    CapturePaymentIntent(String),
    /// `POST /v1/payment_intents/{id}/cancel`.
    CancelPaymentIntent(String),
    /// `POST /v1/payment_intents/{id}/increment_authorization`.
    IncrementAuthorization(String),
    /// `POST /v1/refunds`.
    CreateRefund,
    /// `GET /v1/refunds`.
    ListRefunds,
    /// `GET /v1/refunds/{id}`.
    RetrieveRefund(String),
    /// `GET /v1/charges/{id}`.
    RetrieveCharge(String),
}

impl Endpoint {
    /// The endpoint of `method path`, or `None` for a URL the simulator does not serve.
    pub fn route(method: &Method, path: &str) -> Option<Self> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let id = |s: &str| s.to_owned();
        let endpoint = match (method.as_str(), segments.as_slice()) {
            ("POST", ["v1", "payment_intents"]) => Self::CreatePaymentIntent,
            ("GET", ["v1", "payment_intents"]) => Self::ListPaymentIntents,
            ("GET", ["v1", "payment_intents", "search"]) => Self::SearchPaymentIntents,
            ("GET", ["v1", "payment_intents", pi]) => Self::RetrievePaymentIntent(id(pi)),
            ("POST", ["v1", "payment_intents", pi]) => Self::UpdatePaymentIntent(id(pi)),
            ("POST", ["v1", "payment_intents", pi, "confirm"]) => {
                Self::ConfirmPaymentIntent(id(pi))
            }
            ("POST", ["v1", "payment_intents", pi, "capture"]) => {
                Self::CapturePaymentIntent(id(pi))
            }
            ("POST", ["v1", "payment_intents", pi, "cancel"]) => Self::CancelPaymentIntent(id(pi)),
            ("POST", ["v1", "payment_intents", pi, "increment_authorization"]) => {
                Self::IncrementAuthorization(id(pi))
            }
            ("POST", ["v1", "refunds"]) => Self::CreateRefund,
            ("GET", ["v1", "refunds"]) => Self::ListRefunds,
            ("GET", ["v1", "refunds", re]) => Self::RetrieveRefund(id(re)),
            ("GET", ["v1", "charges", ch]) => Self::RetrieveCharge(id(ch)),
            _ => return None,
        };
        Some(endpoint)
    }

    /// Its name in `reference/params.json`, and the object its answer expands.
    fn reference(&self) -> (&'static str, &'static str) {
        match self {
            Self::CreatePaymentIntent => ("POST /v1/payment_intents", "payment_intent"),
            Self::ListPaymentIntents => ("GET /v1/payment_intents", "payment_intent"),
            Self::SearchPaymentIntents => ("GET /v1/payment_intents/search", "payment_intent"),
            Self::RetrievePaymentIntent(_) => ("GET /v1/payment_intents/{id}", "payment_intent"),
            Self::UpdatePaymentIntent(_) => ("POST /v1/payment_intents/{id}", "payment_intent"),
            Self::ConfirmPaymentIntent(_) => {
                ("POST /v1/payment_intents/{id}/confirm", "payment_intent")
            }
            Self::CapturePaymentIntent(_) => {
                ("POST /v1/payment_intents/{id}/capture", "payment_intent")
            }
            Self::CancelPaymentIntent(_) => {
                ("POST /v1/payment_intents/{id}/cancel", "payment_intent")
            }
            Self::IncrementAuthorization(_) => (
                "POST /v1/payment_intents/{id}/increment_authorization",
                "payment_intent",
            ),
            Self::CreateRefund => ("POST /v1/refunds", "refund"),
            Self::ListRefunds => ("GET /v1/refunds", "refund"),
            Self::RetrieveRefund(_) => ("GET /v1/refunds/{id}", "refund"),
            Self::RetrieveCharge(_) => ("GET /v1/charges/{id}", "charge"),
        }
    }
}

/// A request that passed validation, ready to execute.
pub struct Command {
    action: Action,
    params: Params,
    expand: Vec<String>,
}

enum Action {
    CreatePaymentIntent(NewPaymentIntent),
    ListPaymentIntents,
    SearchPaymentIntents,
    RetrievePaymentIntent(String),
    UpdatePaymentIntent(String),
    ConfirmPaymentIntent(String, Confirmation, Option<Value>, Option<String>),
    CapturePaymentIntent(String, Option<i64>),
    CancelPaymentIntent(String, Option<String>),
    IncrementAuthorization(String, i64),
    CreateRefund(NewRefund),
    ListRefunds,
    RetrieveRefund(String),
    RetrieveCharge(String),
}

impl Command {
    /// Checks that need no state: failures here are never saved for an idempotency key.
    pub fn validate(endpoint: Endpoint, params: Params, ctx: &Ctx) -> Result<Self, StripeError> {
        let (name, object) = endpoint.reference();
        reference::check(name, &params, ctx.version)?;
        let expand = params.expand()?;
        // A search answer counts its matches when asked, as Stripe's do.
        let searching = endpoint == Endpoint::SearchPaymentIntents;
        let objects: Vec<String> = expand
            .iter()
            .filter(|e| !(searching && *e == search::TOTAL_COUNT))
            .cloned()
            .collect();
        check_expand(object, &objects)?;
        let action = match endpoint {
            Endpoint::CreatePaymentIntent => {
                Action::CreatePaymentIntent(payment_intents::validate_create(&params, ctx)?)
            }
            Endpoint::ListPaymentIntents => Action::ListPaymentIntents,
            Endpoint::SearchPaymentIntents => Action::SearchPaymentIntents,
            Endpoint::RetrievePaymentIntent(id) => Action::RetrievePaymentIntent(id),
            Endpoint::UpdatePaymentIntent(id) => Action::UpdatePaymentIntent(id),
            Endpoint::ConfirmPaymentIntent(id) => {
                let (confirmation, options, capture) = payment_intents::validate_confirm(&params)?;
                Action::ConfirmPaymentIntent(id, confirmation, options, capture)
            }
            Endpoint::CapturePaymentIntent(id) => {
                Action::CapturePaymentIntent(id, pi_changes::validate_capture(&params)?)
            }
            Endpoint::CancelPaymentIntent(id) => {
                Action::CancelPaymentIntent(id, pi_changes::validate_cancel(&params)?)
            }
            Endpoint::IncrementAuthorization(id) => {
                Action::IncrementAuthorization(id, pi_changes::validate_increment(&params)?)
            }
            Endpoint::CreateRefund => Action::CreateRefund(refunds::validate_create(&params)?),
            Endpoint::ListRefunds => Action::ListRefunds,
            Endpoint::RetrieveRefund(id) => Action::RetrieveRefund(id),
            Endpoint::RetrieveCharge(id) => Action::RetrieveCharge(id),
        };
        Ok(Self {
            action,
            params,
            expand,
        })
    }

    /// Runs the command on `account`; the answer's JSON. A PaymentIntent
    /// changes all at once or not at all: if the change is refused, it is put
    /// back as it was (a decline, which records a failed attempt, is not a refusal).
    pub fn execute(self, account: &mut Account, ctx: &Ctx) -> Result<Value, StripeError> {
        let (params, expand, version) = (&self.params, self.expand.as_slice(), ctx.version);
        let id = match self.action {
            Action::CreatePaymentIntent(new) => payment_intents::create(account, new, ctx)?,
            Action::ListPaymentIntents => {
                return listing::payment_intents(account, params, expand, version);
            }
            Action::SearchPaymentIntents => {
                return search::payment_intents(account, params, expand, ctx);
            }
            Action::RetrievePaymentIntent(id) => id,
            Action::UpdatePaymentIntent(id) => {
                atomically(account, &id, |account| {
                    pi_changes::update(account, &id, params)
                })?;
                id
            }
            Action::ConfirmPaymentIntent(id, confirmation, options, capture) => {
                atomically(account, &id, |account| {
                    let pi = account.payment_intent_mut(&id, "intent")?;
                    if let Some(options) = options {
                        pi.payment_method_options = options;
                    }
                    if let Some(capture) = capture {
                        pi.capture_method = capture;
                    }
                    payment_intents::confirm(account, &id, confirmation, ctx)
                })?;
                id
            }
            Action::CapturePaymentIntent(id, amount) => {
                atomically(account, &id, |account| {
                    pi_changes::capture(account, &id, amount)
                })?;
                id
            }
            Action::CancelPaymentIntent(id, reason) => {
                atomically(account, &id, |account| {
                    pi_changes::cancel(account, &id, reason, ctx)
                })?;
                id
            }
            Action::IncrementAuthorization(id, amount) => {
                atomically(account, &id, |account| {
                    pi_changes::increment_authorization(account, &id, amount, params)
                })?;
                id
            }
            Action::CreateRefund(new) => {
                let id = refunds::create(account, new, ctx)?;
                return account.refund_json(&id, expand, version);
            }
            Action::ListRefunds => return listing::refunds(account, params, expand, version),
            Action::RetrieveRefund(id) => return account.refund_json(&id, expand, version),
            Action::RetrieveCharge(id) => return account.charge_json(&id, expand, version),
        };
        account.payment_intent_json(&id, expand, version)
    }
}

/// Runs `change` on the PaymentIntent `id`; if it is refused (any error but a
/// card decline, which records its attempt), the PaymentIntent is restored.
/// Changes fail before touching charges or refunds, so the PaymentIntent is
/// all there is to restore.
fn atomically(
    account: &mut Account,
    id: &str,
    change: impl FnOnce(&mut Account) -> Result<(), StripeError>,
) -> Result<(), StripeError> {
    let before = account.payment_intent_mut(id, "intent")?.clone();
    let result = change(account);
    if let Err(err) = &result
        && !err.is_card_error()
        && let Ok(pi) = account.payment_intent_mut(id, "intent")
    {
        *pi = before;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_stripe_paths() {
        assert_eq!(
            Endpoint::route(&Method::POST, "/v1/payment_intents"),
            Some(Endpoint::CreatePaymentIntent)
        );
        assert_eq!(
            Endpoint::route(&Method::POST, "/v1/payment_intents/pi_1/capture"),
            Some(Endpoint::CapturePaymentIntent("pi_1".into()))
        );
        assert_eq!(
            Endpoint::route(&Method::GET, "/v1/payment_intents/search"),
            Some(Endpoint::SearchPaymentIntents)
        );
        assert_eq!(
            Endpoint::route(&Method::GET, "/v1/charges/ch_1"),
            Some(Endpoint::RetrieveCharge("ch_1".into()))
        );
        assert_eq!(Endpoint::route(&Method::DELETE, "/v1/refunds/re_1"), None);
    }
}
