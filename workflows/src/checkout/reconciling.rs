//! The checkout's reads of Stripe: `reconcile` when a charge's outcome is
//! unknown, the lookup of an earlier run's charge after a reset
//! ([`prior`]), and the settling of a payment still `processing`
//! ([`settle`]).
//!
//! Like `charging`, these run activities in any workflow's context and never
//! touch its state: the checkout (in `mod.rs`) records its own step.

use std::time::SystemTime;

use temporalio_sdk::{
    ActivityExecutionError, ActivityOptions, TimerOptions, WorkflowCancellationToken,
    WorkflowContext, WorkflowResult, WorkflowTermination,
};

use super::charging::{
    Charged, UnknownCharge, describe, outcome_unknown, processing_intent, unix_ms,
};
use super::types::{CheckoutInput, CheckoutOutcome};
use crate::contract::{Reconcile, ReconcileInput, ReconcileOutput, error_types};
use crate::policy::CheckoutPolicy;

/// What [`reconcile`] found.
#[derive(Debug)]
pub enum Reconciled {
    /// Charged, or charged nothing for certain.
    Settled(Charged),
    /// A payment still `processing`: [`settle`] follows it.
    Processing(UnknownCharge),
}

/// Asks Stripe, with `reconcile`, what an [`UnknownCharge`] did. Fails the
/// workflow `ChargeOutcomeUnknown` only when Stripe cannot tell either.
/// `settles` (a run under the settle patch): a payment Stripe reports
/// still `processing` is handed back at once, for [`settle`] to follow,
/// instead of retried within the reconcile's budget.
pub async fn reconcile<W>(
    ctx: &WorkflowContext<W>,
    input: &CheckoutInput,
    policy: &CheckoutPolicy,
    unknown: UnknownCharge,
    began: Option<SystemTime>,
    settles: bool,
) -> WorkflowResult<Reconciled> {
    let UnknownCharge {
        checkout_id,
        error_type,
        message,
        ..
    } = unknown;
    let lookup = reconcile_input(input, checkout_id.clone(), policy, began);
    let options = read_options(policy, "reconcile", settles);
    match ctx.execute_activity(Reconcile, lookup, options).await {
        Ok(found) => Ok(Reconciled::Settled(charged_by(
            found,
            &error_type,
            &message,
        ))),
        Err(reconcile_err) => {
            let (reconcile_type, reconcile_message) = describe(&reconcile_err);
            if settles && reconcile_type == error_types::CHARGE_PROCESSING {
                return Ok(Reconciled::Processing(UnknownCharge {
                    checkout_id,
                    error_type: reconcile_type,
                    message: reconcile_message,
                    processing: processing_intent(&reconcile_err),
                }));
            }
            Err(outcome_unknown(
                &input.order_id,
                format!(
                    "charge: {error_type}: {message}; reconcile: {reconcile_type}: {reconcile_message}"
                ),
            ))
        }
    }
}

/// The options of a `reconcile` run as `activity_id`; `settles`: a payment
/// still `processing` is an answer, not a failure to retry.
fn read_options(policy: &CheckoutPolicy, activity_id: &str, settles: bool) -> ActivityOptions {
    let mut read = policy.reconcile.clone();
    if settles {
        read.retry
            .non_retryable_error_types
            .push(error_types::CHARGE_PROCESSING.to_owned());
    }
    read.options(activity_id, Some(WorkflowCancellationToken::new()))
}

/// What a `reconcile` answer says of the charge whose failure was
/// `error_type: message`.
fn charged_by(found: ReconcileOutput, error_type: &str, message: &str) -> Charged {
    match found {
        ReconcileOutput::Charged {
            payment_intent_id,
            refund_id: Some(refund_id),
            ..
        } => Err(refunded_before(payment_intent_id, refund_id)),
        ReconcileOutput::Charged {
            payment_intent_id, ..
        } => Ok(payment_intent_id),
        ReconcileOutput::NotCharged { found } => Err(CheckoutOutcome::Failed {
            error_type: error_type.to_owned(),
            message: format!(
                "{message} (Stripe holds no charge for this checkout: {} PaymentIntent(s) found, none charged)",
                found.len()
            ),
        }),
    }
}

