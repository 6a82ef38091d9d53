//! The checkout saga: charge, wait for fulfilment, refund when it fails.
//!
//! Changes to what the workflow does ship behind the SDK's patching API
//! ([`WorkflowContext::patched`]): a run recorded before a change replays
//! along the old path, so a deploy never breaks a checkout in flight.

use temporalio_common::search_attributes::SearchAttributeKey;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::select;
use temporalio_sdk::{
    ApplicationFailure, SyncWorkflowContext, TimerResult, WorkflowCancellationToken,
    WorkflowContext, WorkflowContextView, WorkflowResult, WorkflowTermination,
};

use crate::contract::{Refund, RefundInput, error_types};
use crate::fulfilment::{Fulfilment, FulfilmentRequest};

pub mod charging;
pub mod compensation;
pub mod reconciling;
mod steps;
mod taking;
pub mod types;

use charging::Attempt;

pub use types::{CheckoutInput, CheckoutOutcome, CheckoutRequest, CheckoutStatus, CheckoutStep};

/// Patch: the checkout sets its `OrderId` search attribute first.
pub const ORDER_ID_PATCH: &str = "order-id-search-attribute";

/// Patch: the checkout checks its own input before anything else, takes a
/// fulfilment only once charged, charges nothing when cancelled before
/// the charge, reports every ending in `status`, and retries its
/// compensation until Stripe answers ([`compensation`]).
pub const STEADY_CHECKOUT_PATCH: &str = "checked-input-fulfil-once-charged-unbounded-refund";

/// Patch: a payment still `processing` after the charge's budget (a bank
/// debit) is followed with durable timers until Stripe settles it
/// ([`reconciling::settle`]), instead of failing `ChargeOutcomeUnknown`.
pub const SETTLE_PATCH: &str = "processing-settles-durably";

/// Patch: the charge refuses an order another checkout already holds
/// money for (`DuplicateOrder`), whoever started this one.
pub const ONE_PER_ORDER_PATCH: &str = "one-paid-checkout-per-order";

/// Patch: a cancel reaches the charge while no attempt of it runs
/// (scheduled, or waiting to retry): nothing is charged, and the checkout
/// ends cancelled once `reconcile` confirms it.
pub const CANCEL_UNTIL_STARTED_PATCH: &str = "charge-cancellable-until-started";

/// Patch: a checkout started on a cron schedule fails at once (`InvalidInput`).
pub const CRON_REFUSED_PATCH: &str = "cron-schedule-refused";

/// Marker: this run, not the first of its checkout's chain (a reset, a
/// retry or continue-as-new), looked up a charge an earlier run made
/// before charging ([`reconciling::prior`]).
pub const PRIOR_CHARGE_LOOKUP: &str = "prior-charge-lookup";

/// The Keyword search attribute every checkout sets to its order id, so that
/// `temporal workflow list --query 'OrderId="o-1"'` finds it. The namespace
/// must have it registered, or the checkout's first task fails (before any
/// money moves) until it is.
pub const ORDER_ID: SearchAttributeKey<String> = SearchAttributeKey::keyword("OrderId");

/// Workflow type `checkout`.
#[workflow]
pub struct CheckoutWorkflow {
    status: CheckoutStatus,
    fulfilment: Option<Fulfilment>,
    /// Runs under [`STEADY_CHECKOUT_PATCH`]: the `fulfil` Update is refused
    /// before the charge settles, and payloads are parsed strictly. True
    /// until the run says otherwise, so that an Update or signal handled
    /// with the start (update-with-start, signal-with-start), before the run
    /// has looked at its patches, is held to the strict rules.
    steady: bool,
}

impl Default for CheckoutWorkflow {
    fn default() -> Self {
        Self {
            status: CheckoutStatus::default(),
            fulfilment: None,
            steady: true,
        }
    }
}

/// The non-retryable failure of a checkout whose input is refused before
/// any key or charge.
fn invalid_input(why: &str) -> WorkflowTermination {
    ApplicationFailure::builder(format!("checkout input refused before any charge: {why}"))
        .type_name(error_types::INVALID_INPUT.to_owned())
        .non_retryable(true)
        .build()
        .into()
}

