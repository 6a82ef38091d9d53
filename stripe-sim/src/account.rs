//! The objects of one secret key: Stripe scopes every object to its account.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::error::StripeError;
use crate::idempotency::IdempotencyEntry;
use crate::objects::{Charge, PaymentIntent, Refund};

/// Everything created with one secret key.
#[derive(Debug, Default)]
pub struct Account {
    /// In creation order.
    pub payment_intents: Vec<PaymentIntent>,
    /// In creation order.
    pub charges: Vec<Charge>,
    /// In creation order.
    pub refunds: Vec<Refund>,
    /// Idempotency keys seen with this secret.
    pub idempotency: HashMap<String, IdempotencyEntry>,
}

impl Account {
    /// The PaymentIntent `id`, or 404 naming `param`.
    pub fn payment_intent_mut(
        &mut self,
        id: &str,
        param: &str,
    ) -> Result<&mut PaymentIntent, StripeError> {
        self.payment_intents
            .iter_mut()
            .find(|pi| pi.id == id)
            .ok_or_else(|| StripeError::resource_missing(param, "payment_intent", id))
    }

    /// The charge `id`, or 404 naming `param`.
    pub fn charge_mut(&mut self, id: &str, param: &str) -> Result<&mut Charge, StripeError> {
        self.charges
            .iter_mut()
            .find(|ch| ch.id == id)
            .ok_or_else(|| StripeError::resource_missing(param, "charge", id))
    }

    /// A PaymentIntent's JSON, with `latest_charge` expanded when asked.
    pub fn payment_intent_json(&self, id: &str, expand: &[String]) -> Value {
        let Some(pi) = self.payment_intents.iter().find(|pi| pi.id == id) else {
            return Value::Null;
        };
        let mut value = json!(pi);
        if expand.iter().any(|e| e == "latest_charge")
            && let Some(charge_id) = &pi.latest_charge
            && let Some(charge) = self.charges.iter().find(|ch| &ch.id == charge_id)
        {
            value["latest_charge"] = json!(charge);
        }
        value
    }
}
