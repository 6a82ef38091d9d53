//! The objects of one secret key (Stripe scopes every object to its account),
//! and their JSON with `expand[]` applied.

use serde_json::{Value, json};

use crate::error::StripeError;
use crate::idempotency::IdempotencyTable;
use crate::objects::{Charge, PaymentIntent, Refund, Store, list};
use crate::version::ApiVersion;

/// Refunds a charge embeds: the most recent.
const EMBEDDED_REFUNDS: usize = 10;

/// Everything created with one secret key.
#[derive(Debug, Default)]
pub struct Account {
    /// In creation order.
    pub payment_intents: Store<PaymentIntent>,
    /// In creation order.
    pub charges: Store<Charge>,
    /// In creation order.
    pub refunds: Store<Refund>,
    /// Idempotency keys seen with this secret.
    pub idempotency: IdempotencyTable,
}

/// What an object may expand, by Stripe's field names.
const EXPANDABLE: [(&str, &str); 6] = [
    ("payment_intent", "latest_charge"),
    ("payment_intent", "payment_method"),
    ("charge", "payment_intent"),
    ("charge", "refunds"),
    ("refund", "charge"),
    ("refund", "payment_intent"),
];

/// The object an expandable field expands to.
fn expands_to(field: &str) -> &str {
    match field {
        "latest_charge" => "charge",
        "refunds" => "refund",
        other => other,
    }
}

/// Refuses an `expand[]` path the object cannot expand, as Stripe does;
/// a nested path (`latest_charge.refunds`) is checked field by field, at
/// most four deep.
pub fn check_expand(object: &str, expand: &[String]) -> Result<(), StripeError> {
    for path in expand {
        let refused = || {
            StripeError::invalid_request_param(
                "expand",
                format!("This property cannot be expanded ({path})."),
            )
        };
        let fields: Vec<&str> = path
            .strip_prefix("data.")
            .unwrap_or(path)
            .split('.')
            .collect();
        if fields.len() > 4 {
            return Err(refused());
        }
        let mut at = object;
        for field in fields {
            if !EXPANDABLE.contains(&(at, field)) {
                return Err(refused());
            }
            at = expands_to(field);
        }
    }
    Ok(())
}

/// The path without a list's `data.` prefix.
fn unlisted(path: &str) -> &str {
    path.strip_prefix("data.").unwrap_or(path)
}

/// Whether `expand` expands `field` (itself, or something inside it).
fn wants(expand: &[String], field: &str) -> bool {
    expand.iter().map(|e| unlisted(e)).any(|e| {
        e == field
            || e.strip_prefix(field)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// What `expand` expands inside `field`: `latest_charge.refunds` gives `refunds`.
fn inside(expand: &[String], field: &str) -> Vec<String> {
    expand
        .iter()
        .filter_map(|e| unlisted(e).strip_prefix(field)?.strip_prefix('.'))
        .map(str::to_owned)
        .collect()
}

impl Account {
    /// The PaymentIntent `id`, or 404 naming `param`.
    pub fn payment_intent_mut(
        &mut self,
        id: &str,
        param: &str,
    ) -> Result<&mut PaymentIntent, StripeError> {
        self.payment_intents
            .get_mut(id)
            .ok_or_else(|| StripeError::resource_missing(param, "payment_intent", id))
    }

    /// The charge `id`, or 404 naming `param`.
    pub fn charge_mut(&mut self, id: &str, param: &str) -> Result<&mut Charge, StripeError> {
        self.charges
            .get_mut(id)
            .ok_or_else(|| StripeError::resource_missing(param, "charge", id))
    }

    /// A PaymentIntent's JSON at `version` with `expand` applied, or 404.
    pub fn payment_intent_json(
        &self,
        id: &str,
        expand: &[String],
        version: ApiVersion,
    ) -> Result<Value, StripeError> {
        let pi = self
            .payment_intents
            .get(id)
            .ok_or_else(|| StripeError::resource_missing("intent", "payment_intent", id))?;
        let mut value = json!(pi);
        if wants(expand, "latest_charge")
            && let Some(charge_id) = &pi.latest_charge
        {
            value["latest_charge"] =
                self.charge_json(charge_id, &inside(expand, "latest_charge"), version)?;
        }
        if wants(expand, "payment_method")
            && let Some(pm) = &pi.payment_method
        {
            value["payment_method"] = payment_method_json(pm);
        }
        Ok(value)
    }

    /// A charge's JSON at `version` with `expand` applied, or 404. Its
    /// refunds are listed before 2022-11-15, and after only when expanded.
    pub fn charge_json(
        &self,
        id: &str,
        expand: &[String],
        version: ApiVersion,
    ) -> Result<Value, StripeError> {
        let charge = self
            .charges
            .get(id)
            .ok_or_else(|| StripeError::resource_missing("charge", "charge", id))?;
        let mut value = json!(charge);
        // Stripe: "The 10 most recent refunds are always available by
        // default on the Charge object"; more are a page further.
        if version.charge_embeds_refunds() || wants(expand, "refunds") {
            let mut refunds = self.refunds.iter().rev().filter(|r| r.charge == id);
            let page: Vec<Value> = refunds
                .by_ref()
                .take(EMBEDDED_REFUNDS)
                .map(|r| json!(r))
                .collect();
            let has_more = refunds.next().is_some();
            value["refunds"] = list(&format!("/v1/charges/{id}/refunds"), page, has_more);
        }
        if wants(expand, "payment_intent") {
            value["payment_intent"] = self.payment_intent_json(
                &charge.payment_intent,
                &inside(expand, "payment_intent"),
                version,
            )?;
        }
        Ok(value)
    }

    /// A refund's JSON at `version` with `expand` applied, or 404.
    pub fn refund_json(
        &self,
        id: &str,
        expand: &[String],
        version: ApiVersion,
    ) -> Result<Value, StripeError> {
        let refund = self
            .refunds
            .get(id)
            .ok_or_else(|| StripeError::resource_missing("refund", "refund", id))?;
        let mut value = json!(refund);
        if wants(expand, "charge") {
            value["charge"] =
                self.charge_json(&refund.charge, &inside(expand, "charge"), version)?;
        }
        if wants(expand, "payment_intent") {
            value["payment_intent"] = self.payment_intent_json(
                &refund.payment_intent,
                &inside(expand, "payment_intent"),
                version,
            )?;
        }
        Ok(value)
    }
}

/// A test PaymentMethod as `expand[]=payment_method` (and a card error) shows it.
pub fn payment_method_json(id: &str) -> Value {
    let Some(method) = crate::cards::test_method(id) else {
        return json!(id);
    };
    let mut value = json!({
        "id": id, "object": "payment_method", "type": method.kind, "livemode": false,
        "created": 0, "customer": null, "metadata": {},
        "billing_details": crate::objects::empty_billing_details(),
    });
    value[method.kind] = if method.kind == "card" {
        // A PaymentMethod's card, not a charge's `payment_method_details.card`.
        json!({
            "brand": method.brand,
            "checks": { "address_line1_check": null, "address_postal_code_check": null, "cvc_check": "unchecked" },
            "country": "US", "display_brand": method.brand, "exp_month": 12, "exp_year": 2034,
            "fingerprint": format!("sim{}", method.last4), "funding": method.funding,
            "generated_from": null, "last4": method.last4,
            "networks": { "available": [method.brand], "preferred": null },
            "regulated_status": "unregulated",
            "three_d_secure_usage": { "supported": true }, "wallet": null,
        })
    } else {
        crate::objects::card_details(&method, 0, false, false)[method.kind].clone()
    };
    value
}
