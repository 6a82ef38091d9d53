//! One attempt of `reconcile`: what did a checkout's charge do at Stripe?
//!
//! The key is read-only: it may call `GET /v1/payment_intents/search`, named
//! exactly (the broker refuses search to a `*`), and nothing else, and it
//! sees only PaymentIntents whose metadata names this checkout
//! (`allowed_metadata`: the broker filters the results). Every field it
//! needs comes in the search results themselves.
//!
//! | search finds | the attempt |
//! |---|---|
//! | a PaymentIntent `succeeded` or `requires_capture` | `Charged` |
//! | one still on its way (`processing`, …) | fails `ChargeProcessing`, retried |
//! | only ones that hold no money | `NotCharged` |
//! | nothing, within the search window | fails `NotYetIndexed`, retried |
//! | nothing, after it | `NotCharged` |

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use keylease_workflows::contract::{ReconcileInput, ReconcileOutput};
use serde::Deserialize;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use crate::charge::{Standing, standing};
use crate::classify::{AttemptFailure, classify};
use crate::payments::{Attempt, PaymentActivities};
use crate::validate::check_checkout_id;

/// The one endpoint the reconcile key may call.
pub const SEARCH_ENDPOINT: &str = "GET /v1/payment_intents/search";

#[derive(Debug, Deserialize)]
struct Found {
    id: String,
    status: String,
}

#[derive(Debug, Deserialize)]
struct SearchResult {
    data: Vec<Found>,
}

/// What the search results say, given how long ago `reconcile` was scheduled.
fn verdict(
    found: Vec<Found>,
    since_scheduled: Duration,
    window: Duration,
) -> Result<ReconcileOutput, AttemptFailure> {
    if let Some(charged) = found
        .iter()
        .find(|pi| matches!(standing(&pi.status), Standing::Charged))
    {
        return Ok(ReconcileOutput::Charged {
            payment_intent_id: charged.id.clone(),
            status: charged.status.clone(),
        });
    }
    // 3-D Secure that was never completed charged nothing, as a failed payment did.
    if let Some(unsettled) = found
        .iter()
        .find(|pi| matches!(standing(&pi.status), Standing::Processing))
    {
        return Err(AttemptFailure::Unsettled {
            payment_intent_id: unsettled.id.clone(),
            status: unsettled.status.clone(),
        });
    }
    if found.is_empty() && since_scheduled < window {
        return Err(AttemptFailure::NotYetIndexed);
    }
    Ok(ReconcileOutput::NotCharged {
        found: found.into_iter().map(|pi| (pi.id, pi.status)).collect(),
    })
}

impl PaymentActivities {
    pub(crate) async fn reconcile_attempt(
        &self,
        ctx: &ActivityContext,
        input: ReconcileInput,
    ) -> Result<ReconcileOutput, ActivityError> {
        let attempt_number = ctx.info().attempt;
        check_checkout_id(&input.checkout_id)
            .map_err(|why| classify(&AttemptFailure::InvalidInput(why), attempt_number))?;
        let attempt = Attempt::of(ctx, input.schedule_to_close_ms, self.max_ttl);
        let mut request = attempt.key_request(0.0, &[SEARCH_ENDPOINT], Vec::new());
        // The broker shows a key only the objects it may see: this one sees
        // the PaymentIntents of this checkout, whichever attempt made them.
        request.allowed_metadata =
            BTreeMap::from([("checkout_id".to_owned(), input.checkout_id.clone())]);
        let query = format!("metadata['checkout_id']:'{}'", input.checkout_id);
        let since_scheduled = ctx
            .info()
            .scheduled_time
            .and_then(|at| SystemTime::now().duration_since(at).ok())
            .unwrap_or_default();
        let window = Duration::from_millis(input.search_window_ms);
        let stripe = self.stripe.clone();
        let (output, key_id) = self
            .with_key(ctx, request, |token| async move {
                let result: SearchResult = stripe
                    .get(
                        &token,
                        "/v1/payment_intents/search",
                        &[("query", query.as_str()), ("limit", "10")],
                    )
                    .await
                    .map_err(AttemptFailure::Call)?;
                verdict(result.data, since_scheduled, window)
            })
            .await?;
        tracing::info!(order_id = %input.order_id, checkout_id = %input.checkout_id, key_id = %key_id, outcome = ?output, "reconciled");
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(pairs: &[(&str, &str)]) -> Vec<Found> {
        pairs
            .iter()
            .map(|(id, status)| Found {
                id: (*id).to_owned(),
                status: (*status).to_owned(),
            })
            .collect()
    }

    #[test]
    fn a_charge_found_is_charged_and_nothing_is_not_until_the_window_passes() {
        let (early, late, window) = (
            Duration::from_secs(1),
            Duration::from_secs(100),
            Duration::from_secs(90),
        );
        assert!(matches!(
            verdict(found(&[("pi_1", "succeeded")]), early, window),
            Ok(ReconcileOutput::Charged { .. })
        ));
        assert!(matches!(
            verdict(found(&[]), early, window),
            Err(AttemptFailure::NotYetIndexed)
        ));
        assert_eq!(
            verdict(found(&[]), late, window).ok(),
            Some(ReconcileOutput::NotCharged { found: vec![] })
        );
        assert!(matches!(
            verdict(found(&[("pi_1", "processing")]), late, window),
            Err(AttemptFailure::Unsettled { .. })
        ));
        assert!(matches!(
            verdict(found(&[("pi_1", "requires_payment_method")]), early, window),
            Ok(ReconcileOutput::NotCharged { .. })
        ));
        assert!(check_checkout_id("0190a8c3-7f2e-7c1a-9d1e-1f2a3b4c5d6e").is_ok());
        assert!(check_checkout_id("x' OR status:'succeeded").is_err());
    }
}
