//! What the checkout takes, answers and reports: its input, its outcome and
//! the answer of its `status` query. Callers send and read their serde
//! shapes, and recorded histories hold them: a change here is a wire change.
//!
//! They sit apart from the workflow so that its steps (`charging`) can name
//! them without importing the workflow that calls those steps.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::payloads::Raw;
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

/// Longest order id a checkout takes: it becomes the `OrderId` search
/// attribute, which Temporal caps in size.
pub const MAX_ORDER_ID_BYTES: usize = 256;

impl CheckoutInput {
    /// Refuses an input the workflow cannot run to its end (a policy
    /// Temporal would not schedule, a duration past what its timers carry,
    /// an order id too long for its search attribute), naming the field.
    /// What the activities check themselves (amount, currency, ids) they
    /// refuse before issuing any key. The workflow runs this first: a rule
    /// made stricter here changes what a run in flight does when it
    /// replays (its input passed once), so it ships behind a new patch.
    pub fn check(&self) -> Result<(), String> {
        if self.order_id.is_empty() || self.order_id.len() > MAX_ORDER_ID_BYTES {
            return Err(format!("order_id must be 1 to {MAX_ORDER_ID_BYTES} bytes"));
        }
        if self.fulfilment_timeout.is_zero() {
            return Err("fulfilment_timeout must be above 0".to_owned());
        }
        crate::policy::within_longest("fulfilment_timeout", self.fulfilment_timeout)?;
        match &self.policy {
            Some(policy) => policy.check().map_err(|why| format!("policy.{why}")),
            None => Ok(()),
        }
    }
}

/// The input of workflow `checkout` as sent: it always decodes, and
/// [`CheckoutRequest::parse`] says whether it holds a [`CheckoutInput`].
pub type CheckoutRequest = Raw<CheckoutInput>;

impl Raw<CheckoutInput> {
    /// The checkout input it carries, or why it carries none.
    pub fn parse(&self) -> Result<CheckoutInput, String> {
        let (value, expected) = self.object(
            "{order_id, amount, currency, payment_method, customer?, max_spend_usd?, policy?, fulfilment_timeout?}",
        )?;
        serde_json::from_value(value).map_err(|err| expected(&err))
    }
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
    /// The charge's outcome was unknown: running `reconcile`.
    Reconciling,
    /// The payment is `processing` (a bank debit): read again, with a
    /// durable timer between reads, until Stripe settles it.
    Settling,
    /// Charged; waiting for `fulfilment`.
    AwaitingFulfilment,
    /// Running `refund`.
    Refunding,
    /// Done: fulfilled.
    Completed,
    /// Done: refunded.
    Compensated,
    /// Done: the charge failed (or the input was refused before any charge).
    Failed,
    /// Done: the charge's outcome is unknown and Stripe could not tell;
    /// the workflow failed `ChargeOutcomeUnknown` for an operator.
    OutcomeUnknown,
    /// Done: Stripe refused or failed the refund; the workflow failed
    /// `CompensationFailed` with the money kept, for an operator.
    CompensationFailed,
    /// Done: cancelled before the charge was scheduled; nothing was charged.
    Cancelled,
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
    /// Why the charge is being (or was) refunded.
    #[serde(default)]
    pub refund_reason: Option<String>,
    /// Rounds of the compensation so far (each one `refund` with its retry policy).
    #[serde(default)]
    pub refund_rounds: u32,
    /// Why the last round of the compensation failed, while it is retried.
    #[serde(default)]
    pub refund_last_error: Option<String>,
}
