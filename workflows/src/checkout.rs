//! The checkout saga: charge, wait for fulfilment, refund when it fails.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::select;
use temporalio_sdk::{
    ActivityExecutionError, ApplicationFailure, RetryState, SyncWorkflowContext, TimerResult,
    WorkflowCancellationToken, WorkflowContext, WorkflowContextView, WorkflowResult,
    WorkflowTermination,
};

use crate::contract::{
    CaptureMode, Charge, ChargeInput, ChargeOutput, Refund, RefundInput, error_types,
};
use crate::policy::CheckoutPolicy;

fn default_fulfilment_timeout() -> Duration {
    Duration::from_secs(3600)
}

/// Input of workflow `checkout`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutInput {
    /// The caller's order id.
    pub order_id: String,
    /// Minor units.
    pub amount: i64,
    /// ISO 4217, lowercase.
    pub currency: String,
    /// Stripe PaymentMethod id.
    pub payment_method: String,
    /// Stripe Customer id.
    #[serde(default)]
    pub customer: Option<String>,
    /// The charge key's spend cap in USD (see `charge`).
    #[serde(default)]
    pub max_spend_usd: Option<f64>,
    /// Timeouts and retries of `charge` and `refund`.
    #[serde(default)]
    pub policy: Option<CheckoutPolicy>,
    /// How long to wait for the `fulfilment` signal before refunding (default 1h).
    #[serde(default = "default_fulfilment_timeout", with = "humantime_serde")]
    pub fulfilment_timeout: Duration,
}

/// Signal `fulfilment`: whether the order was fulfilled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fulfilment {
    /// True when fulfilled; false refunds the charge.
    pub ok: bool,
    /// Why it failed.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Result of workflow `checkout`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome")]
pub enum CheckoutOutcome {
    /// Charged and fulfilled.
    Completed {
        /// The charge.
        payment_intent_id: String,
    },
    /// Charged, then refunded because fulfilment failed, timed out or the workflow was cancelled.
    Compensated {
        /// The charge.
        payment_intent_id: String,
        /// The refund.
        refund_id: String,
        /// Why it was refunded.
        reason: String,
    },
    /// The charge failed for good; nothing was charged, so nothing is refunded.
    Failed {
        /// The charge's failure type, e.g. `CardDeclined`.
        error_type: String,
        /// Its message.
        message: String,
    },
}

/// Where a checkout is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutStep {
    /// Running `charge`.
    #[default]
    Charging,
    /// Charged; waiting for `fulfilment`.
    AwaitingFulfilment,
    /// Running `refund`.
    Refunding,
    /// Done: fulfilled.
    Completed,
    /// Done: refunded.
    Compensated,
    /// Done: the charge failed.
    Failed,
}

/// Answer of query `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckoutStatus {
    /// Current step.
    pub step: CheckoutStep,
    /// Set once charged.
    pub payment_intent_id: Option<String>,
    /// Set once refunded.
    pub refund_id: Option<String>,
}

/// Workflow type `checkout`.
#[workflow]
#[derive(Default)]
pub struct CheckoutWorkflow {
    status: CheckoutStatus,
    fulfilment: Option<Fulfilment>,
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
        input: CheckoutInput,
    ) -> WorkflowResult<CheckoutOutcome> {
        let policy = input.policy.clone().unwrap_or_default();
        let charged = match Self::charge(ctx, &input, &policy).await? {
            Ok(charged) => charged,
            Err(failed) => {
                ctx.state_mut(|s| s.status.step = CheckoutStep::Failed);
                return Ok(failed);
            }
        };
        let payment_intent_id = charged.payment_intent_id;
        ctx.state_mut(|s| {
            s.status.step = CheckoutStep::AwaitingFulfilment;
            s.status.payment_intent_id = Some(payment_intent_id.clone());
        });

        let decision = select! {
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
        };
        let reason = match decision {
            Decision::Fulfilled => {
                ctx.state_mut(|s| s.status.step = CheckoutStep::Completed);
                return Ok(CheckoutOutcome::Completed { payment_intent_id });
            }
            Decision::Failed(reason) => reason,
        };

        ctx.state_mut(|s| s.status.step = CheckoutStep::Refunding);
        let refund = RefundInput {
            order_id: input.order_id.clone(),
            payment_intent_id: payment_intent_id.clone(),
            amount: None,
            reason: Some("requested_by_customer".to_owned()),
            schedule_to_close_ms: None,
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
            Err(err) => Err(ApplicationFailure::builder(format!(
                "refund of {payment_intent_id} failed ({err}); an operator must refund it by hand"
            ))
            .type_name(error_types::COMPENSATION_FAILED.to_owned())
            .non_retryable(true)
            .details(payment_intent_id)
            .build()
            .into()),
        }
    }

    /// Runs `charge`. `Ok(Err(outcome))` is a charge that failed for good;
    /// a charge whose outcome is unknown (retries exhausted, timed out) fails
    /// the workflow so that an operator reconciles it.
    async fn charge(
        ctx: &mut WorkflowContext<Self>,
        input: &CheckoutInput,
        policy: &CheckoutPolicy,
    ) -> WorkflowResult<Result<ChargeOutput, CheckoutOutcome>> {
        let charge = ChargeInput {
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
        };
        match ctx.execute_activity(Charge, charge, policy.charge.options("charge", None)).await {
            Ok(charged) => Ok(Ok(charged)),
            Err(ActivityExecutionError::Failed(failure)) if failure.retry_state() == RetryState::NonRetryableFailure => {
                let (error_type, message) = match failure.cause() {
                    Some(temporalio_common::error::IncomingError::Application(app)) => (
                        app.type_name().unwrap_or("Unknown").to_owned(),
                        app.source_error().to_string(),
                    ),
                    _ => ("Unknown".to_owned(), failure.to_string()),
                };
                Ok(Err(CheckoutOutcome::Failed { error_type, message }))
            }
            Err(ActivityExecutionError::Failed(failure)) => Err(ApplicationFailure::builder(format!(
                "charge for order {} ended with its outcome unknown ({:?}); reconcile with Stripe",
                input.order_id,
                failure.retry_state()
            ))
            .type_name(error_types::CHARGE_OUTCOME_UNKNOWN.to_owned())
            .non_retryable(true)
            .details(input.order_id.clone())
            .build()
            .into()),
            Err(ActivityExecutionError::Cancelled(_)) => Err(WorkflowTermination::cancelled()),
            Err(err) => Err(err.into()),
        }
    }

    /// Signal `fulfilment`; the first one counts.
    #[allow(missing_docs)]
    #[signal(name = "fulfilment")]
    pub fn fulfilment(&mut self, _ctx: &mut SyncWorkflowContext<Self>, fulfilment: Fulfilment) {
        self.fulfilment.get_or_insert(fulfilment);
    }

    /// Query `status`: the current step and the ids so far.
    #[allow(missing_docs)]
    #[query(name = "status")]
    pub fn status(&self, _ctx: &WorkflowContextView) -> CheckoutStatus {
        self.status.clone()
    }
}
