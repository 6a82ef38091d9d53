//! The checkout's steps that record their own progress in its `status`:
//! asking Stripe about a charge (`reconciling`, `settling`), looking up an
//! earlier run's charge after a reset, and the compensation's rounds. The
//! run in `mod.rs` calls them; the reads and rounds themselves are in
//! `reconciling` and `compensation`, which never touch the state.

use temporalio_sdk::{WorkflowContext, WorkflowResult};

use super::charging::{Charged, UnknownCharge};
use super::compensation::{self, Progress};
use super::reconciling::{self, Reconciled};
use super::types::{CheckoutInput, CheckoutOutcome, CheckoutStep};
use super::{CheckoutWorkflow, SETTLE_PATCH};
use crate::policy::CheckoutPolicy;

impl CheckoutWorkflow {
    /// Asks Stripe what a charge of unknown outcome did (`reconcile`,
    /// status `reconciling`) and, under [`SETTLE_PATCH`], follows a payment
    /// still `processing` until it settles (status `settling`).
    pub(super) async fn ask_stripe(
        ctx: &mut WorkflowContext<Self>,
        input: &CheckoutInput,
        policy: &CheckoutPolicy,
        unknown: UnknownCharge,
        began: Option<std::time::SystemTime>,
        steady: bool,
    ) -> WorkflowResult<Charged> {
        ctx.state_mut(|s| s.status.step = CheckoutStep::Reconciling);
        let settles = steady && ctx.patched(SETTLE_PATCH);
        let processing = if settles && unknown.processing() {
            unknown
        } else {
            match reconciling::reconcile(ctx, input, policy, unknown, began, settles).await? {
                Reconciled::Settled(charged) => return Ok(charged),
                Reconciled::Processing(unknown) => unknown,
            }
        };
        ctx.state_mut(|s| s.status.step = CheckoutStep::Settling);
        reconciling::settle(ctx, input, policy, processing, began).await
    }

    /// Looks up, for a run that is not the first of its chain, a charge an
    /// earlier run made ([`reconciling::prior`]); under [`SETTLE_PATCH`], one
    /// still `processing` is followed until it settles (status `settling`).
    pub(super) async fn look_up_prior(
        ctx: &mut WorkflowContext<Self>,
        input: &CheckoutInput,
        policy: &CheckoutPolicy,
        began: Option<std::time::SystemTime>,
    ) -> WorkflowResult<Option<Charged>> {
        if !ctx.patched(SETTLE_PATCH) {
            return reconciling::prior(ctx, input, policy, began).await;
        }
        match reconciling::prior_or_processing(ctx, input, policy, began).await? {
            Ok(prior) => Ok(prior),
            Err(processing) => {
                ctx.state_mut(|s| s.status.step = CheckoutStep::Settling);
                reconciling::settle(ctx, input, policy, processing, began)
                    .await
                    .map(Some)
            }
        }
    }

    /// Refunds `payment_intent_id` in rounds until Stripe answers (see
    /// [`compensation`]); `status` shows the rounds and the last error.
    pub(super) async fn compensate(
        ctx: &mut WorkflowContext<Self>,
        input: &CheckoutInput,
        policy: &CheckoutPolicy,
        payment_intent_id: String,
        reason: String,
        began: Option<std::time::SystemTime>,
    ) -> WorkflowResult<CheckoutOutcome> {
        let report = |s: &mut Self, progress: Progress| match progress {
            Progress::Round(round) => s.status.refund_rounds = round,
            Progress::Retrying(why) => s.status.refund_last_error = Some(why),
            Progress::Pending(refund_id) => {
                s.status.refund_last_error = Some(format!(
                    "refund {refund_id} is pending at Stripe: followed until it settles"
                ));
                s.status.refund_id = Some(refund_id);
            }
            Progress::Refunded(refund_id) => {
                s.status.step = CheckoutStep::Compensated;
                s.status.refund_id = Some(refund_id);
                s.status.refund_last_error = None;
            }
            Progress::Failed { refund_id, why } => {
                s.status.step = CheckoutStep::CompensationFailed;
                s.status.refund_id = refund_id;
                s.status.refund_last_error = Some(why);
            }
        };
        compensation::refund_until_answered(
            ctx,
            input,
            policy,
            payment_intent_id,
            reason,
            began,
            report,
        )
        .await
    }
}
