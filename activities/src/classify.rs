//! The one place where a failed attempt becomes a Temporal retry decision.

use keylease_workflows::contract::{NotSentDetails, ProcessingDetails, error_types};
use serde_json::json;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::ActivityError;

use crate::broker_client::BrokerError;
use crate::stripe_client::{ProxyError, StripeErrorBody};

/// Why an attempt failed.
#[derive(Debug)]
pub enum AttemptFailure {
    /// The input was refused before any key was issued.
    InvalidInput(String),
    /// The broker did not issue the key.
    KeyIssue(BrokerError),
    /// The Stripe call through the proxy failed.
    Call(ProxyError),
    /// A call made after Stripe answered the create (a poll, a cancel) failed:
    /// whatever it was, the create was sent, so it is never "not sent".
    AfterCreate {
        /// The PaymentIntent created.
        payment_intent_id: String,
        /// What failed (boxed: it is the largest variant by far).
        error: Box<ProxyError>,
    },
    /// The PaymentIntent needs 3-D Secure; it was cancelled.
    AuthenticationRequired {
        /// The cancelled PaymentIntent.
        payment_intent_id: String,
    },
    /// The PaymentIntent ended without the money.
    PaymentFailed {
        /// The PaymentIntent.
        payment_intent_id: String,
        /// Its status.
        status: String,
    },
    /// The PaymentIntent has not settled yet (`processing`, or another state on its way).
    Unsettled {
        /// The PaymentIntent.
        payment_intent_id: String,
        /// Its status.
        status: String,
    },
    /// Stripe's search found nothing, and its indexing delay has not passed.
    NotYetIndexed,
    /// The order already holds money of another checkout's PaymentIntent.
    DuplicateOrder(Earlier),
    /// Stripe refused a read of the order's PaymentIntents (a 4xx): not its
    /// answer about the charge, so never "nothing charged".
    OrderUnread(String),
}

/// The payment that already holds the order's money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earlier {
    /// Its PaymentIntent.
    pub payment_intent_id: String,
    /// Its status.
    pub status: String,
    /// The workflow that made it (metadata `workflow_id`), if it says.
    pub workflow_id: Option<String>,
    /// The checkout that made it (metadata `checkout_id`), if it says.
    pub checkout_id: Option<String>,
}