/// Follows a payment still `processing` after the charge's own budget (a
/// bank debit settles in days): `reconcile` reads it, a durable timer of
/// `settle_every` between reads, until Stripe settles it — charged (or
/// refunded since), or failed with nothing charged. Still `processing`
/// after `settle_within`, the workflow fails `ChargeOutcomeUnknown` for an
/// operator. A cancel does not cut it short: a `processing` payment cannot
/// be cancelled, and the caller refunds one that settles.
pub async fn settle<W>(
    ctx: &WorkflowContext<W>,
    input: &CheckoutInput,
    policy: &CheckoutPolicy,
    unknown: UnknownCharge,
    began: Option<SystemTime>,
) -> WorkflowResult<Charged> {
    let since = ctx.workflow_time();
    let options = read_options(policy, "settle", true);
    let mut last = unknown.message.clone();
    let mut reads: u32 = 0;
    loop {
        let waited = since
            .zip(ctx.workflow_time())
            .and_then(|(since, now)| now.duration_since(since).ok())
            .unwrap_or_default();
        if waited >= policy.settle_within {
            return Err(outcome_unknown(
                &input.order_id,
                format!(
                    "the payment was still processing after {} s ({reads} reads; last: {last})",
                    policy.settle_within.as_secs()
                ),
            ));
        }
        // Its own token: a cancel must not cut the wait short.
        let wait = TimerOptions::builder(policy.settle_every)
            .cancellation_token(WorkflowCancellationToken::new())
            .build();
        ctx.timer(wait).await;
        reads += 1;
        let mut lookup = reconcile_input(input, unknown.checkout_id.clone(), policy, began);
        // Read by its id when the charge named it: no list to page through.
        lookup.payment_intent_id = unknown.processing.clone();
        match ctx
            .execute_activity(Reconcile, lookup, options.clone())
            .await
        {
            Ok(found) => {
                return Ok(charged_by(
                    found,
                    error_types::PAYMENT_FAILED,
                    "the payment did not settle",
                ));
            }
            Err(err) => {
                let (error_type, message) = describe(&err);
                if !ctx.is_replaying() && error_type != error_types::CHARGE_PROCESSING {
                    tracing::warn!(workflow_id = %ctx.workflow_id(), reads, %error_type, %message, "reading a settling payment failed; reading again later");
                }
                last = format!("{error_type}: {message}");
            }
        }
    }
}

/// What `reconcile` is given to find `checkout_id`'s charge, the checkout
/// having begun at `began` (its list read needs it).
fn reconcile_input(
    input: &CheckoutInput,
    checkout_id: String,
    policy: &CheckoutPolicy,
    began: Option<SystemTime>,
) -> ReconcileInput {
    ReconcileInput {
        order_id: input.order_id.clone(),
        checkout_id,
        search_window_ms: u64::try_from(policy.search_window.as_millis()).unwrap_or(u64::MAX),
        schedule_to_close_ms: None,
        checkout_began_ms: unix_ms(began),
        payment_intent_id: None,
    }
}

/// The outcome of a checkout whose charge was refunded before this run
/// could take it as paid (a reset of a compensated checkout, say).
fn refunded_before(payment_intent_id: String, refund_id: String) -> CheckoutOutcome {
    CheckoutOutcome::Compensated {
        payment_intent_id,
        refund_id,
        reason: "refunded before this run of the checkout".to_owned(),
    }
}

