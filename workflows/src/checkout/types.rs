//! What the checkout takes, answers and reports: its input, its outcome and
//! the answer of its `status` query. Callers send and read their serde
//! shapes, and recorded histories hold them: a change here is a wire change.
//!
//! They sit apart from the workflow so that its steps (`charging`) can name
//! them without importing the workflow that calls those steps.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// Why the charge is being (or was) refunded.
    #[serde(default)]
    pub refund_reason: Option<String>,
}
