//! PaymentIntents: create, retrieve, confirm, capture, cancel, each only from
//! the statuses Stripe allows.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::account::Account;
use crate::error::StripeError;
use crate::ids::{new_id, now};
use crate::objects::{CardOutcome, Charge, PaymentIntent, card_outcome};
use crate::params::Params;

/// Largest amount Stripe accepts (in minor units, eight digits).
const MAX_AMOUNT: i64 = 99_999_999;

/// A create request that passed validation.
#[derive(Debug, Clone)]
pub struct NewPaymentIntent {
    amount: i64,
    currency: String,
    payment_method: Option<String>,
    confirm: bool,
    capture_method: String,
    customer: Option<String>,
    description: Option<String>,
    metadata: BTreeMap<String, String>,
}

/// Checks a payment method names a test card; `None` passes.
fn check_payment_method(payment_method: Option<String>) -> Result<Option<String>, StripeError> {
    match payment_method {
        Some(pm) if card_outcome(&pm).is_none() => Err(StripeError::resource_missing(
            "payment_method",
            "PaymentMethod",
            &pm,
        )),
        other => Ok(other),
    }
}

/// Validates `POST /v1/payment_intents`.
pub fn validate_create(params: &Params) -> Result<NewPaymentIntent, StripeError> {
    params.allow_only(&[
        "amount",
        "currency",
        "payment_method",
        "confirm",
        "capture_method",
        "customer",
        "description",
        "metadata",
    ])?;
    let amount = params
        .integer("amount")?
        .ok_or_else(|| StripeError::missing("amount"))?;
    if amount < 1 {
        return Err(StripeError::invalid_with_code(
            "amount_too_small",
            Some("amount"),
            "Amount must be at least 1.",
        ));
    }
    if amount > MAX_AMOUNT {
        return Err(StripeError::invalid_with_code(
            "amount_too_large",
            Some("amount"),
            format!("Amount must be no more than {MAX_AMOUNT}."),
        ));
    }
    let currency = params.required_string("currency")?.to_ascii_lowercase();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(StripeError::invalid(
            "currency",
            format!("Invalid currency: {currency}"),
        ));
    }
    Ok(NewPaymentIntent {
        amount,
        currency,
        payment_method: check_payment_method(params.string("payment_method")?)?,
        confirm: params.boolean("confirm")?.unwrap_or(false),
        capture_method: params
            .one_of(
                "capture_method",
                &["automatic", "automatic_async", "manual"],
            )?
            .map(|m| {
                if m == "manual" {
                    m
                } else {
                    "automatic".to_owned()
                }
            })
            .unwrap_or_else(|| "automatic".to_owned()),
        customer: params.string("customer")?,
        description: params.string("description")?,
        metadata: params.metadata()?,
    })
}

/// Creates the PaymentIntent, confirming it when asked.
pub fn create(account: &mut Account, new: NewPaymentIntent) -> Result<String, StripeError> {
    let id = new_id("pi");
    account.payment_intents.push(PaymentIntent {
        client_secret: format!("{id}_secret_{}", &new_id("s")[2..]),
        id: id.clone(),
        object: "payment_intent",
        amount: new.amount,
        amount_capturable: 0,
        amount_received: 0,
        capture_method: new.capture_method,
        canceled_at: None,
        cancellation_reason: None,
        confirmation_method: "automatic",
        created: now(),
        currency: new.currency,
        customer: new.customer,
        description: new.description,
        last_payment_error: None,
        latest_charge: None,
        livemode: false,
        metadata: new.metadata,
        status: if new.payment_method.is_some() {
            "requires_confirmation"
        } else {
            "requires_payment_method"
        },
        payment_method: new.payment_method,
        payment_method_types: vec!["card"],
    });
    if new.confirm {
        confirm(account, &id, None, &[])?;
    }
    Ok(id)
}

/// Validates `POST /v1/payment_intents/{id}/confirm`; returns the payment method given, if any.
pub fn validate_confirm(params: &Params) -> Result<Option<String>, StripeError> {
    params.allow_only(&["payment_method"])?;
    check_payment_method(params.string("payment_method")?)
}