/// Looks up, before a charge, one an earlier run of the same checkout made
/// (a reset, a retry or continue-as-new of the workflow: the run is not the
/// first of its chain), with `reconcile`'s read of Stripe's list — never
/// Stripe's 24 h idempotency window, which a late reset outlives. `None`:
/// nothing charged yet, charge. `Some(Ok(id))`: adopt that charge.
/// `Some(Err(outcome))`: it was refunded since; end with `outcome`. Fails
/// `ChargeOutcomeUnknown` when Stripe cannot tell: never a second charge.
pub async fn prior<W>(
    ctx: &WorkflowContext<W>,
    input: &CheckoutInput,
    policy: &CheckoutPolicy,
    began: Option<SystemTime>,
) -> WorkflowResult<Option<Charged>> {
    prior_naming(ctx, input, policy, began, None).await
}

/// [`prior`], for a compensation that Stripe told `payment_intent_id` was
/// refunded already: that PaymentIntent is named to `reconcile`, which
/// answers from its refund when the lookup cannot tell (a busy account: a
/// helper's review found "refunded" was otherwise never answered there,
/// and the compensation ended `CompensationFailed` with nothing held).
pub async fn prior_refunded<W>(
    ctx: &WorkflowContext<W>,
    input: &CheckoutInput,
    policy: &CheckoutPolicy,
    began: Option<SystemTime>,
    payment_intent_id: &str,
) -> WorkflowResult<Option<Charged>> {
    let named = Some(payment_intent_id.to_owned());
    prior_naming(ctx, input, policy, began, named).await
}

/// [`prior`], naming to `reconcile` a PaymentIntent of the checkout the run knows.
async fn prior_naming<W>(
    ctx: &WorkflowContext<W>,
    input: &CheckoutInput,
    policy: &CheckoutPolicy,
    began: Option<SystemTime>,
    named: Option<String>,
) -> WorkflowResult<Option<Charged>> {
    let checkout_id = ctx.info().first_execution_run_id().to_owned();
    look_up(ctx, input, policy, checkout_id, began, false, named)
        .await
        .map_err(|err| prior_unknown(input, &err))
}

/// [`prior`], for a run about to charge under the settle patch: an earlier
/// run's payment still `processing` is handed back (`Ok(Err(..))`) for
/// [`settle`] to follow, instead of failing the run while it settles.
pub async fn prior_or_processing<W>(
    ctx: &WorkflowContext<W>,
    input: &CheckoutInput,
    policy: &CheckoutPolicy,
    began: Option<SystemTime>,
) -> WorkflowResult<Result<Option<Charged>, UnknownCharge>> {
    let checkout_id = ctx.info().first_execution_run_id().to_owned();
    match look_up(ctx, input, policy, checkout_id.clone(), began, true, None).await {
        Ok(found) => Ok(Ok(found)),
        Err(err) => {
            let (error_type, message) = describe(&err);
            if error_type == error_types::CHARGE_PROCESSING {
                return Ok(Err(UnknownCharge {
                    checkout_id,
                    error_type,
                    message,
                    processing: processing_intent(&err),
                }));
            }
            Err(prior_unknown(input, &err))
        }
    }
}

/// The `prior-charge` lookup itself: `reconcile`'s answer, `None` for
/// "nothing charged"; `named`, a PaymentIntent of the checkout the caller knows.
async fn look_up<W>(
    ctx: &WorkflowContext<W>,
    input: &CheckoutInput,
    policy: &CheckoutPolicy,
    checkout_id: String,
    began: Option<SystemTime>,
    settles: bool,
    named: Option<String>,
) -> Result<Option<Charged>, ActivityExecutionError> {
    let mut lookup = reconcile_input(input, checkout_id, policy, began);
    lookup.payment_intent_id = named;
    let options = read_options(policy, "prior-charge", settles);
    match ctx.execute_activity(Reconcile, lookup, options).await? {
        ReconcileOutput::NotCharged { .. } => Ok(None),
        found => Ok(Some(charged_by(found, "", ""))),
    }
}

/// The failure of a run whose lookup of an earlier run's charge failed.
fn prior_unknown(input: &CheckoutInput, err: &ActivityExecutionError) -> WorkflowTermination {
    let (error_type, message) = describe(err);
    outcome_unknown(
        &input.order_id,
        format!("an earlier run may have charged; looking it up failed: {error_type}: {message}"),
    )
}
