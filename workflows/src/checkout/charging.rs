//! The checkout's charge step: `charge`, and `reconcile` when its outcome is unknown.
//!
//! Two versions, chosen by [`SAFE_CHARGE_PATCH`]: runs recorded before it
//! replay [`charge_v1`]; every new run takes [`charge`], then [`reconcile`]
//! when the charge's outcome is unknown.
//!
//! These functions run activities in any workflow's context and never touch
//! its state: the checkout (in `mod.rs`) calls them and records its own step,
//! so imports go one way, from the workflow to its steps.

use std::time::SystemTime;

use temporalio_common::error::IncomingError;
use temporalio_sdk::{
    ActivityExecutionError, ApplicationFailure, RetryState, WorkflowCancellationToken,
    WorkflowContext, WorkflowResult, WorkflowTermination,
};

use super::types::{CheckoutInput, CheckoutOutcome};
use crate::contract::{
    CaptureMode, Charge, ChargeInput, NotSentDetails, Reconcile, ReconcileInput, ReconcileOutput,
    error_types,
};
use crate::policy::CheckoutPolicy;

/// Patch: the charge is per checkout (its first-execution run id is in the
/// idempotency key), runs where the workflow's cancellation cannot reach it,
/// and an unknown outcome is reconciled with Stripe.
pub const SAFE_CHARGE_PATCH: &str = "charge-per-checkout-uncancellable-reconciled";

/// The PaymentIntent charged, or the outcome of a checkout that charged nothing.
pub type Charged = Result<String, CheckoutOutcome>;

/// What a failed charge says about the money.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    /// Nothing was charged: Stripe's own answer for the charge's idempotency
    /// key, or a refusal before the first attempt sent anything.
    NothingCharged,
    /// An attempt may have charged: ask Stripe.
    Unknown,
}

/// The failure's type and message, as the activity reported them.
pub(crate) fn describe(err: &ActivityExecutionError) -> (String, String) {
    match err.cause() {
        Some(IncomingError::Application(app)) => (
            app.type_name().unwrap_or("Unknown").to_owned(),
            app.source_error().to_string(),
        ),
        Some(other) => ("Unknown".to_owned(), other.to_string()),
        None => ("Unknown".to_owned(), err.to_string()),
    }
}

/// Judges a charge failure by what its last attempt reported, never by the
/// retry state alone: a broker refusal on a retry says nothing of what an
/// earlier, ambiguous attempt did.
fn judge(err: &ActivityExecutionError) -> Verdict {
    let ActivityExecutionError::Failed(_) = err else {
        return Verdict::Unknown;
    };
    let Some(IncomingError::Application(app)) = err.cause() else {
        return Verdict::Unknown;
    };
    let type_name = app.type_name().unwrap_or_default();
    if error_types::NOTHING_CHARGED.contains(&type_name) {
        return Verdict::NothingCharged;
    }
    let first_attempt = matches!(
        app.details::<NotSentDetails>(),
        Ok(Some(NotSentDetails { attempt: 1 }))
    );
    if error_types::NOT_SENT.contains(&type_name) && first_attempt {
        return Verdict::NothingCharged;
    }
    Verdict::Unknown
}

/// The non-retryable workflow failure of a charge nobody can settle.
fn outcome_unknown(order_id: &str, what: String) -> WorkflowTermination {
    ApplicationFailure::builder(format!(
        "charge for order {order_id} ended with its outcome unknown ({what}); reconcile with Stripe"
    ))
    .type_name(error_types::CHARGE_OUTCOME_UNKNOWN.to_owned())
    .non_retryable(true)
    .details(order_id.to_owned())
    .build()
    .into()
}

/// What the checkout's `charge` activity is given for `input`.
pub fn charge_input(input: &CheckoutInput, checkout_id: Option<String>) -> ChargeInput {
    ChargeInput {
        order_id: input.order_id.clone(),
        amount: input.amount,
        currency: input.currency.clone(),
        payment_method: input.payment_method.clone(),
        customer: input.customer.clone(),
        description: None,
        metadata: Default::default(),
        max_spend_usd: input.max_spend_usd,
        capture: CaptureMode::Automatic,
        schedule_to_close_ms: None,
        checkout_id,
    }
}

/// A charge whose outcome only Stripe can tell: what [`reconcile`] asks
/// Stripe with, and the charge's failure, reported if Stripe holds nothing.
#[derive(Debug)]
pub struct UnknownCharge {
    checkout_id: String,
    error_type: String,
    message: String,
}

/// How [`charge`] ended.
#[derive(Debug)]
pub enum Attempt {
    /// Charged, or charged nothing for certain.
    Settled(Charged),
    /// Maybe charged: run [`reconcile`].
    Unknown(UnknownCharge),
}

