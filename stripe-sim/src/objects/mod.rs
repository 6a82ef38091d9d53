//! Stripe objects in Stripe's JSON shape: every field of Stripe's example
//! objects (`reference/fixtures.json`) is present, `null` where the simulator
//! has nothing to say. Hidden bookkeeping is `#[serde(skip)]`.

mod charge;
mod payment_intent;
mod refund;
mod store;

pub use charge::{Charge, card_details, empty_billing_details, outcome};
pub use payment_intent::{AutomaticPaymentMethods, PaymentIntent};
pub use refund::Refund;
pub use store::{Identified, Store};

use serde_json::{Value, json};

/// A page of a list, as `GET /v1/payment_intents` and `GET /v1/refunds` answer.
pub fn list(url: &str, data: Vec<Value>, has_more: bool) -> Value {
    json!({ "object": "list", "url": url, "has_more": has_more, "data": data })
}
