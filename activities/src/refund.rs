//! One attempt of `refund`: refund a PaymentIntent with a key that may only
//! create refunds of it, or (with `follow_refund_id`) read again a refund
//! this activity id made that Stripe answered `pending`.

use std::time::{Duration, SystemTime};

use keylease_workflows::contract::{RefundInput, RefundOutput};
use serde::Deserialize;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use crate::classify::{AttemptFailure, classify};
use crate::payments::{Attempt, PaymentActivities, REFUND_ENDPOINT, REFUND_READ_ENDPOINT};
use crate::scope::idempotency_key;
use crate::validate;

/// The fields of a Refund the activity returns.
#[derive(Debug, Deserialize)]
struct Refund {
    id: String,
    status: String,
    amount: i64,
    payment_intent: String,
    #[serde(default)]
    failure_reason: Option<String>,
}

impl PaymentActivities {
    pub(crate) async fn refund_attempt(
        &self,
        ctx: &ActivityContext,
        input: RefundInput,
    ) -> Result<RefundOutput, ActivityError> {
        validate::refund(&input)
            .map_err(|why| classify(&AttemptFailure::InvalidInput(why), ctx.info().attempt))?;
        let since = input
            .compensating_since_ms
            .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
        if since
            .and_then(|since| SystemTime::now().duration_since(since).ok())
            .is_some_and(|running| running > self.overdue_after)
        {
            self.metrics.refunds_overdue.inc();
            tracing::warn!(order_id = %input.order_id, payment_intent_id = %input.payment_intent_id, "compensation overdue: the refund is still being tried");
        }
        let attempt = Attempt::of(ctx, input.schedule_to_close_ms, self.max_ttl);
        if let Some(refund_id) = input.follow_refund_id.clone() {
            return self.follow_refund(ctx, &attempt, refund_id).await;
        }
        // Refunds move money back, never out: no spend is needed. The key
        // reaches the one PaymentIntent it refunds, nothing else.
        let request = attempt.key_request(
            0.0,
            &[REFUND_ENDPOINT],
            vec![input.payment_intent_id.clone()],
        );
        let form = validate::refund_form(&input, &attempt.workflow_id);
        // The PaymentIntent id is unique per charge: no checkout id is needed.
        let key = idempotency_key(
            "refund",
            None,
            &attempt.workflow_id,
            &attempt.activity_id,
            &format!("{}:{}", input.order_id, input.payment_intent_id),
        );
        let stripe = self.stripe.clone();
        let (refund, key_id): (Refund, String) = self
            .with_key(ctx, request, |token| async move {
                stripe
                    .post_form(&token, "/v1/refunds", &form, &key)
                    .await
                    .map_err(AttemptFailure::Call)
            })
            .await?;
        tracing::info!(refund_id = %refund.id, payment_intent_id = %refund.payment_intent, status = %refund.status, key_id = %key_id, "refunded");
        Ok(refund_output(refund, key_id, attempt.attempt))
    }

    /// Reads `refund_id`, a refund this activity id made, with a key that
    /// may only read refunds its label made: where a `pending` one stands.
    async fn follow_refund(
        &self,
        ctx: &ActivityContext,
        attempt: &Attempt,
        refund_id: String,
    ) -> Result<RefundOutput, ActivityError> {
        if !self.refund_reads {
            let why = format!(
                "this worker's broker role does not allow {REFUND_READ_ENDPOINT}: a pending refund cannot be followed (run `keylease-worker role setup` again)"
            );
            return Err(classify(
                &AttemptFailure::InvalidInput(why),
                attempt.attempt,
            ));
        }
        let request = attempt.key_request(0.0, &[REFUND_READ_ENDPOINT], Vec::new());
        let stripe = self.stripe.clone();
        let path = format!("/v1/refunds/{refund_id}");
        let (refund, key_id): (Refund, String) = self
            .with_key(ctx, request, |token| async move {
                stripe
                    .get(&token, &path, &[])
                    .await
                    .map_err(AttemptFailure::Call)
            })
            .await?;
        tracing::info!(refund_id = %refund.id, status = %refund.status, key_id = %key_id, "refund read");
        Ok(refund_output(refund, key_id, attempt.attempt))
    }
}

fn refund_output(refund: Refund, key_id: String, attempt: u32) -> RefundOutput {
    RefundOutput {
        refund_id: refund.id,
        payment_intent_id: refund.payment_intent,
        amount: refund.amount,
        status: refund.status,
        key_id,
        attempt,
        failure_reason: refund.failure_reason,
    }
}
