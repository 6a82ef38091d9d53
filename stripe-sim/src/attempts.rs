//! Charge attempts: the Charge a confirmation creates, and how the
//! PaymentIntent ends — succeeded, held for capture, or declined.

use serde_json::{Value, json};

use crate::account::{Account, payment_method_json};
use crate::cards::{Decline, TestMethod};
use crate::error::{StripeError, doc_url};
use crate::ids::new_id;
use crate::objects::{Charge, PaymentIntent, card_details, empty_billing_details, outcome};
use crate::state::Ctx;

/// A charge for `pi` with `method`: declined when `decline` is given.
pub fn new_charge(
    pi: &PaymentIntent,
    pm: &str,
    method: &TestMethod,
    decline: Option<&Decline>,
    three_d_secure: bool,
    ctx: &Ctx,
) -> Charge {
    let succeeded = decline.is_none();
    Charge {
        id: new_id("ch"),
        object: "charge",
        amount: pi.amount,
        amount_captured: 0,
        amount_refunded: 0,
        application: None,
        application_fee: None,
        application_fee_amount: pi.application_fee_amount,
        balance_transaction: None,
        billing_details: empty_billing_details(),
        calculated_statement_descriptor: Some(
            pi.statement_descriptor
                .clone()
                .unwrap_or_else(|| "STRIPE-SIM".to_owned()),
        ),
        captured: false,
        created: ctx.now(),
        currency: pi.currency.clone(),
        customer: pi.customer.clone(),
        description: pi.description.clone(),
        disputed: false,
        failure_balance_transaction: None,
        failure_code: decline.map(|d| d.code),
        failure_message: decline.map(|d| d.message),
        fraud_details: json!({}),
        livemode: false,
        metadata: pi.metadata.clone(),
        on_behalf_of: pi.on_behalf_of.clone(),
        outcome: outcome(decline),
        paid: succeeded,
        payment_intent: pi.id.clone(),
        payment_method: pm.to_owned(),
        payment_method_details: card_details(
            method,
            pi.amount,
            pi.incremental_authorization_requested() && pi.capture_method == "manual",
            three_d_secure,
        ),
        receipt_email: pi.receipt_email.clone(),
        receipt_number: None,
        receipt_url: None,
        refunded: false,
        review: None,
        shipping: pi.shipping.clone(),
        source: None,
        source_transfer: None,
        statement_descriptor: pi.statement_descriptor.clone(),
        statement_descriptor_suffix: pi.statement_descriptor_suffix.clone(),
        status: if succeeded { "succeeded" } else { "failed" },
        transfer_data: pi.transfer_data.clone(),
        transfer_group: pi.transfer_group.clone(),
    }
}

/// A card charge that goes through: succeeded, or held for manual capture.
pub fn settle_card(
    account: &mut Account,
    id: &str,
    pm: &str,
    method: &TestMethod,
    three_d_secure: bool,
    ctx: &Ctx,
) -> Result<(), StripeError> {
    let pi = account.payment_intent_mut(id, "intent")?;
    let mut charge = new_charge(pi, pm, method, None, three_d_secure, ctx);
    pi.latest_charge = Some(charge.id.clone());
    pi.next_action = None;
    if pi.capture_method == "manual" {
        pi.status = "requires_capture";
        pi.amount_capturable = pi.amount;
    } else {
        pi.status = "succeeded";
        pi.amount_received = pi.amount;
        charge.captured = true;
        charge.amount_captured = pi.amount;
    }
    account.charges.push(charge);
    Ok(())
}

/// Records a declined attempt and returns Stripe's 402 with the PaymentIntent.
pub fn decline_now(
    account: &mut Account,
    id: &str,
    pm: &str,
    method: &TestMethod,
    decline: &Decline,
    ctx: &Ctx,
) -> StripeError {
    let Ok(pi) = account.payment_intent_mut(id, "intent") else {
        return StripeError::resource_missing("intent", "payment_intent", id);
    };
    let charge = new_charge(pi, pm, method, Some(decline), false, ctx);
    pi.status = "requires_payment_method";
    pi.next_action = None;
    pi.latest_charge = Some(charge.id.clone());
    let payment_method = payment_method_json(pm);
    let mut last_payment_error = json!({
        "type": "card_error", "code": decline.code, "decline_code": decline.decline_code,
        "message": decline.message, "charge": charge.id, "doc_url": doc_url(decline.code),
        "payment_method": payment_method,
    });
    if let Some(param) = decline.param {
        last_payment_error["param"] = json!(param);
    }
    pi.last_payment_error = Some(last_payment_error);
    let charge_id = charge.id.clone();
    account.charges.push(charge);
    let pi_json = account
        .payment_intent_json(id, &[], ctx.version)
        .unwrap_or(Value::Null);
    StripeError::card_error(decline, &charge_id, payment_method_json(pm), pi_json)
}
