//! What Stripe's answers tell the broker: the objects a request made, with
//! their amounts when the answer gives them.

use serde_json::Value;

use super::ids::charge_id;

/// An object an answer shows was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    /// Its id.
    pub id: String,
    /// Its amount in minor units, when the answer gives it.
    pub amount: Option<i64>,
    /// Its currency, lowercased, when the answer gives it.
    pub currency: Option<String>,
}

impl Made {
    fn unpriced(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            amount: None,
            currency: None,
        }
    }
}

/// Objects an answer shows were made.
///
/// For a create (`kind`: the object type and id prefix Stripe answers that
/// create with, [`super::endpoints::created_kind`]), the object created, or in
/// a decline the PaymentIntent or Charge it left; an answer of another type,
/// or an id of another shape, is not taken (a caller may choose some
/// objects' ids). For a request on an existing object (`kind` is `None`),
/// the Charge a PaymentIntent made.
pub fn made_objects(body: &Value, kind: Option<(&str, &str)>) -> Vec<Made> {
    let mut made = Vec::new();
    let error = &body["error"];
    let created = if error.is_object() {
        if let Some(charge) = charge_id(&error["charge"]) {
            made.push(Made::unpriced(charge));
        }
        &error["payment_intent"]
    } else {
        body
    };
    if let Some((object, prefix)) = kind
        && created["object"] == object
        && let Some(id) = created["id"].as_str().filter(|id| id.starts_with(prefix))
    {
        made.push(Made {
            id: id.to_owned(),
            amount: created["amount"].as_i64(),
            currency: created["currency"].as_str().map(str::to_ascii_lowercase),
        });
    }
    if created["object"] == "payment_intent"
        && let Some(charge) = charge_id(&created["latest_charge"])
    {
        made.push(Made::unpriced(charge));
    }
    made
}

/// The id of the object a successful create answered with.
pub fn created_id(body: &Value) -> Option<&str> {
    body["id"].as_str()
}

/// The `amount` and `currency` (lowercased) of an object Stripe answered with.
pub fn price(object: &Value) -> Option<(i64, String)> {
    match (object["amount"].as_i64(), object["currency"].as_str()) {
        (Some(amount), Some(currency)) => Some((amount, currency.to_ascii_lowercase())),
        _ => None,
    }
}
