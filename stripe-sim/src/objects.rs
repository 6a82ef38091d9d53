//! Stripe objects in Stripe's JSON shape, and the test payment methods.

use std::collections::BTreeMap;

use serde::Serialize;

/// A PaymentIntent.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentIntent {
    /// `pi_…`.
    pub id: String,
    /// Always `payment_intent`.
    pub object: &'static str,
    /// Amount in minor units.
    pub amount: i64,
    /// What may still be captured (manual capture).
    pub amount_capturable: i64,
    /// What was captured.
    pub amount_received: i64,
    /// `automatic` or `manual`.
    pub capture_method: String,
    /// When it was cancelled (unix seconds).
    pub canceled_at: Option<i64>,
    /// Why it was cancelled.
    pub cancellation_reason: Option<String>,
    /// `pi_…_secret_…`.
    pub client_secret: String,
    /// Always `automatic`.
    pub confirmation_method: &'static str,
    /// Unix seconds.
    pub created: i64,
    /// Lowercase ISO code.
    pub currency: String,
    /// `cus_…`, if given.
    pub customer: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// The error of the last failed confirmation.
    pub last_payment_error: Option<serde_json::Value>,
    /// The latest charge (`ch_…`); `expand[]=latest_charge` shows the object.
    pub latest_charge: Option<String>,
    /// Always false.
    pub livemode: bool,
    /// The caller's pairs.
    pub metadata: BTreeMap<String, String>,
    /// `pm_…`.
    pub payment_method: Option<String>,
    /// Always `["card"]`.
    pub payment_method_types: Vec<&'static str>,
    /// Stripe's PaymentIntent status.
    pub status: &'static str,
}

/// A charge: one attempt to move the money of a PaymentIntent.
#[derive(Debug, Clone, Serialize)]
pub struct Charge {
    /// `ch_…`.
    pub id: String,
    /// Always `charge`.
    pub object: &'static str,
    /// Amount in minor units.
    pub amount: i64,
    /// Captured so far.
    pub amount_captured: i64,
    /// Refunded so far.
    pub amount_refunded: i64,
    /// Whether it was captured.
    pub captured: bool,
    /// Unix seconds.
    pub created: i64,
    /// Lowercase ISO code.
    pub currency: String,
    /// The decline code's error code when it failed.
    pub failure_code: Option<&'static str>,
    /// Always false.
    pub livemode: bool,
    /// Whether it succeeded.
    pub paid: bool,
    /// `pi_…`.
    pub payment_intent: String,
    /// `pm_…`.
    pub payment_method: String,
    /// Whether it was refunded in full.
    pub refunded: bool,
    /// `succeeded` or `failed`.
    pub status: &'static str,
}

/// A refund.
#[derive(Debug, Clone, Serialize)]
pub struct Refund {
    /// `re_…`.
    pub id: String,
    /// Always `refund`.
    pub object: &'static str,
    /// Amount in minor units.
    pub amount: i64,
    /// `ch_…`.
    pub charge: String,
    /// Unix seconds.
    pub created: i64,
    /// Lowercase ISO code.
    pub currency: String,
    /// The caller's pairs.
    pub metadata: BTreeMap<String, String>,
    /// `pi_…`.
    pub payment_intent: String,
    /// `duplicate`, `fraudulent` or `requested_by_customer`.
    pub reason: Option<String>,
    /// Always `succeeded`.
    pub status: &'static str,
}

/// What confirming with a test payment method does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardOutcome {
    /// The charge goes through.
    Succeeds,
    /// The card is declined with this decline code.
    Declined(&'static str),
}

/// The outcome of a test payment method, or `None` for one Stripe does not have.
pub fn card_outcome(payment_method: &str) -> Option<CardOutcome> {
    let outcome = match payment_method {
        "pm_card_visa" | "pm_card_visa_debit" | "pm_card_mastercard" | "pm_card_amex" => {
            CardOutcome::Succeeds
        }
        "pm_card_chargeDeclined" => CardOutcome::Declined("generic_decline"),
        "pm_card_chargeDeclinedInsufficientFunds" => CardOutcome::Declined("insufficient_funds"),
        "pm_card_chargeDeclinedFraudulent" => CardOutcome::Declined("fraudulent"),
        "pm_card_chargeDeclinedLostCard" => CardOutcome::Declined("lost_card"),
        "pm_card_chargeDeclinedStolenCard" => CardOutcome::Declined("stolen_card"),
        _ => return None,
    };
    Some(outcome)
}
