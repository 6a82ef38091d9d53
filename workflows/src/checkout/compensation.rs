//! The checkout's compensation: `refund` in rounds, each with the refund's
//! own retry policy, until Stripe answers. An outage of Stripe, the broker
//! or the worker, however long, only adds rounds (with a durable timer
//! between them, at most `compensation_backoff_cap` apart); the checkout
//! ends holding money only when Stripe refuses or fails the refund.
//!
//! Like `charging`, this never touches the workflow's state: it tells the
//! checkout (in `mod.rs`) its [`Progress`], and the checkout records it.

use std::time::{Duration, SystemTime};

use temporalio_sdk::{
    ActivityExecutionError, ApplicationFailure, TimerOptions, WorkflowCancellationToken,
    WorkflowContext, WorkflowResult, WorkflowTermination,
};

use super::charging::describe;
use super::reconciling;
use super::types::{CheckoutInput, CheckoutOutcome};
use crate::contract::{Refund, RefundInput, RefundOutput, error_types};
use crate::policy::CheckoutPolicy;

/// What the compensation tells the checkout as it goes, for `status`.
#[derive(Debug)]
pub enum Progress {
    /// Round `n` (1-based) begins.
    Round(u32),
    /// A round ended without Stripe's answer; another follows.
    Retrying(String),
    /// Stripe made this refund, but its money is still on its way
    /// (`pending`): followed until Stripe settles it.
    Pending(String),
    /// Refunded, by this refund.
    Refunded(String),
    /// Stripe refused or failed the refund: the money is kept.
    Failed {
        /// The refund, when Stripe made one.
        refund_id: Option<String>,
        /// Why.
        why: String,
    },
}

/// Refunds `payment_intent_id` in rounds until Stripe answers, telling
/// `report` (run on the workflow's state) how it goes: `Compensated`, or
/// `CompensationFailed` when Stripe refuses or fails the refund or the run's
/// history is full.
pub async fn refund_until_answered<W>(
    ctx: &mut WorkflowContext<W>,
    input: &CheckoutInput,
    policy: &CheckoutPolicy,
    payment_intent_id: String,
    reason: String,
    began: Option<SystemTime>,
    report: impl Fn(&mut W, Progress),
) -> WorkflowResult<CheckoutOutcome> {
    let since = ctx.workflow_time();
    // A token of its own: a cancelled workflow must still run its compensation.
    let options = policy
        .refund
        .options("refund", Some(WorkflowCancellationToken::new()));
    let mut round = 0;
    let failed = |ctx: &mut WorkflowContext<W>, refund_id: Option<String>, why: String| {
        let failure = self::failed(&payment_intent_id, &why);
        ctx.state_mut(|s| report(s, Progress::Failed { refund_id, why }));
        failure
    };
    let refund_id = loop {
        round += 1;
        ctx.state_mut(|s| report(s, Progress::Round(round)));
        let refund = refund_input(input, &payment_intent_id, since);
        let result = ctx.execute_activity(Refund, refund, options.clone()).await;
        match judge(result) {
            Round::Refunded(refunded)
                if on_its_way(&refunded) && ctx.patched(FOLLOW_REFUND_PATCH) =>
            {
                let refund_id = refunded.refund_id.clone();
                ctx.state_mut(|s| report(s, Progress::Pending(refund_id)));
                match follow(ctx, input, policy, &payment_intent_id, refunded, since).await {
                    Ok(refund_id) => break refund_id,
                    Err((refund_id, why)) => return Err(failed(ctx, Some(refund_id), why)),
                }
            }
            Round::Refunded(refunded) => break refunded.refund_id,
            // Its refund id, from the charge's refunds at Stripe.
            Round::AlreadyRefunded(why) => {
                match reconciling::prior_refunded(ctx, input, policy, began, &payment_intent_id)
                    .await
                {
                    Ok(Some(Err(CheckoutOutcome::Compensated { refund_id, .. }))) => {
                        break refund_id;
                    }
                    _ => return Err(failed(ctx, None, why)),
                }
            }
            Round::Refused { refund_id, why } => return Err(failed(ctx, refund_id, why)),
            // Temporal would end the run at 51,200 events with the money
            // held and no word: end it here, for an operator.
            Round::Retry(why) if ctx.history_length() > MOST_HISTORY => {
                let why = format!(
                    "still no answer after {round} rounds ({why}); the run's history is full"
                );
                return Err(failed(ctx, None, why));
            }
            Round::Retry(why) => {
                if !ctx.is_replaying() {
                    tracing::warn!(workflow_id = %ctx.workflow_id(), round, %why, "refund round failed; retrying");
                }
                ctx.state_mut(|s| report(s, Progress::Retrying(why)));
                // Its own token: a cancel must not cut the wait short.
                let wait = TimerOptions::builder(wait_after(round, policy))
                    .cancellation_token(WorkflowCancellationToken::new())
                    .build();
                ctx.timer(wait).await;
            }
        }
    };
    ctx.state_mut(|s| report(s, Progress::Refunded(refund_id.clone())));
    Ok(CheckoutOutcome::Compensated {
        payment_intent_id,
        refund_id,
        reason,
    })
}