/// Runs `charge` out of the workflow's cancellation's reach (a cancel waits
/// for its outcome, and the caller refunds). An outcome it cannot settle is
/// handed back rather than reconciled here, so that the workflow, which owns
/// its status, can report the reconciling step before [`reconcile`] runs.
pub async fn charge<W>(
    ctx: &WorkflowContext<W>,
    input: &CheckoutInput,
    policy: &CheckoutPolicy,
) -> Attempt {
    let checkout_id = ctx.info().first_execution_run_id().to_owned();
    let charge = charge_input(input, Some(checkout_id.clone()));
    let options = policy
        .charge
        .options("charge", Some(WorkflowCancellationToken::new()));
    let err = match ctx.execute_activity(Charge, charge, options).await {
        Ok(charged) => return Attempt::Settled(Ok(charged.payment_intent_id)),
        Err(err) => err,
    };
    let (error_type, message) = describe(&err);
    if judge(&err) == Verdict::NothingCharged {
        return Attempt::Settled(Err(CheckoutOutcome::Failed {
            error_type,
            message,
        }));
    }
    Attempt::Unknown(UnknownCharge {
        checkout_id,
        error_type,
        message,
    })
}

/// Asks Stripe, with `reconcile`, what an [`UnknownCharge`] did. Fails the
/// workflow `ChargeOutcomeUnknown` only when Stripe cannot tell either.
pub async fn reconcile<W>(
    ctx: &WorkflowContext<W>,
    input: &CheckoutInput,
    policy: &CheckoutPolicy,
    unknown: UnknownCharge,
    began: Option<SystemTime>,
) -> WorkflowResult<Charged> {
    let UnknownCharge {
        checkout_id,
        error_type,
        message,
    } = unknown;
    let reconcile = reconcile_input(input, checkout_id, policy, began);
    let options = policy
        .reconcile
        .options("reconcile", Some(WorkflowCancellationToken::new()));
    match ctx.execute_activity(Reconcile, reconcile, options).await {
        Ok(ReconcileOutput::Charged {
            payment_intent_id,
            refund_id: Some(refund_id),
            ..
        }) => Ok(Err(refunded_before(payment_intent_id, refund_id))),
        Ok(ReconcileOutput::Charged {
            payment_intent_id, ..
        }) => Ok(Ok(payment_intent_id)),
        Ok(ReconcileOutput::NotCharged { found }) => Ok(Err(CheckoutOutcome::Failed {
            error_type,
            message: format!(
                "{message} (Stripe holds no charge for this checkout: {} PaymentIntent(s) found, none charged)",
                found.len()
            ),
        })),
        Err(reconcile_err) => {
            let (reconcile_type, reconcile_message) = describe(&reconcile_err);
            Err(outcome_unknown(
                &input.order_id,
                format!(
                    "charge: {error_type}: {message}; reconcile: {reconcile_type}: {reconcile_message}"
                ),
            ))
        }
    }
}

/// `at` as Unix milliseconds, as the activities' inputs carry times.
pub fn unix_ms(at: Option<SystemTime>) -> Option<u64> {
    at.and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
        .and_then(|at| u64::try_from(at.as_millis()).ok())
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
    let checkout_id = ctx.info().first_execution_run_id().to_owned();
    let lookup = reconcile_input(input, checkout_id, policy, began);
    let options = policy
        .reconcile
        .options("prior-charge", Some(WorkflowCancellationToken::new()));
    match ctx.execute_activity(Reconcile, lookup, options).await {
        Ok(ReconcileOutput::NotCharged { .. }) => Ok(None),
        Ok(ReconcileOutput::Charged {
            payment_intent_id,
            refund_id: Some(refund_id),
            ..
        }) => Ok(Some(Err(refunded_before(payment_intent_id, refund_id)))),
        Ok(ReconcileOutput::Charged {
            payment_intent_id, ..
        }) => Ok(Some(Ok(payment_intent_id))),
        Err(err) => {
            let (error_type, message) = describe(&err);
            Err(outcome_unknown(
                &input.order_id,
                format!(
                    "an earlier run may have charged; looking it up failed: {error_type}: {message}"
                ),
            ))
        }
    }
}

/// The charge as it ran before [`SAFE_CHARGE_PATCH`], for runs recorded
/// then: `Ok(Err(outcome))` is a charge that failed for good; an outcome
/// unknown fails the workflow so that an operator reconciles it.
pub async fn charge_v1<W>(
    ctx: &WorkflowContext<W>,
    input: &CheckoutInput,
    policy: &CheckoutPolicy,
) -> WorkflowResult<Charged> {
    let charge = charge_input(input, None);
    match ctx
        .execute_activity(Charge, charge, policy.charge.options("charge", None))
        .await
    {
        Ok(charged) => Ok(Ok(charged.payment_intent_id)),
        Err(ActivityExecutionError::Failed(failure))
            if failure.retry_state() == RetryState::NonRetryableFailure =>
        {
            let (error_type, message) = match failure.cause() {
                Some(IncomingError::Application(app)) => (
                    app.type_name().unwrap_or("Unknown").to_owned(),
                    app.source_error().to_string(),
                ),
                _ => ("Unknown".to_owned(), failure.to_string()),
            };
            Ok(Err(CheckoutOutcome::Failed {
                error_type,
                message,
            }))
        }
        Err(ActivityExecutionError::Failed(failure)) => Err(outcome_unknown(
            &input.order_id,
            format!("{:?}", failure.retry_state()),
        )),
        Err(ActivityExecutionError::Cancelled(_)) => Err(WorkflowTermination::cancelled()),
        Err(err) => Err(err.into()),
    }
}
