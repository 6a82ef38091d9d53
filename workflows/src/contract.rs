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
    /// The charge ran out of retries with its outcome unknown and Stripe could
    /// not tell either (see `reconcile`); the order id is in the details.
    pub const CHARGE_OUTCOME_UNKNOWN: &str = "ChargeOutcomeUnknown";
    /// The card needs 3-D Secure, which nobody can complete for an agent: the
    /// PaymentIntent was cancelled, nothing was charged. Not retryable.
    pub const AUTHENTICATION_REQUIRED: &str = "AuthenticationRequired";
    /// The PaymentIntent ended without the money (a failed debit, a cancelled
    /// or unconfirmable PaymentIntent); nothing was charged. Not retryable.
    pub const PAYMENT_FAILED: &str = "PaymentFailed";
    /// The PaymentIntent was still `processing` when the attempt ended (its
    /// id in [`super::ProcessingDetails`]). Retryable: the next attempt
    /// replays the create and polls on.
    pub const CHARGE_PROCESSING: &str = "ChargeProcessing";
    /// `reconcile` found nothing yet, within Stripe's search delay. Retryable.
    pub const NOT_YET_INDEXED: &str = "NotYetIndexed";
    /// The order already holds an unrefunded PaymentIntent of another
    /// checkout (its id and workflow in the message and details, with the
    /// attempt, as for [`NOT_SENT`]). Not retryable on the first attempt
    /// (nothing was charged); retried on a later one, whose earlier attempt
    /// may have charged.
    pub const DUPLICATE_ORDER: &str = "DuplicateOrder";

    /// Failure types of `charge` that are Stripe's own answer for the charge's
    /// idempotency key (every attempt sends the same one, and Stripe replays
    /// the first outcome), or that stop the charge before any key is issued:
    /// when the last attempt ends with one of them, nothing was charged.
    pub const NOTHING_CHARGED: [&str; 5] = [
        INVALID_INPUT,
        CARD_DECLINED,
        STRIPE_INVALID_REQUEST,
        AUTHENTICATION_REQUIRED,
        PAYMENT_FAILED,
    ];

    /// Failure types the broker or the worker gives before the charge's
    /// create is forwarded to Stripe (`DuplicateOrder`: the order check
    /// refused it). On the charge's first attempt nothing was sent; on a
    /// later one, an earlier attempt may have charged (its create may even
    /// be in flight still).
    pub const NOT_SENT: [&str; 6] = [
        SPEND_CAP_EXCEEDED,
        KEY_SCOPE_VIOLATION,
        KEY_UNUSABLE,
        BROKER_UNAVAILABLE,
        BROKER_REJECTED,
        DUPLICATE_ORDER,
    ];
}

/// Details of a failure in [`error_types::NOT_SENT`]: which attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotSentDetails {
    /// The attempt that failed, from 1.
    pub attempt: u32,
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
    /// The checkout this charge belongs to (the checkout workflow passes its
    /// first-execution run id): part of the idempotency key and set as
    /// metadata `checkout_id`. A new checkout under a reused workflow id
    /// gets a new key; a reset or continue-as-new of the same checkout keeps it.
    #[serde(default)]
    pub checkout_id: Option<String>,
    /// Set by the checkout (Unix ms): refuse, with `DuplicateOrder` and
    /// before creating anything, to charge an order that already holds an
    /// unrefunded PaymentIntent of another checkout. The charge reads the
    /// order's PaymentIntents with Stripe's list from this time on (strongly
    /// consistent) and with Stripe's search before it. Unset: no check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_paid_since_ms: Option<u64>,
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
    /// When the compensation this refund belongs to began (Unix ms): a
    /// refund still being tried long after it counts in the worker's
    /// overdue-compensation metric. Not sent when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensating_since_ms: Option<u64>,
    /// A refund this activity id made earlier (`re_…`), still `pending`: the
    /// attempt reads it (`GET /v1/refunds/{id}`) instead of refunding, and
    /// answers its current status. Not sent when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_refund_id: Option<String>,
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
    /// Stripe's refund status: `succeeded`, `pending` (a bank transfer on
    /// its way), `requires_action`, `failed` or `canceled`.
    pub status: String,
    /// The broker key this attempt used.
    pub key_id: String,
    /// The attempt that succeeded.
    pub attempt: u32,
    /// Stripe's `failure_reason`, for a `failed` refund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

/// Input of activity `reconcile`: find what a charge whose outcome is unknown did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileInput {
    /// The caller's order id, for the log.
    pub order_id: String,
    /// The `checkout_id` the charge set as metadata.
    pub checkout_id: String,
    /// How long after `reconcile` was first scheduled a PaymentIntent may
    /// still be missing from Stripe's search (its indexing delay, plus a
    /// request still in flight): until then, finding nothing is retried.
    pub search_window_ms: u64,
    /// The activity's schedule-to-close timeout, when the header cannot be set.
    #[serde(default)]
    pub schedule_to_close_ms: Option<u64>,
    /// When the checkout began (Unix ms). When given, a search that finds
    /// no charge is confirmed by Stripe's list of the PaymentIntents created
    /// since (strongly consistent, unlike search), and "not charged" rests
    /// on that list alone, never on search being fresh. Not sent when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout_began_ms: Option<u64>,
    /// The checkout's PaymentIntent, when the caller knows it (one a charge
    /// left `processing`): read by its id (strongly consistent, whatever the
    /// account's size) instead of looked for. It must carry the checkout's
    /// `checkout_id`. Not sent when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_intent_id: Option<String>,
}

/// Details of a `ChargeProcessing` failure: the PaymentIntent still on its way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessingDetails {
    /// `pi_…`.
    pub payment_intent_id: String,
}

/// What Stripe holds for a checkout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum ReconcileOutput {
    /// A PaymentIntent of the checkout holds the money (`succeeded` or `requires_capture`).
    Charged {
        /// `pi_…`.
        payment_intent_id: String,
        /// Its status.
        status: String,
        /// A refund of its charge, when some of its money already went back
        /// (read only when the input carries `checkout_began_ms`; `-` when
        /// refunded but the refund was not in the answer).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refund_id: Option<String>,
    },
    /// No PaymentIntent of the checkout holds money, and none can any more.
    NotCharged {
        /// Each PaymentIntent found, with its status (none: nothing reached Stripe).
        found: Vec<(String, String)>,
    },
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

/// Activity type `reconcile`, for workflows that schedule it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reconcile;

impl ActivityDefinition for Reconcile {
    type Input = ReconcileInput;
    type Output = ReconcileOutput;

    fn name(&self) -> &str {
        "reconcile"
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
