//! The checkout's compensation: `refund` in rounds, each with the refund's
//! own retry policy, until Stripe answers. An outage of Stripe, the broker
//! or the worker, however long, only adds rounds (with a durable timer
//! between them, at most `compensation_backoff_cap` apart); the checkout
//! ends holding money only when Stripe refuses or fails the refund.
//!
//! Like `charging`, these helpers never touch the workflow's state: the
//! checkout (in `mod.rs`) runs the loop and records its step.

use std::time::{Duration, SystemTime};

use temporalio_sdk::{ActivityExecutionError, ApplicationFailure, WorkflowTermination};

use super::charging::describe;
use super::types::CheckoutInput;
use crate::contract::{RefundInput, RefundOutput, error_types};
use crate::policy::CheckoutPolicy;

/// History events past which the compensation stops adding rounds and
/// fails for an operator, well before Temporal ends the run (51,200): at
/// the default 5-minute cap, weeks of outage.
pub const MOST_HISTORY: u32 = 40_000;

/// What one round of `refund` says about the money.
#[derive(Debug)]
pub enum Round {
    /// Refunded (or on its way: Stripe accepted the refund).
    Refunded(RefundOutput),
    /// Stripe refused the refund, or it failed or was canceled: the
    /// checkout keeps the money and an operator must act.
    Refused {
        /// The refund, when Stripe made one.
        refund_id: Option<String>,
        /// Stripe's answer.
        why: String,
    },
    /// Stripe says the charge was already refunded: a round whose answer
    /// was lost refunded it, and the next one came after Stripe's 24 h
    /// idempotency window. The refund is looked up.
    AlreadyRefunded(String),
    /// No answer from Stripe (an outage of it, the broker or the worker, or
    /// an answer that is not about the refund: 401, 403, 404 from a key
    /// being rotated or a proxy): another round, after a wait.
    Retry(String),
}

/// Judges one round's result: only Stripe's own refusal of the refund (a
/// 400: a disputed charge, say), or a refund it failed or canceled, ends
/// the compensation without the refund.
pub fn judge(result: Result<RefundOutput, ActivityExecutionError>) -> Round {
    match result {
        Ok(refund) if matches!(refund.status.as_str(), "failed" | "canceled") => Round::Refused {
            why: format!("refund {} is {}", refund.refund_id, refund.status),
            refund_id: Some(refund.refund_id),
        },
        Ok(refund) => Round::Refunded(refund),
        Err(err) => {
            let (error_type, message) = describe(&err);
            let why = format!("{error_type}: {message}");
            let refused_by_stripe = error_type == error_types::STRIPE_INVALID_REQUEST
                && message.contains("stripe answered 400");
            if refused_by_stripe && message.contains("already been refunded") {
                Round::AlreadyRefunded(why)
            } else if refused_by_stripe {
                Round::Refused {
                    refund_id: None,
                    why,
                }
            } else {
                Round::Retry(why)
            }
        }
    }
}

/// The wait after round `round` (1-based) failed: the refund's initial
/// retry interval, doubled each round, capped at `compensation_backoff_cap`.
pub fn wait_after(round: u32, policy: &CheckoutPolicy) -> Duration {
    let doublings = round.saturating_sub(1).min(20);
    let grown = policy
        .refund
        .retry
        .initial_interval
        .saturating_mul(1 << doublings);
    grown.min(policy.compensation_backoff_cap)
}

/// What each round's `refund` is given: the whole remaining amount of
/// `payment_intent_id`, under the same idempotency key every round.
pub fn refund_input(
    input: &CheckoutInput,
    payment_intent_id: &str,
    since: Option<SystemTime>,
) -> RefundInput {
    RefundInput {
        order_id: input.order_id.clone(),
        payment_intent_id: payment_intent_id.to_owned(),
        amount: None,
        reason: Some("requested_by_customer".to_owned()),
        schedule_to_close_ms: None,
        compensating_since_ms: super::charging::unix_ms(since),
    }
}

/// The non-retryable failure of a compensation Stripe refused: the money
/// is kept, and an operator must act (the README says how).
pub fn failed(payment_intent_id: &str, why: &str) -> WorkflowTermination {
    ApplicationFailure::builder(format!(
        "refund of {payment_intent_id} refused by Stripe ({why}); an operator must refund it by hand"
    ))
    .type_name(error_types::COMPENSATION_FAILED.to_owned())
    .non_retryable(true)
    .details(payment_intent_id.to_owned())
    .build()
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_from_the_refunds_initial_interval_up_to_the_cap() {
        let mut policy = CheckoutPolicy::default();
        policy.refund.retry.initial_interval = Duration::from_secs(1);
        policy.compensation_backoff_cap = Duration::from_secs(300);
        let waits: Vec<u64> = [1, 2, 3, 9, 10, 1000]
            .map(|round| wait_after(round, &policy).as_secs())
            .to_vec();
        assert_eq!(waits, [1, 2, 4, 256, 300, 300]);
    }
}
