//! What happens to a PaymentIntent after it is created: capture, cancel,
//! update, increment_authorization, and (through `/_sim`) the customer's
//! 3-D Secure answer and a bank debit settling.

use serde_json::{Value, json};

use crate::account::Account;
use crate::attempts::settle_card;
use crate::cards::test_method;
use crate::error::StripeError;
use crate::params::Params;
use crate::payment_intents::{
    check_amount, check_currency, check_payment_method, payment_method_options, unexpected,
};
use crate::state::Ctx;

/// Validates `POST /v1/payment_intents/{id}/capture`.
pub fn validate_capture(params: &Params) -> Result<Option<i64>, StripeError> {
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
        return Err(unexpected(pi, message));
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
pub fn cancel(
    account: &mut Account,
    id: &str,
    reason: Option<String>,
    ctx: &Ctx,
) -> Result<(), StripeError> {
    let pi = account.payment_intent_mut(id, "intent")?;
    if !CANCELABLE.contains(&pi.status) {
        let message = format!(
            "You cannot cancel this PaymentIntent because it has a status of {}. Only a PaymentIntent with one of the following statuses may be canceled: {}.",
            pi.status,
            CANCELABLE.join(", ")
        );
        return Err(unexpected(pi, message));
    }
    pi.status = "canceled";
    pi.canceled_at = Some(ctx.now());
    pi.cancellation_reason = reason;
    pi.amount_capturable = 0;
    pi.next_action = None;
    Ok(())
}

/// Fields an update may change only before the payment is under way.
const BEFORE_PAYMENT: [&str; 7] = [
    "amount",
    "currency",
    "payment_method",
    "capture_method",
    "payment_method_options",
    "setup_future_usage",
    "allowed_payment_method_types",
];

/// `POST /v1/payment_intents/{id}`: changes what was given. Amount, currency,
/// method and capture only while it waits for a method, a confirmation or an
/// action; the descriptive fields (metadata, description, receipt_email, …) at
/// any time. A new payment method sends it back to `requires_confirmation`.
pub fn update(account: &mut Account, id: &str, params: &Params) -> Result<(), StripeError> {
    let pi = account.payment_intent_mut(id, "intent")?;
    let open = matches!(
        pi.status,
        "requires_payment_method" | "requires_confirmation" | "requires_action"
    );
    if !open
        && let Some(name) = params
            .names()
            .find(|n| BEFORE_PAYMENT.contains(n) || *n == "payment_method_types")
    {
        let message = format!(
            "You cannot update `{name}` on this PaymentIntent because it has a status of {}.",
            pi.status
        );
        return Err(unexpected(pi, message));
    }
    if let Some(amount) = params.integer("amount")? {
        pi.amount = check_amount(amount, "amount")?;
    }
    if let Some(currency) = check_currency(params)? {
        pi.currency = currency;
    }
    if params.raw("amount").is_some() || params.raw("currency").is_some() {
        crate::currencies::check_minimum(pi.amount, &pi.currency, "amount")?;
    }
    if let Some(pm) = check_payment_method(params)? {
        pi.payment_method = Some(pm);
        pi.status = "requires_confirmation";
        pi.next_action = None;
    }
    if let Some(method) = params.one_of(
        "capture_method",
        &["automatic", "automatic_async", "manual"],
    )? {
        pi.capture_method = method;
    }
    if let Some(options) = payment_method_options(params)? {
        pi.payment_method_options = options;
    }
    if let Some(usage) = params.one_of("setup_future_usage", &["on_session", "off_session"])? {
        pi.setup_future_usage = Some(usage);
    }
    if let Some(types) = params
        .list("allowed_payment_method_types")?
        .or(params.list("payment_method_types")?)
    {
        pi.payment_method_types = types;
        pi.automatic_payment_methods = None;
    }
    for (name, field) in [
        ("customer", &mut pi.customer),
        ("customer_account", &mut pi.customer_account),
        ("description", &mut pi.description),
        ("receipt_email", &mut pi.receipt_email),
        ("statement_descriptor", &mut pi.statement_descriptor),
        (
            "statement_descriptor_suffix",
            &mut pi.statement_descriptor_suffix,
        ),
        ("transfer_group", &mut pi.transfer_group),
    ] {
        // Stripe unsets a field given as an empty string.
        match params.raw(name) {
            Some(Value::String(s)) if s.is_empty() => *field = None,
            Some(_) => *field = params.string(name)?,
            None => {}
        }
    }
    if let Some(fee) = params.integer("application_fee_amount")? {
        pi.application_fee_amount = Some(fee);
    }
    if let Some(shipping) = params.raw("shipping") {
        pi.shipping = Some(shipping.clone());
    }
    if let Some(transfer_data) = params.raw("transfer_data") {
        pi.transfer_data = Some(transfer_data.clone());
    }
    if let Some(Value::Object(pairs)) = params.raw("metadata") {
        for (key, value) in pairs {
            match value.as_str() {
                Some("") => {
                    pi.metadata.remove(key);
                }
                Some(value) => {
                    pi.metadata.insert(key.clone(), value.to_owned());
                }
                None => {
                    return Err(StripeError::invalid(
                        "metadata",
                        "Invalid metadata: values must be strings",
                    ));
                }
            }
        }
    } else if let Some(Value::String(empty)) = params.raw("metadata")
        && empty.is_empty()
    {
        pi.metadata.clear();
    }
    Ok(())
}

/// Validates `POST /v1/payment_intents/{id}/increment_authorization`.
pub fn validate_increment(params: &Params) -> Result<i64, StripeError> {
    let amount = params
        .integer("amount")?
        .ok_or_else(|| StripeError::missing("amount"))?;
    check_amount(amount, "amount")
}

/// Raises the authorised amount of a held card payment that asked for it.
pub fn increment_authorization(
    account: &mut Account,
    id: &str,
    amount: i64,
    params: &Params,
) -> Result<(), StripeError> {
    let pi = account.payment_intent_mut(id, "intent")?;
    if pi.status != "requires_capture" {
        let message = format!(
            "This PaymentIntent's amount could not be updated because it has a status of {}. You may only increment the authorization of a PaymentIntent with one of the following statuses: requires_capture.",
            pi.status
        );
        return Err(unexpected(pi, message));
    }
    if !pi.incremental_authorization_requested() {
        return Err(StripeError::invalid_request_param(
            "amount",
            "This PaymentIntent is not eligible for incremental authorization. Request it with `payment_method_options[card][request_incremental_authorization]=if_available` when confirming.",
        ));
    }
    if amount < pi.amount {
        return Err(StripeError::invalid_request_param(
            "amount",
            format!(
                "The amount must be greater than or equal to the current amount ({}).",
                pi.amount
            ),
        ));
    }
    pi.amount = amount;
    pi.amount_capturable = amount;
    if let Some(description) = params.string("description")? {
        pi.description = Some(description);
    }
    for (key, value) in params.metadata()? {
        pi.metadata.insert(key, value);
    }
    let charge_id = pi.latest_charge.clone().unwrap_or_default();
    let charge = account.charge_mut(&charge_id, "charge")?;
    charge.amount = amount;
    charge.payment_method_details["card"]["amount_authorized"] = json!(amount);
    Ok(())
}

/// `/_sim`: the customer completes (or fails) 3-D Secure on a `requires_action` PaymentIntent.
pub fn authenticate(
    account: &mut Account,
    id: &str,
    succeed: bool,
    ctx: &Ctx,
) -> Result<(), StripeError> {
    let pi = account.payment_intent_mut(id, "intent")?;
    if pi.status != "requires_action" {
        return Err(unexpected(
            pi,
            format!(
                "PaymentIntent {id} has a status of {}, not requires_action.",
                pi.status
            ),
        ));
    }
    let pm = pi.payment_method.clone().unwrap_or_default();
    if succeed {
        let method = test_method(&pm)
            .ok_or_else(|| StripeError::resource_missing("payment_method", "PaymentMethod", &pm))?;
        return settle_card(account, id, &pm, &method, true, ctx);
    }
    pi.status = "requires_payment_method";
    pi.next_action = None;
    pi.last_payment_error = Some(json!({
        "type": "invalid_request_error", "code": "payment_intent_authentication_failure",
        "message": "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
        "payment_method": { "id": pm, "object": "payment_method" },
    }));
    Ok(())
}

/// `/_sim`: a `processing` PaymentIntent's debit settles, or fails.
pub fn settle(account: &mut Account, id: &str, succeed: bool) -> Result<(), StripeError> {
    let pi = account.payment_intent_mut(id, "intent")?;
    if pi.status != "processing" {
        return Err(unexpected(
            pi,
            format!(
                "PaymentIntent {id} has a status of {}, not processing.",
                pi.status
            ),
        ));
    }
    let charge_id = pi.latest_charge.clone().unwrap_or_default();
    if succeed {
        pi.status = "succeeded";
        pi.amount_received = pi.amount;
    } else {
        pi.status = "requires_payment_method";
        pi.last_payment_error = Some(json!({
            "type": "invalid_request_error", "code": "payment_intent_payment_attempt_failed",
            "message": "The latest payment attempt of this PaymentIntent has failed or been canceled, and the attached payment method has been removed. You can try confirming again with a new payment method.",
        }));
    }
    let charge = account.charge_mut(&charge_id, "charge")?;
    charge.status = if succeed { "succeeded" } else { "failed" };
    charge.paid = succeed;
    if !succeed {
        charge.amount_captured = 0;
        charge.captured = false;
        charge.failure_code = Some("insufficient_funds");
        charge.failure_message = Some("The bank account has insufficient funds.");
    }
    Ok(())
}