/// Patch: a refund Stripe answers `pending` (a bank debit's money goes
/// back by a transfer, in days) is followed until it succeeds; one that
/// fails or is canceled ends `CompensationFailed` with its id and reason.
pub const FOLLOW_REFUND_PATCH: &str = "pending-refund-followed";

/// Whether `refund`'s money is still on its way: `pending`,
/// `requires_action`, or any status Stripe may add that is not an end.
fn on_its_way(refund: &RefundOutput) -> bool {
    !matches!(refund.status.as_str(), "succeeded" | "failed" | "canceled")
}

/// Follows `refund`, made for `payment_intent_id` but still on its way:
/// `refund` reads it (the same activity id, so its key reaches only the
/// refunds its label made), a durable timer of `settle_every` between
/// reads, until Stripe says `succeeded` (its id) or `failed`/`canceled`
/// (its id and why). Still on its way after `settle_within`, it is handed to
/// an operator like a failed one. A worker whose broker role cannot read
/// refunds (made before this) takes it as Stripe first answered, as before.
async fn follow<W>(
    ctx: &mut WorkflowContext<W>,
    input: &CheckoutInput,
    policy: &CheckoutPolicy,
    payment_intent_id: &str,
    mut refund: RefundOutput,
    since: Option<SystemTime>,
) -> Result<String, (String, String)> {
    let began = ctx.workflow_time();
    let options = policy
        .refund
        .options("refund", Some(WorkflowCancellationToken::new()));
    loop {
        let id = refund.refund_id.clone();
        match refund.status.as_str() {
            "succeeded" => return Ok(id),
            "failed" | "canceled" => {
                let reason = refund
                    .failure_reason
                    .as_deref()
                    .unwrap_or("no reason given");
                return Err((
                    id.clone(),
                    format!("refund {id} is {} ({reason})", refund.status),
                ));
            }
            _ => {}
        }
        let waited = began
            .zip(ctx.workflow_time())
            .and_then(|(began, now)| now.duration_since(began).ok())
            .unwrap_or_default();
        if waited >= policy.settle_within {
            let why = format!(
                "refund {id} is still {} after {} s",
                refund.status,
                policy.settle_within.as_secs()
            );
            return Err((id, why));
        }
        // Its own token: a cancel must not cut the wait short.
        let wait = TimerOptions::builder(policy.settle_every)
            .cancellation_token(WorkflowCancellationToken::new())
            .build();
        ctx.timer(wait).await;
        let mut read = refund_input(input, payment_intent_id, since);
        read.follow_refund_id = Some(id.clone());
        match ctx.execute_activity(Refund, read, options.clone()).await {
            Ok(now) => refund = now,
            Err(err) => {
                let (error_type, message) = describe(&err);
                if error_type == error_types::INVALID_INPUT {
                    if !ctx.is_replaying() {
                        tracing::warn!(workflow_id = %ctx.workflow_id(), refund_id = %id, %message, "a pending refund cannot be followed: taken as Stripe answered");
                    }
                    return Ok(id);
                }
                if !ctx.is_replaying() {
                    tracing::warn!(workflow_id = %ctx.workflow_id(), refund_id = %id, %error_type, %message, "reading a pending refund failed; reading again later");
                }
            }
        }
    }
}

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
        follow_refund_id: None,
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
