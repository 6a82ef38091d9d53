//! The activity contract: the names, JSON inputs and outputs, error types and
//! header that callers in any SDK rely on. Changing any of them breaks them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use temporalio_common::ActivityDefinition;

/// The task queue Keylease workers poll by default.
pub const TASK_QUEUE: &str = "payments";

/// Activity header carrying the activity's schedule-to-close timeout in
/// milliseconds (a JSON number, or a string of digits). Set by
/// [`crate::ScheduleToCloseHeader`]; callers in other SDKs set it with their
/// own interceptor, or pass `schedule_to_close_ms` in the input.
pub const SCHEDULE_TO_CLOSE_HEADER: &str = "x-schedule-to-close-ms";

/// Failure type names the activities report (`ApplicationFailure.type`).
pub mod error_types {
    /// The input was refused before any key was issued. Not retryable.
    pub const INVALID_INPUT: &str = "InvalidInput";
    /// The broker refused a request over the key's spend cap. Not retryable.
    pub const SPEND_CAP_EXCEEDED: &str = "SpendCapExceeded";
    /// The key's scope does not cover the call (endpoint or currency). Not retryable.
    pub const KEY_SCOPE_VIOLATION: &str = "KeyScopeViolation";
    /// The key expired or was revoked mid-attempt. Retryable: the next attempt gets a fresh key.
    pub const KEY_UNUSABLE: &str = "KeyUnusable";
    /// The broker could not be reached or failed. Retryable.
    pub const BROKER_UNAVAILABLE: &str = "BrokerUnavailable";
    /// The broker refused to issue the key (4xx). Not retryable.
    pub const BROKER_REJECTED: &str = "BrokerRejected";
    /// Stripe declined the card; the decline code is in the details. Not retryable.
    pub const CARD_DECLINED: &str = "CardDeclined";
    /// Stripe refused the request as invalid. Not retryable.
    pub const STRIPE_INVALID_REQUEST: &str = "StripeInvalidRequest";
    /// Stripe (or the way to it) failed in a way worth retrying, unless Stripe said not to.
    pub const STRIPE_UNAVAILABLE: &str = "StripeUnavailable";
    /// The checkout workflow's refund ran out of retries; the PaymentIntent id is in the details.
    pub const COMPENSATION_FAILED: &str = "CompensationFailed";
    /// The charge ran out of retries with its outcome unknown; the order id is in the details.
    pub const CHARGE_OUTCOME_UNKNOWN: &str = "ChargeOutcomeUnknown";
}

/// How the charge is captured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureMode {
    /// Captured on confirmation.
    #[default]
    Automatic,
    /// Authorized only; captured later.
    Manual,
}

/// Input of activity `charge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargeInput {
    /// The caller's order id; part of the Stripe idempotency key.
    pub order_id: String,
    /// Minor units, 1 to 99,999,999.
    pub amount: i64,
    /// ISO 4217, lowercase.
    pub currency: String,
    /// Stripe PaymentMethod id (`pm_…`).
    pub payment_method: String,
    /// Stripe Customer id.
    #[serde(default)]
    pub customer: Option<String>,
    /// Shown on Stripe.
    #[serde(default)]
    pub description: Option<String>,
    /// Extra Stripe metadata; `order_id` and `workflow_id` are always set.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The key's spend cap in USD. Defaults to the amount for USD; required otherwise.
    #[serde(default)]
    pub max_spend_usd: Option<f64>,
    /// Capture mode (default `automatic`).
    #[serde(default)]
    pub capture: CaptureMode,
    /// The activity's schedule-to-close timeout, when the header cannot be set.
    #[serde(default)]
    pub schedule_to_close_ms: Option<u64>,
}

/// Output of activity `charge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChargeOutput {
    /// `pi_…`.
    pub payment_intent_id: String,
    /// Stripe's PaymentIntent status (`succeeded`, or `requires_capture` for manual capture).
    pub status: String,
    /// Minor units.
    pub amount: i64,
    /// ISO 4217, lowercase.
    pub currency: String,
    /// The broker key this attempt used (its id, never its token).
    pub key_id: String,
    /// The attempt that succeeded.
    pub attempt: u32,
}

/// Input of activity `refund`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundInput {
    /// The caller's order id; part of the Stripe idempotency key.
    pub order_id: String,
    /// The PaymentIntent to refund.
    pub payment_intent_id: String,
    /// Minor units; all that remains when absent.
    #[serde(default)]
    pub amount: Option<i64>,
    /// `duplicate`, `fraudulent` or `requested_by_customer`.
    #[serde(default)]
    pub reason: Option<String>,
    /// The activity's schedule-to-close timeout, when the header cannot be set.
    #[serde(default)]
    pub schedule_to_close_ms: Option<u64>,
}

/// Output of activity `refund`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundOutput {
    /// `re_…`.
    pub refund_id: String,
    /// The refunded PaymentIntent.
    pub payment_intent_id: String,
    /// Minor units refunded.
    pub amount: i64,
    /// Stripe's refund status.
    pub status: String,
    /// The broker key this attempt used.
    pub key_id: String,
    /// The attempt that succeeded.
    pub attempt: u32,
}

/// Activity type `charge`, for workflows that schedule it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Charge;

impl ActivityDefinition for Charge {
    type Input = ChargeInput;
    type Output = ChargeOutput;

    fn name(&self) -> &str {
        "charge"
    }
}

/// Activity type `refund`, for workflows that schedule it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refund;

impl ActivityDefinition for Refund {
    type Input = RefundInput;
    type Output = RefundOutput;

    fn name(&self) -> &str {
        "refund"
    }
}