/// Why the fulfilment wait ended.
enum Decision {
    Fulfilled,
    Failed(String),
}

// Each `allow(missing_docs)` below is copied by the macro onto the constant
// it generates for the method, which cannot carry docs of its own.
#[workflow_methods]
impl CheckoutWorkflow {
    /// Charges, waits for fulfilment, and refunds (with a key of its own) when it does not come.
    #[allow(missing_docs)]
    #[run(name = "checkout")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        request: CheckoutRequest,
    ) -> WorkflowResult<CheckoutOutcome> {
        // Decoded here, not by the SDK: an input that is not a checkout's
        // (a string for a number, a field it does not know) fails the run at
        // once, naming what is wrong, instead of its first task forever.
        let input = match request.parse() {
            Ok(input) => input,
            Err(why) => {
                ctx.state_mut(|s| s.status.step = CheckoutStep::Failed);
                return Err(invalid_input(&why));
            }
        };
        let policy = input.policy.clone().unwrap_or_default();
        // When the checkout began: its first event's time, which a reset
        // copies (a reset run's own first task is later than its charge).
        let began = ctx.info().start_time().or_else(|| ctx.workflow_time());
        let steady = ctx.patched(STEADY_CHECKOUT_PATCH);
        ctx.state_mut(|s| s.steady = steady);
        if steady {
            // A cron schedule chains runs as one checkout: each would take
            // the last one's charge as its own (and refund a fulfilled one).
            if ctx.info().cron_schedule().is_some() && ctx.patched(CRON_REFUSED_PATCH) {
                ctx.state_mut(|s| s.status.step = CheckoutStep::Failed);
                return Err(invalid_input(
                    "a checkout cannot run on a cron schedule: every run would be the same checkout; start one per order",
                ));
            }
            // Before the search attribute and any money: nothing in the
            // input may fail a workflow task, or wedge a charged checkout.
            if let Err(why) = input.check() {
                ctx.state_mut(|s| s.status.step = CheckoutStep::Failed);
                return Err(invalid_input(&why));
            }
        }
        if ctx.patched(ORDER_ID_PATCH) {
            ctx.upsert_search_attributes([ORDER_ID.value_set(input.order_id.clone())]);
        }
        if steady && ctx.cancellation_token().is_cancelled() {
            ctx.state_mut(|s| s.status.step = CheckoutStep::Cancelled);
            return Err(WorkflowTermination::cancelled());
        }
        let safe = ctx.patched(charging::SAFE_CHARGE_PATCH);
        // A run that is not the first of its chain (a reset, say) may find
        // a charge an earlier run made: adopt it rather than charge again.
        // Decided with a marker of its own: a reset to a later task replays
        // the first run's events, in which no lookup was made, under this
        // run's id; `patched` is false there (no marker in that history) and
        // true, recorded, when this run decides afresh.
        let resumed = steady
            && ctx.run_id() != ctx.info().first_execution_run_id()
            && ctx.patched(PRIOR_CHARGE_LOOKUP);
        let prior = if resumed {
            ctx.state_mut(|s| s.status.step = CheckoutStep::Reconciling);
            match Self::look_up_prior(ctx, &input, &policy, began).await {
                Ok(prior) => prior,
                Err(unknown) => {
                    ctx.state_mut(|s| s.status.step = CheckoutStep::OutcomeUnknown);
                    return Err(unknown);
                }
            }
        } else {
            None
        };
        let charged = if let Some(prior) = prior {
            if !ctx.is_replaying() {
                tracing::info!(workflow_id = %ctx.workflow_id(), found = ?prior, "an earlier run of this checkout charged: adopted, not charged again");
            }
            prior
        } else if safe {
            // Whoever started it: an order another checkout holds money
            // for is not charged again. Its list reads from before this
            // checkout began by as long as Stripe's search may lag.
            let order_paid_since = if steady && ctx.patched(ONE_PER_ORDER_PATCH) {
                began.and_then(|began| began.checked_sub(policy.search_window))
            } else {
                None
            };
            let cancellable = steady && ctx.patched(CANCEL_UNTIL_STARTED_PATCH);
            match charging::charge(ctx, &input, &policy, order_paid_since, cancellable).await {
                Attempt::Settled(charged) => charged,
                Attempt::Unknown(unknown) => {
                    let began = began.filter(|_| steady);
                    match Self::ask_stripe(ctx, &input, &policy, unknown, began, steady).await {
                        Ok(charged) => charged,
                        Err(unknown) => {
                            ctx.state_mut(|s| s.status.step = CheckoutStep::OutcomeUnknown);
                            return Err(unknown);
                        }
                    }
                }
            }
        } else {
            charging::charge_v1(ctx, &input, &policy).await?
        };
        let payment_intent_id = match charged {
            Ok(payment_intent_id) => payment_intent_id,
            // Cancelled before any attempt charged: nothing to refund.
            Err(CheckoutOutcome::Failed { .. })
                if ctx.cancellation_token().is_cancelled()
                    && ctx.patched(CANCEL_UNTIL_STARTED_PATCH) =>
            {
                ctx.state_mut(|s| s.status.step = CheckoutStep::Cancelled);
                return Err(WorkflowTermination::cancelled());
            }
            Err(ended) => {
                ctx.state_mut(|s| {
                    if let CheckoutOutcome::Compensated {
                        payment_intent_id,
                        refund_id,
                        ..
                    } = &ended
                    {
                        s.status.step = CheckoutStep::Compensated;
                        s.status.payment_intent_id = Some(payment_intent_id.clone());
                        s.status.refund_id = Some(refund_id.clone());
                    } else {
                        s.status.step = CheckoutStep::Failed;
                    }
                });
                return Ok(ended);
            }
        };
        ctx.state_mut(|s| {
            s.status.step = CheckoutStep::AwaitingFulfilment;
            s.status.payment_intent_id = Some(payment_intent_id.clone());
        });

        // A cancel that came during the charge waited for its outcome: refund now.
        let cancelled_while_charging = safe && ctx.cancellation_token().is_cancelled();
        let decision = if cancelled_while_charging {
            Decision::Failed("workflow cancelled".to_owned())
        } else {
            select! {
                waited = ctx.wait_condition(|s| s.fulfilment.is_some()) => match waited {
                    Ok(()) => match ctx.state(|s| s.fulfilment.clone()) {
                        Some(Fulfilment { ok: true, .. }) => Decision::Fulfilled,
                        Some(Fulfilment { reason, .. }) => Decision::Failed(reason.unwrap_or_else(|| "fulfilment failed".to_owned())),
                        None => Decision::Failed("fulfilment failed".to_owned()),
                    },
                    Err(_) => Decision::Failed("workflow cancelled".to_owned()),
                },
                fired = ctx.timer(input.fulfilment_timeout) => match fired {
                    TimerResult::Cancelled => Decision::Failed("workflow cancelled".to_owned()),
                    _ => Decision::Failed("fulfilment timed out".to_owned()),
                },
            }
        };
        let reason = match decision {
            // A run that adopted an earlier run's charge reads it again: a
            // refund the earlier run had in flight may have landed since.
            Decision::Fulfilled if resumed => {
                match reconciling::prior(ctx, &input, &policy, began).await {
                    Ok(Some(Err(refunded))) => {
                        ctx.state_mut(|s| s.status.step = CheckoutStep::Compensated);
                        return Ok(refunded);
                    }
                    Ok(_) => {
                        ctx.state_mut(|s| s.status.step = CheckoutStep::Completed);
                        return Ok(CheckoutOutcome::Completed { payment_intent_id });
                    }
                    Err(unknown) => {
                        ctx.state_mut(|s| s.status.step = CheckoutStep::OutcomeUnknown);
                        return Err(unknown);
                    }
                }
            }
            Decision::Fulfilled => {
                ctx.state_mut(|s| s.status.step = CheckoutStep::Completed);
                return Ok(CheckoutOutcome::Completed { payment_intent_id });
            }
            Decision::Failed(reason) => reason,
        };

        ctx.state_mut(|s| {
            s.status.step = CheckoutStep::Refunding;
            s.status.refund_reason = Some(reason.clone());
        });
        if steady {
            return Self::compensate(ctx, &input, &policy, payment_intent_id, reason, began).await;
        }
        let refund = RefundInput {
            order_id: input.order_id.clone(),
            payment_intent_id: payment_intent_id.clone(),
            amount: None,
            reason: Some("requested_by_customer".to_owned()),
            schedule_to_close_ms: None,
            compensating_since_ms: None,
            follow_refund_id: None,
        };
        // A token of its own: a cancelled workflow must still run its compensation.
        let options = policy
            .refund
            .options("refund", Some(WorkflowCancellationToken::new()));
        match ctx.execute_activity(Refund, refund, options).await {
            Ok(refunded) => {
                ctx.state_mut(|s| {
                    s.status.step = CheckoutStep::Compensated;
                    s.status.refund_id = Some(refunded.refund_id.clone());
                });
                Ok(CheckoutOutcome::Compensated {
                    payment_intent_id,
                    refund_id: refunded.refund_id,
                    reason,
                })
            }
            Err(err) => {
                ctx.state_mut(|s| s.status.step = CheckoutStep::CompensationFailed);
                Err(ApplicationFailure::builder(format!(
                    "refund of {payment_intent_id} failed ({err}); an operator must refund it by hand"
                ))
                .type_name(error_types::COMPENSATION_FAILED.to_owned())
                .non_retryable(true)
                .details(payment_intent_id)
                .build()
                .into())
            }
        }
    }

    /// Signal `fulfilment`, kept for existing callers; the first one that
    /// counts wins. Its payload never fails decoding: a malformed or late
    /// one is logged and ignored (the `fulfil` Update says why to its caller).
    /// One sent before the charge settled is held: it counts only if the
    /// charge succeeds. (Ignoring it would lose a fulfilment sent right
    /// after the charge: Temporal hands a workflow the signals of a task
    /// before the activity results of the same task.)
    #[allow(missing_docs)]
    #[signal(name = "fulfilment")]
    pub fn fulfilment(&mut self, ctx: &mut SyncWorkflowContext<Self>, request: FulfilmentRequest) {
        match self.accept(&request, false) {
            Ok(fulfilment) => {
                let charging = matches!(
                    self.status.step,
                    CheckoutStep::Charging | CheckoutStep::Reconciling | CheckoutStep::Settling
                );
                if charging && !ctx.is_replaying() {
                    tracing::info!(workflow_id = %ctx.workflow_id(), "fulfilment signal held until the charge settles; it counts only if the charge succeeds");
                }
                self.fulfilment = Some(fulfilment);
            }
            Err(why) => {
                if !ctx.is_replaying() {
                    tracing::warn!(workflow_id = %ctx.workflow_id(), %why, "fulfilment signal ignored");
                }
            }
        }
    }

    /// Update `fulfil`: records whether the order was fulfilled. Refused (by
    /// its validator, before anything is written to history) when malformed,
    /// when a fulfilment was already received, or once the outcome is decided.
    #[allow(missing_docs)]
    #[update(name = "fulfil")]
    pub fn fulfil(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        request: FulfilmentRequest,
    ) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        let info = ctx.info();
        let first = info.run_id() == info.first_execution_run_id();
        let fulfilment = self.accept(&request, first)?;
        let said = if fulfilment.ok {
            "fulfilled"
        } else {
            "failed: the charge will be refunded"
        };
        self.fulfilment = Some(fulfilment);
        Ok(format!("recorded: order {said}"))
    }

    /// Refuses a `fulfil` the checkout cannot take, with the reason.
    #[allow(missing_docs)]
    #[update_validator(fulfil)]
    pub fn validate_fulfil(
        &self,
        ctx: &WorkflowContextView,
        request: &FulfilmentRequest,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        // A run made by a reset gets its Updates again before it charges:
        // held like signals, or a fulfilled order would be refunded.
        let first = ctx.run_id() == ctx.first_execution_run_id();
        self.accept(request, first).map(drop).map_err(Into::into)
    }

    /// Query `status`: the current step and the ids so far.
    #[allow(missing_docs)]
    #[query(name = "status")]
    pub fn status(&self, _ctx: &WorkflowContextView) -> CheckoutStatus {
        self.status.clone()
    }
}