/// Maps an attempt's failure to Temporal's retry semantics.
///
/// Failures in `NOT_SENT` (marked †) carry [`NotSentDetails`]: the attempt
/// number, since on a retry an earlier attempt may have charged.
///
/// | outcome | Temporal |
/// |---|---|
/// | input refused before any key was issued | non-retryable `InvalidInput` |
/// | broker 429 `cap_exhausted` | non-retryable `SpendCapExceeded` † |
/// | broker 403 `endpoint_not_allowed`, `currency_not_allowed`, `object_not_allowed`, `account_not_allowed` | non-retryable `KeyScopeViolation` † |
/// | broker 401 `key_expired`, `key_revoked`, `invalid_key` | retryable `KeyUnusable` † (the next attempt gets a fresh key) |
/// | broker 502 `upstream_unavailable`, 504 `upstream_timeout`, other 5xx | retryable `StripeUnavailable` |
/// | broker's other refusals (`invalid_request`, `invalid_path`, `payload_too_large`, `unsupported_media_type`, `method_not_allowed`, `request_timeout`) | non-retryable `BrokerRejected` † |
/// | key issue: connection error, timeout, 5xx | retryable `BrokerUnavailable` † |
/// | key issue: 4xx | non-retryable `BrokerRejected` † |
/// | Stripe 402 `card_error` | non-retryable `CardDeclined`, decline code in details |
/// | Stripe 400 (`invalid_request_error`, `idempotency_error`) and other 4xx | non-retryable `StripeInvalidRequest` |
/// | Stripe 409, 429, 5xx; no answer (timeout, connection error) | retryable `StripeUnavailable`; `Stripe-Should-Retry: false` makes it non-retryable; `Retry-After` sets the next delay |
/// | any failure of a call after Stripe answered the create | retryable `StripeUnavailable` |
/// | `requires_action` (3-D Secure), PaymentIntent cancelled | non-retryable `AuthenticationRequired` |
/// | the order already paid by another checkout's PaymentIntent | `DuplicateOrder` †, its ids in details; non-retryable on the first attempt, retried on a later one |
/// | Stripe refused a read of the order's PaymentIntents (4xx) | retryable `NotYetIndexed` |
/// | PaymentIntent `requires_payment_method`, `canceled`, `requires_confirmation` | non-retryable `PaymentFailed` |
/// | PaymentIntent still `processing` when the attempt ends | retryable `ChargeProcessing` |
/// | search finds nothing within Stripe's indexing delay | retryable `NotYetIndexed` |
pub fn classify(failure: &AttemptFailure, attempt: u32) -> ActivityError {
    let not_sent = |type_name: &str, message: &str, retryable: bool| {
        ActivityError::application(
            ApplicationFailure::builder(message.to_owned())
                .type_name(type_name.to_owned())
                .non_retryable(!retryable)
                .details(NotSentDetails { attempt })
                .build(),
        )
    };
    match failure {
        AttemptFailure::InvalidInput(why) => fail(error_types::INVALID_INPUT, why, false),
        AttemptFailure::KeyIssue(BrokerError::Unavailable(why)) => not_sent(
            error_types::BROKER_UNAVAILABLE,
            &format!("key issue failed: {why}"),
            true,
        ),
        AttemptFailure::KeyIssue(err @ BrokerError::Rejected { .. }) => {
            not_sent(error_types::BROKER_REJECTED, &err.to_string(), false)
        }
        AttemptFailure::Call(err @ ProxyError::Broker { status, code, .. }) => {
            let message = err.to_string();
            match (*status, code.as_str()) {
                (429, "cap_exhausted") => {
                    not_sent(error_types::SPEND_CAP_EXCEEDED, &message, false)
                }
                (
                    403,
                    "endpoint_not_allowed"
                    | "currency_not_allowed"
                    | "object_not_allowed"
                    | "account_not_allowed",
                ) => not_sent(error_types::KEY_SCOPE_VIOLATION, &message, false),
                (401, _) => not_sent(error_types::KEY_UNUSABLE, &message, true),
                (500.., _) => fail(error_types::STRIPE_UNAVAILABLE, &message, true),
                _ => not_sent(error_types::BROKER_REJECTED, &message, false),
            }
        }
        AttemptFailure::AfterCreate {
            payment_intent_id,
            error,
        } => fail(
            error_types::STRIPE_UNAVAILABLE,
            &format!("{payment_intent_id} was created, then: {error}"),
            true,
        ),
        AttemptFailure::AuthenticationRequired { payment_intent_id } => fail(
            error_types::AUTHENTICATION_REQUIRED,
            &format!(
                "{payment_intent_id} needs 3-D Secure, which nobody can complete for an agent; it was cancelled and nothing was charged"
            ),
            false,
        ),
        AttemptFailure::PaymentFailed {
            payment_intent_id,
            status,
        } => fail(
            error_types::PAYMENT_FAILED,
            &format!("{payment_intent_id} is {status}: nothing was charged"),
            false,
        ),
        AttemptFailure::Unsettled {
            payment_intent_id,
            status,
        } => ActivityError::application(
            ApplicationFailure::builder(format!("{payment_intent_id} is still {status}"))
                .type_name(error_types::CHARGE_PROCESSING.to_owned())
                .non_retryable(false)
                .details(ProcessingDetails {
                    payment_intent_id: payment_intent_id.clone(),
                })
                .build(),
        ),
        // Sure to have charged nothing only on the first attempt: a later
        // one is retried, and its earlier attempt's create may yet show.
        AttemptFailure::DuplicateOrder(earlier) => ActivityError::application(
            ApplicationFailure::builder(format!(
                "the order is already paid by {} ({}) of workflow {} (checkout {}): not charged again; refund that one first, or charge another order",
                earlier.payment_intent_id,
                earlier.status,
                earlier.workflow_id.as_deref().unwrap_or("-"),
                earlier.checkout_id.as_deref().unwrap_or("-"),
            ))
            .type_name(error_types::DUPLICATE_ORDER.to_owned())
            .non_retryable(attempt == 1)
            .details(serde_json::json!({
                "attempt": attempt,
                "payment_intent_id": earlier.payment_intent_id,
                "workflow_id": earlier.workflow_id,
                "checkout_id": earlier.checkout_id,
            }))
            .build(),
        ),
        AttemptFailure::OrderUnread(why) => fail(
            error_types::NOT_YET_INDEXED,
            &format!("the order's PaymentIntents could not be read: {why}"),
            true,
        ),
        AttemptFailure::NotYetIndexed => fail(
            error_types::NOT_YET_INDEXED,
            "Stripe's search finds no PaymentIntent of this checkout yet",
            true,
        ),
        AttemptFailure::Call(
            err @ ProxyError::Stripe {
                status,
                error,
                should_retry,
                retry_after,
            },
        ) => {
            let message = err.to_string();
            if *status == 402 || error.kind == "card_error" {
                return ActivityError::application(
                    ApplicationFailure::builder(message)
                        .type_name(error_types::CARD_DECLINED.to_owned())
                        .non_retryable(true)
                        .details(decline_details(error))
                        .build(),
                );
            }
            let transient = matches!(*status, 409 | 429) || *status >= 500;
            if !transient {
                return fail(error_types::STRIPE_INVALID_REQUEST, &message, false);
            }
            ActivityError::application(
                ApplicationFailure::builder(message)
                    .type_name(error_types::STRIPE_UNAVAILABLE.to_owned())
                    .non_retryable(*should_retry == Some(false))
                    .maybe_next_retry_delay(*retry_after)
                    .build(),
            )
        }
        AttemptFailure::Call(err @ ProxyError::Transport { .. }) => {
            fail(error_types::STRIPE_UNAVAILABLE, &err.to_string(), true)
        }
    }
}

