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
    ActivityCancellationType, ActivityExecutionError, ActivityOptions, ApplicationFailure,
    RetryState, TimerOptions, WorkflowCancellationToken, WorkflowContext, WorkflowResult,
    WorkflowTermination,
};

use super::types::{CheckoutInput, CheckoutOutcome};
use crate::contract::{
    CaptureMode, Charge, ChargeInput, NotSentDetails, ProcessingDetails, Reconcile, ReconcileInput,
    ReconcileOutput, error_types,
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
fn processing_intent(err: &ActivityExecutionError) -> Option<String> {
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
        order_paid_since_ms: None,
    }
}

/// A charge whose outcome only Stripe can tell: what [`reconcile`] asks
/// Stripe with, and the charge's failure, reported if Stripe holds nothing.
#[derive(Debug)]
pub struct UnknownCharge {
    checkout_id: String,
    error_type: String,
    message: String,
    /// The PaymentIntent a `ChargeProcessing` failure named.
    processing: Option<String>,
}

impl UnknownCharge {
    /// Whether the charge's last word was a payment still `processing`.
    pub fn processing(&self) -> bool {
        self.error_type == error_types::CHARGE_PROCESSING
    }
}

/// What [`reconcile`] found.
#[derive(Debug)]
pub enum Reconciled {
    /// Charged, or charged nothing for certain.
    Settled(Charged),
    /// A payment still `processing`: [`settle`] follows it.
    Processing(UnknownCharge),
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
    let checkout_id = ctx.info().first_execution_run_id().to_owned();
    look_up(ctx, input, policy, checkout_id, began, false)
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
    match look_up(ctx, input, policy, checkout_id.clone(), began, true).await {
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
/// "nothing charged".
async fn look_up<W>(
    ctx: &WorkflowContext<W>,
    input: &CheckoutInput,
    policy: &CheckoutPolicy,
    checkout_id: String,
    began: Option<SystemTime>,
    settles: bool,
) -> Result<Option<Charged>, ActivityExecutionError> {
    let lookup = reconcile_input(input, checkout_id, policy, began);
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
