//! The Charge object: one attempt to move the money of a PaymentIntent.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::cards::{Decline, TestMethod};

/// A charge. Its `refunds` list is filled in by the account that holds it.
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
    /// Connect: never.
    pub application: Option<String>,
    /// Connect: never.
    pub application_fee: Option<String>,
    /// As on the PaymentIntent.
    pub application_fee_amount: Option<i64>,
    /// Balance transactions are not modelled.
    pub balance_transaction: Option<String>,
    /// Empty billing details.
    pub billing_details: Value,
    /// The descriptor on the statement.
    pub calculated_statement_descriptor: Option<String>,
    /// Whether it was captured.
    pub captured: bool,
    /// Unix seconds.
    pub created: i64,
    /// Lowercase ISO code.
    pub currency: String,
    /// The PaymentIntent's customer.
    pub customer: Option<String>,
    /// The PaymentIntent's description.
    pub description: Option<String>,
    /// Disputes are not modelled.
    pub disputed: bool,
    /// Not modelled.
    pub failure_balance_transaction: Option<String>,
    /// The error code when it failed.
    pub failure_code: Option<&'static str>,
    /// The error message when it failed.
    pub failure_message: Option<&'static str>,
    /// Always empty.
    pub fraud_details: Value,
    /// Always false.
    pub livemode: bool,
    /// The PaymentIntent's pairs.
    pub metadata: BTreeMap<String, String>,
    /// Connect: as on the PaymentIntent.
    pub on_behalf_of: Option<String>,
    /// The network's answer.
    pub outcome: Value,
    /// Whether it succeeded (or is pending).
    pub paid: bool,
    /// `pi_…`.
    pub payment_intent: String,
    /// `pm_…`.
    pub payment_method: String,
    /// The card or bank account, as Stripe describes it.
    pub payment_method_details: Value,
    /// As on the PaymentIntent.
    pub receipt_email: Option<String>,
    /// Not modelled.
    pub receipt_number: Option<String>,
    /// Not modelled.
    pub receipt_url: Option<String>,
    /// Whether it was refunded in full.
    pub refunded: bool,
    /// Radar: never.
    pub review: Option<String>,
    /// As on the PaymentIntent.
    pub shipping: Option<Value>,
    /// Legacy source: never.
    pub source: Option<Value>,
    /// Connect: never.
    pub source_transfer: Option<String>,
    /// As on the PaymentIntent.
    pub statement_descriptor: Option<String>,
    /// As on the PaymentIntent.
    pub statement_descriptor_suffix: Option<String>,
    /// `succeeded`, `pending` or `failed`.
    pub status: &'static str,
    /// As on the PaymentIntent.
    pub transfer_data: Option<Value>,
    /// As on the PaymentIntent.
    pub transfer_group: Option<String>,
}

/// The network's `outcome` for a charge that went through or was declined.
pub fn outcome(decline: Option<&Decline>) -> Value {
    match decline {
        None => json!({
            "advice_code": null, "network_advice_code": null, "network_decline_code": null,
            "network_status": "approved_by_network", "reason": null, "risk_level": "normal",
            "seller_message": "Payment complete.", "type": "authorized",
        }),
        Some(decline) => json!({
            "advice_code": null, "network_advice_code": null, "network_decline_code": null,
            "network_status": "declined_by_network", "reason": decline.decline_code, "risk_level": "normal",
            "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
        }),
    }
}

/// `payment_method_details` of a test method; `incremental` when the card allows it.
pub fn card_details(
    method: &TestMethod,
    amount: i64,
    incremental: bool,
    three_d_secure: bool,
) -> Value {
    if method.kind != "card" {
        return json!({
            "type": method.kind,
            method.kind: {
                "account_holder_type": "individual", "account_type": method.funding,
                "bank_name": method.brand, "fingerprint": null, "last4": method.last4,
                "mandate": null, "payment_reference": null, "routing_number": "110000000",
            },
        });
    }
    let unavailable = json!({ "status": "unavailable" });
    json!({
        "type": "card",
        "card": {
            "amount_authorized": amount,
            "authorization_code": null,
            "brand": method.brand,
            "checks": { "address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass" },
            "country": "US",
            "exp_month": 12,
            "exp_year": 2034,
            "extended_authorization": { "status": "disabled" },
            "fingerprint": format!("sim{}", method.last4),
            "funding": method.funding,
            "incremental_authorization": if incremental { json!({ "status": "available" }) } else { unavailable.clone() },
            "installments": null,
            "last4": method.last4,
            "mandate": null,
            "multicapture": unavailable,
            "network": method.brand,
            "network_token": { "used": false },
            "network_transaction_id": null,
            "overcapture": { "maximum_amount_capturable": amount, "status": "unavailable" },
            "regulated_status": "unregulated",
            "three_d_secure": if three_d_secure {
                json!({ "authentication_flow": "challenge", "electronic_commerce_indicator": "05",
                        "exemption_indicator": null, "result": "authenticated", "result_reason": null,
                        "transaction_id": null, "version": "2.2.0" })
            } else { Value::Null },
            "transaction_link_id": null,
            "wallet": null,
        },
    })
}

/// Billing details with nothing known.
pub fn empty_billing_details() -> Value {
    json!({
        "address": { "city": null, "country": null, "line1": null, "line2": null, "postal_code": null, "state": null },
        "email": null, "name": null, "phone": null, "tax_id": null,
    })
}
