//! Which fulfilments the checkout takes: a second one, one after the outcome
//! is decided, or (for the `fulfil` Update) one before the charge settled is
//! refused with the reason; the handlers in `mod.rs` call these.

use super::CheckoutWorkflow;
use super::types::CheckoutStep;
use crate::fulfilment::{Fulfilment, FulfilmentRequest};

impl CheckoutWorkflow {
    /// Why a fulfilment cannot be taken, if it cannot. Before the charge
    /// settles, the `fulfil` Update (`receipt`: its caller is told
    /// "recorded", and may ship) is refused; a signal, which tells its
    /// sender nothing, is held and counts only if the charge succeeds.
    pub(super) fn refusal(&self, receipt: bool) -> Option<String> {
        let status = &self.status;
        let payment_intent = status.payment_intent_id.as_deref().unwrap_or("-");
        let reason = status.refund_reason.as_deref().unwrap_or("-");
        match status.step {
            _ if self.fulfilment.is_some() => Some(format!(
                "a fulfilment was already received (ok: {})",
                self.fulfilment.as_ref().is_some_and(|f| f.ok)
            )),
            CheckoutStep::Charging | CheckoutStep::Reconciling | CheckoutStep::Settling
                if self.steady && receipt =>
            {
                Some(
                "not charged yet: the checkout takes a fulfilment once it is awaiting_fulfilment"
                    .to_owned(),
                )
            }
            CheckoutStep::Charging
            | CheckoutStep::Reconciling
            | CheckoutStep::Settling
            | CheckoutStep::AwaitingFulfilment => None,
            CheckoutStep::Refunding => Some(format!(
                "too late: the checkout is refunding {payment_intent} ({reason})"
            )),
            CheckoutStep::Compensated => Some(format!(
                "too late: the checkout was compensated by refund {} of {payment_intent} ({reason})",
                status.refund_id.as_deref().unwrap_or("-")
            )),
            CheckoutStep::Completed => Some("the checkout already completed".to_owned()),
            CheckoutStep::Failed => {
                Some("the charge failed: there is nothing to fulfil".to_owned())
            }
            CheckoutStep::OutcomeUnknown => Some(
                "the charge's outcome is unknown: an operator reconciles it with Stripe".to_owned(),
            ),
            CheckoutStep::CompensationFailed => Some(format!(
                "too late: the refund of {payment_intent} failed ({reason}); an operator refunds it"
            )),
            CheckoutStep::Cancelled => {
                Some("the checkout was cancelled before any charge".to_owned())
            }
        }
    }

    /// The fulfilment in `request`, if it is well formed and can be taken
    /// (`receipt`: for the `fulfil` Update, see [`Self::refusal`]).
    pub(super) fn accept(
        &self,
        request: &FulfilmentRequest,
        receipt: bool,
    ) -> Result<Fulfilment, String> {
        // (A run made by a reset gets its Updates again before it charges:
        // callers pass `receipt` false there, and they are held.)
        let fulfilment = request.parse(self.steady)?;
        match self.refusal(receipt) {
            Some(refusal) => Err(refusal),
            None => Ok(fulfilment),
        }
    }
}