/// The details of a `CardDeclined` failure: what a caller needs to tell the customer.
pub fn decline_details(error: &StripeErrorBody) -> serde_json::Value {
    json!({
        "code": error.code,
        "decline_code": error.decline_code,
        "message": error.message,
    })
}

fn fail(type_name: &str, message: &str, retryable: bool) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(message.to_owned())
            .type_name(type_name.to_owned())
            .non_retryable(!retryable)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Type name, retryability and next delay of a classified failure.
    fn verdict(failure: AttemptFailure) -> (String, bool, Option<Duration>) {
        match classify(&failure, 1) {
            ActivityError::Application(app) => (
                app.type_name().unwrap_or_default().to_owned(),
                !app.is_non_retryable(),
                app.next_retry_delay(),
            ),
            other => panic!("not an application failure: {other:?}"),
        }
    }

    fn broker(status: u16, code: &str) -> AttemptFailure {
        AttemptFailure::Call(ProxyError::Broker {
            status,
            code: code.to_owned(),
            message: String::new(),
        })
    }

    fn stripe(
        status: u16,
        kind: &str,
        should_retry: Option<bool>,
        retry_after: Option<u64>,
    ) -> AttemptFailure {
        AttemptFailure::Call(ProxyError::Stripe {
            status,
            error: StripeErrorBody {
                kind: kind.to_owned(),
                decline_code: Some("insufficient_funds".to_owned()),
                ..Default::default()
            },
            should_retry,
            retry_after: retry_after.map(Duration::from_secs),
        })
    }

    fn row(failure: AttemptFailure, type_name: &str, retryable: bool) {
        let (got_type, got_retryable, _) = verdict(failure);
        assert_eq!((got_type.as_str(), got_retryable), (type_name, retryable));
    }

    #[test]
    fn invalid_input_is_final() {
        row(
            AttemptFailure::InvalidInput("amount".into()),
            "InvalidInput",
            false,
        );
    }

    #[test]
    fn cap_exhausted_is_final() {
        row(broker(429, "cap_exhausted"), "SpendCapExceeded", false);
    }

    #[test]
    fn scope_violations_are_final() {
        row(
            broker(403, "endpoint_not_allowed"),
            "KeyScopeViolation",
            false,
        );
        row(
            broker(403, "currency_not_allowed"),
            "KeyScopeViolation",
            false,
        );
        row(
            broker(403, "object_not_allowed"),
            "KeyScopeViolation",
            false,
        );
    }

    #[test]
    fn expired_or_revoked_keys_retry_with_a_fresh_key() {
        row(broker(401, "key_expired"), "KeyUnusable", true);
        row(broker(401, "key_revoked"), "KeyUnusable", true);
    }

    #[test]
    fn broker_upstream_failures_retry() {
        row(
            broker(502, "upstream_unavailable"),
            "StripeUnavailable",
            true,
        );
        row(broker(504, "upstream_timeout"), "StripeUnavailable", true);
        row(broker(422, "invalid_request"), "BrokerRejected", false);
    }

    #[test]
    fn key_issue_failures_split_by_cause() {
        row(
            AttemptFailure::KeyIssue(BrokerError::Unavailable("refused".into())),
            "BrokerUnavailable",
            true,
        );
        let rejected = BrokerError::Rejected {
            status: 422,
            code: "invalid_request".into(),
            message: "label".into(),
        };
        row(AttemptFailure::KeyIssue(rejected), "BrokerRejected", false);
    }

    #[test]
    fn refusals_before_forwarding_carry_the_attempt() {
        // The details themselves are read by the workflow (an outgoing failure's
        // details are not readable before they are encoded): see the e2e tests.
        for failure in [
            broker(429, "cap_exhausted"),
            broker(403, "endpoint_not_allowed"),
            broker(401, "key_expired"),
            broker(422, "invalid_request"),
        ] {
            let (type_name, _, _) = verdict(failure);
            assert!(
                error_types::NOT_SENT.contains(&type_name.as_str()),
                "{type_name}"
            );
        }
        let after = AttemptFailure::AfterCreate {
            payment_intent_id: "pi_1".into(),
            error: Box::new(ProxyError::Broker {
                status: 403,
                code: "object_not_allowed".into(),
                message: String::new(),
            }),
        };
        row(after, "StripeUnavailable", true);
    }

    #[test]
    fn payment_intent_states_map_to_their_types() {
        row(
            AttemptFailure::AuthenticationRequired {
                payment_intent_id: "pi_1".into(),
            },
            "AuthenticationRequired",
            false,
        );
        row(
            AttemptFailure::PaymentFailed {
                payment_intent_id: "pi_1".into(),
                status: "canceled".into(),
            },
            "PaymentFailed",
            false,
        );
        row(
            AttemptFailure::Unsettled {
                payment_intent_id: "pi_1".into(),
                status: "processing".into(),
            },
            "ChargeProcessing",
            true,
        );
        row(AttemptFailure::NotYetIndexed, "NotYetIndexed", true);
    }

    #[test]
    fn card_declines_are_final_with_the_decline_code() {
        row(stripe(402, "card_error", None, None), "CardDeclined", false);
        let body = StripeErrorBody {
            kind: "card_error".into(),
            decline_code: Some("insufficient_funds".into()),
            ..Default::default()
        };
        assert_eq!(decline_details(&body)["decline_code"], "insufficient_funds");
    }

    #[test]
    fn invalid_stripe_requests_are_final() {
        row(
            stripe(400, "invalid_request_error", None, None),
            "StripeInvalidRequest",
            false,
        );
        row(
            stripe(400, "idempotency_error", None, None),
            "StripeInvalidRequest",
            false,
        );
    }

    #[test]
    fn transient_stripe_failures_retry_unless_stripe_says_not_to() {
        for status in [409, 429, 500, 503] {
            row(
                stripe(status, "api_error", None, None),
                "StripeUnavailable",
                true,
            );
        }
        row(
            stripe(500, "api_error", Some(false), None),
            "StripeUnavailable",
            false,
        );
        row(
            AttemptFailure::Call(ProxyError::Transport {
                message: "timed out".into(),
            }),
            "StripeUnavailable",
            true,
        );
        assert_eq!(
            verdict(stripe(429, "rate_limit_error", Some(true), Some(7))).2,
            Some(Duration::from_secs(7))
        );
    }
}