/// Confirms: charges the card, which succeeds, waits for capture, or is declined.
pub fn confirm(
    account: &mut Account,
    id: &str,
    payment_method: Option<String>,
    expand: &[String],
) -> Result<(), StripeError> {
    let pi = account.payment_intent_mut(id, "intent")?;
    if !matches!(
        pi.status,
        "requires_payment_method" | "requires_confirmation"
    ) {
        let message = format!(
            "You cannot confirm this PaymentIntent because it has a status of {}.",
            pi.status
        );
        let pi_json = json!(pi);
        return Err(StripeError::unexpected_state(message, pi_json));
    }
    if payment_method.is_some() {
        pi.payment_method = payment_method;
    }
    let Some(pm) = pi.payment_method.clone() else {
        let message =
            "You cannot confirm this PaymentIntent because it's missing a payment method.";
        let pi_json = json!(pi);
        return Err(StripeError::unexpected_state(message, pi_json));
    };
    let outcome = card_outcome(&pm).unwrap_or(CardOutcome::Declined("generic_decline"));
    let charge_id = new_id("ch");
    let manual = pi.capture_method == "manual";
    let succeeded = outcome == CardOutcome::Succeeds;
    let captured = succeeded && !manual;
    pi.latest_charge = Some(charge_id.clone());
    let charge = Charge {
        id: charge_id.clone(),
        object: "charge",
        amount: pi.amount,
        amount_captured: if captured { pi.amount } else { 0 },
        amount_refunded: 0,
        captured,
        created: now(),
        currency: pi.currency.clone(),
        failure_code: (!succeeded).then_some("card_declined"),
        livemode: false,
        paid: succeeded,
        payment_intent: pi.id.clone(),
        payment_method: pm.clone(),
        refunded: false,
        status: if succeeded { "succeeded" } else { "failed" },
    };
    match outcome {
        CardOutcome::Succeeds if manual => {
            pi.status = "requires_capture";
            pi.amount_capturable = pi.amount;
        }
        CardOutcome::Succeeds => {
            pi.status = "succeeded";
            pi.amount_received = pi.amount;
        }
        CardOutcome::Declined(decline_code) => {
            let message = if decline_code == "insufficient_funds" {
                "Your card has insufficient funds."
            } else {
                "Your card was declined."
            };
            pi.status = "requires_payment_method";
            pi.last_payment_error = Some(json!({
                "type": "card_error", "code": "card_declined", "decline_code": decline_code,
                "message": message, "charge": charge_id, "payment_method": {"id": pm, "object": "payment_method"},
            }));
            account.charges.push(charge);
            let pi_json = account.payment_intent_json(id, expand);
            return Err(StripeError::card_declined(decline_code, message, pi_json));
        }
    }
    account.charges.push(charge);
    Ok(())
}

/// Validates `POST /v1/payment_intents/{id}/capture`.
pub fn validate_capture(params: &Params) -> Result<Option<i64>, StripeError> {
    params.allow_only(&["amount_to_capture"])?;
    params.integer("amount_to_capture")
}

/// Captures a `requires_capture` PaymentIntent, in full or in part.
pub fn capture(
    account: &mut Account,
    id: &str,
    amount_to_capture: Option<i64>,
) -> Result<(), StripeError> {
    let pi = account.payment_intent_mut(id, "intent")?;
    if pi.status != "requires_capture" {
        let message = format!(
            "This PaymentIntent could not be captured because it has a status of {}. Only a PaymentIntent with one of the following statuses may be captured: requires_capture.",
            pi.status
        );
        let pi_json = json!(pi);
        return Err(StripeError::unexpected_state(message, pi_json));
    }
    let amount = amount_to_capture.unwrap_or(pi.amount_capturable);
    if amount < 1 || amount > pi.amount_capturable {
        return Err(StripeError::invalid_with_code(
            "amount_too_large",
            Some("amount_to_capture"),
            format!(
                "amount_to_capture must be from 1 to {}.",
                pi.amount_capturable
            ),
        ));
    }
    pi.status = "succeeded";
    pi.amount_received = amount;
    pi.amount_capturable = 0;
    let charge_id = pi.latest_charge.clone().unwrap_or_default();
    let charge = account.charge_mut(&charge_id, "charge")?;
    charge.captured = true;
    charge.amount_captured = amount;
    Ok(())
}

/// Statuses from which Stripe lets a PaymentIntent be cancelled.
const CANCELABLE: [&str; 5] = [
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
];

/// Validates `POST /v1/payment_intents/{id}/cancel`.
pub fn validate_cancel(params: &Params) -> Result<Option<String>, StripeError> {
    params.allow_only(&["cancellation_reason"])?;
    params.one_of(
        "cancellation_reason",
        &[
            "duplicate",
            "fraudulent",
            "requested_by_customer",
            "abandoned",
        ],
    )
}

/// Cancels a PaymentIntent that has not succeeded.
pub fn cancel(account: &mut Account, id: &str, reason: Option<String>) -> Result<(), StripeError> {
    let pi = account.payment_intent_mut(id, "intent")?;
    if !CANCELABLE.contains(&pi.status) {
        let message = format!(
            "You cannot cancel this PaymentIntent because it has a status of {}. Only a PaymentIntent with one of the following statuses may be canceled: {}.",
            pi.status,
            CANCELABLE.join(", ")
        );
        let pi_json = json!(pi);
        return Err(StripeError::unexpected_state(message, pi_json));
    }
    pi.status = "canceled";
    pi.canceled_at = Some(now());
    pi.cancellation_reason = reason;
    pi.amount_capturable = 0;
    Ok(())
}

/// The PaymentIntent's JSON, or 404.
pub fn retrieve(account: &Account, id: &str, expand: &[String]) -> Result<Value, StripeError> {
    match account.payment_intent_json(id, expand) {
        Value::Null => Err(StripeError::resource_missing(
            "intent",
            "payment_intent",
            id,
        )),
        value => Ok(value),
    }
}
