//! The Refund object.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// A refund.
#[derive(Debug, Clone, Serialize)]
pub struct Refund {
    /// `re_…`.
    pub id: String,
    /// Always `refund`.
    pub object: &'static str,
    /// Amount in minor units.
    pub amount: i64,
    /// Balance transactions are not modelled.
    pub balance_transaction: Option<String>,
    /// `ch_…`.
    pub charge: String,
    /// Unix seconds.
    pub created: i64,
    /// Lowercase ISO code.
    pub currency: String,
    /// The charge's customer.
    pub customer: Option<String>,
    /// As on the PaymentIntent.
    pub customer_account: Option<String>,
    /// Where the money goes back: the card.
    pub destination_details: Option<Value>,
    /// The caller's pairs.
    pub metadata: BTreeMap<String, String>,
    /// `pi_…`.
    pub payment_intent: String,
    /// The charge's `pm_…`.
    pub payment_method: Option<String>,
    /// `duplicate`, `fraudulent` or `requested_by_customer`.
    pub reason: Option<String>,
    /// Not modelled.
    pub receipt_number: Option<String>,
    /// Connect: never.
    pub source_transfer_reversal: Option<String>,
    /// `succeeded` (a card), or `pending` (a bank debit) until
    /// `/_sim/refunds/{id}/settle` makes it `succeeded` or `failed`.
    pub status: &'static str,
    /// Why it failed, once `failed` (Stripe leaves it out otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<&'static str>,
    /// Connect: never.
    pub transfer_reversal: Option<String>,
}
