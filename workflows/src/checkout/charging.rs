//! The checkout's charge step: `charge`; what Stripe is asked when its
//! outcome is unknown is in `reconciling`.
//!
//! Two versions, chosen by [`SAFE_CHARGE_PATCH`]: runs recorded before it
//! replay [`charge_v1`]; every new run takes [`charge`], then [`reconcile`](super::reconciling::reconcile)
//! when the charge's outcome is unknown.
//!
//! These functions run activities in any workflow's context and never touch
//! its state: the checkout (in `mod.rs`) calls them and records its own step,
//! so imports go one way, from the workflow to its steps.

use std::time::SystemTime;

use temporalio_common::error::IncomingError;
use temporalio_sdk::{
    ActivityCancellationType, ActivityExecutionError, ApplicationFailure, RetryState,
    WorkflowCancellationToken, WorkflowContext, WorkflowResult, WorkflowTermination,
};

use super::types::{CheckoutInput, CheckoutOutcome};
use crate::contract::{
    CaptureMode, Charge, ChargeInput, NotSentDetails, ProcessingDetails, error_types,
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

/// The PaymentIntent a `ChargeProcessing` failure names, if it names one.
pub(super) fn processing_intent(err: &ActivityExecutionError) -> Option<String> {
    match err.cause() {
        Some(IncomingError::Application(app)) => app
            .details::<ProcessingDetails>()
            .ok()
            .flatten()
            .map(|details| details.payment_intent_id),
        _ => None,
    }
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
pub(super) fn outcome_unknown(order_id: &str, what: String) -> WorkflowTermination {
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
        order_paid_since_ms: None,
    }
}

/// A charge whose outcome only Stripe can tell: what [`reconcile`](super::reconciling::reconcile) asks
/// Stripe with, and the charge's failure, reported if Stripe holds nothing.
#[derive(Debug)]
pub struct UnknownCharge {
    pub(super) checkout_id: String,
    pub(super) error_type: String,
    pub(super) message: String,
    /// The PaymentIntent a `ChargeProcessing` failure named.
    pub(super) processing: Option<String>,
}

impl UnknownCharge {
    /// Whether the charge's last word was a payment still `processing`.
    pub fn processing(&self) -> bool {
        self.error_type == error_types::CHARGE_PROCESSING
    }
}

/// How [`charge`] ended.
#[derive(Debug)]
pub enum Attempt {
    /// Charged, or charged nothing for certain.
    Settled(Charged),
    /// Maybe charged: run [`reconcile`](super::reconciling::reconcile).
    Unknown(UnknownCharge),
}

/// Runs `charge` out of the workflow's cancellation's reach (a cancel waits
/// for its outcome, and the caller refunds). An outcome it cannot settle is
/// handed back rather than reconciled here, so that the workflow, which owns
/// its status, can report the reconciling step before [`reconcile`](super::reconciling::reconcile) runs.
/// `order_paid_since`: the charge first refuses an order another checkout
/// already paid (`DuplicateOrder`), listing the order's PaymentIntents
/// created since then. `cancellable`: a workflow cancel reaches the charge
/// while no attempt of it runs (scheduled, or waiting to retry), and Temporal
/// cancels it there and then; an attempt already running is waited for, to
/// its outcome, as before. Either way the caller learns what was charged (a
/// cancelled charge is reconciled: an earlier attempt may have charged).
pub async fn charge<W>(
    ctx: &WorkflowContext<W>,
    input: &CheckoutInput,
    policy: &CheckoutPolicy,
    order_paid_since: Option<SystemTime>,
    cancellable: bool,
) -> Attempt {
    let checkout_id = ctx.info().first_execution_run_id().to_owned();
    let mut charge = charge_input(input, Some(checkout_id.clone()));
    charge.order_paid_since_ms = unix_ms(order_paid_since);
    let options = if cancellable {
        let mut options = policy.charge.options("charge", None);
        options.cancellation_type = ActivityCancellationType::WaitCancellationCompleted;
        options
    } else {
        policy
            .charge
            .options("charge", Some(WorkflowCancellationToken::new()))
    };
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
        processing: processing_intent(&err),
    })
}

/// `at` as Unix milliseconds, as the activities' inputs carry times.
pub fn unix_ms(at: Option<SystemTime>) -> Option<u64> {
    at.and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
        .and_then(|at| u64::try_from(at.as_millis()).ok())
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
