//! Refunds: never more, in total, than was captured.

use std::collections::BTreeMap;

use serde_json::json;

use crate::account::Account;
use crate::error::StripeError;
use crate::ids::new_id;
use crate::objects::Refund;
use crate::params::Params;
use crate::state::Ctx;

/// What a refund is against.
#[derive(Debug, Clone)]
pub enum RefundTarget {
    /// `payment_intent=pi_…`: its latest charge.
    PaymentIntent(String),
    /// `charge=ch_…`.
    Charge(String),
}

/// A refund request that passed validation.
#[derive(Debug, Clone)]
pub struct NewRefund {
    target: RefundTarget,
    amount: Option<i64>,
    reason: Option<String>,
    metadata: BTreeMap<String, String>,
}

/// Validates `POST /v1/refunds`.
pub fn validate_create(params: &Params) -> Result<NewRefund, StripeError> {
    let target = match (params.string("payment_intent")?, params.string("charge")?) {
        (Some(pi), None) => RefundTarget::PaymentIntent(pi),
        (None, Some(charge)) => RefundTarget::Charge(charge),
        (Some(_), Some(_)) => {
            return Err(StripeError::invalid(
                "charge",
                "Provide only one of payment_intent or charge.",
            ));
        }
        (None, None) => {
            return Err(StripeError::invalid_with_code(
                "parameter_missing",
                Some("payment_intent"),
                "One of the following params should be provided for this request: payment_intent or charge.",
            ));
        }
    };
    let amount = params.integer("amount")?;
    if amount.is_some_and(|a| a < 1) {
        return Err(StripeError::invalid_with_code(
            "amount_too_small",
            Some("amount"),
            "Refund amount must be at least 1.",
        ));
    }
    Ok(NewRefund {
        target,
        amount,
        reason: params.one_of(
            "reason",
            &["duplicate", "fraudulent", "requested_by_customer"],
        )?,
        metadata: params.metadata()?,
    })
}

/// Refunds `amount` (default: all that remains) of a captured charge.
pub fn create(account: &mut Account, new: NewRefund, ctx: &Ctx) -> Result<String, StripeError> {
    let charge_id = match &new.target {
        RefundTarget::Charge(id) => id.clone(),
        RefundTarget::PaymentIntent(pi_id) => {
            let pi = account.payment_intent_mut(pi_id, "payment_intent")?;
            match (&pi.latest_charge, pi.status) {
                (Some(charge), "succeeded") => charge.clone(),
                _ => {
                    let message = format!(
                        "This PaymentIntent ({pi_id}) does not have a successful charge to refund (status {}).",
                        pi.status
                    );
                    let pi_json = json!(pi);
                    return Err(StripeError::unexpected_state(message, pi_json));
                }
            }
        }
    };
    let charge = account.charge_mut(&charge_id, "charge")?;
    if !charge.captured || charge.status != "succeeded" {
        return Err(StripeError::invalid_with_code(
            "charge_not_refundable",
            Some("charge"),
            format!("Charge {charge_id} has not been captured and cannot be refunded."),
        ));
    }
    let remaining = charge.amount_captured - charge.amount_refunded;
    if remaining == 0 {
        return Err(StripeError::invalid_with_code(
            "charge_already_refunded",
            Some("charge"),
            format!("Charge {charge_id} has already been refunded."),
        ));
    }
    let amount = new.amount.unwrap_or(remaining);
    if amount > remaining {
        return Err(StripeError::invalid_with_code(
            "amount_too_large",
            Some("amount"),
            format!(
                "Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})."
            ),
        ));
    }
    charge.amount_refunded += amount;
    charge.refunded = charge.amount_refunded == charge.amount_captured;
    // A bank debit's money goes back by a bank transfer, which takes days.
    let bank = crate::cards::test_method(&charge.payment_method)
        .is_some_and(|method| method.kind == "us_bank_account");
    let destination_details = if bank {
        json!({ "type": "us_bank_transfer", "us_bank_transfer": { "reference": null, "reference_status": "pending" } })
    } else {
        json!({ "type": "card", "card": { "reference": null, "reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund" } })
    };
    let refund = Refund {
        id: new_id("re"),
        object: "refund",
        amount,
        balance_transaction: None,
        charge: charge_id,
        created: ctx.now(),
        currency: charge.currency.clone(),
        customer: charge.customer.clone(),
        customer_account: None,
        destination_details: Some(destination_details),
        metadata: new.metadata,
        payment_intent: charge.payment_intent.clone(),
        payment_method: Some(charge.payment_method.clone()),
        reason: new.reason,
        receipt_number: None,
        source_transfer_reversal: None,
        status: if bank { "pending" } else { "succeeded" },
        failure_reason: None,
        transfer_reversal: None,
    };
    let id = refund.id.clone();
    account.refunds.push(refund);
    Ok(id)
}

/// `/_sim`: a `pending` refund's transfer arrives (`succeeded`), or fails
/// (`failed`, `failure_reason` `declined`, and its amount is no longer
/// refunded on the charge).
pub fn settle(account: &mut Account, id: &str, succeed: bool) -> Result<(), StripeError> {
    let refund = account
        .refunds
        .get_mut(id)
        .ok_or_else(|| StripeError::resource_missing("refund", "refund", id))?;
    if refund.status != "pending" {
        return Err(StripeError::invalid_with_code(
            "refund_not_pending",
            None,
            format!(
                "Refund {id} has a status of {}, not pending.",
                refund.status
            ),
        ));
    }
    if succeed {
        refund.status = "succeeded";
        return Ok(());
    }
    refund.status = "failed";
    refund.failure_reason = Some("declined");
    let (charge_id, amount) = (refund.charge.clone(), refund.amount);
    let charge = account.charge_mut(&charge_id, "charge")?;
    charge.amount_refunded -= amount;
    charge.refunded = false;
    Ok(())
}
