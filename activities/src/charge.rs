//! One attempt of `charge`: create and confirm the PaymentIntent, then follow
//! it until it holds the money or never will.
//!
//! | status after the create | the attempt |
//! |---|---|
//! | `succeeded`, `requires_capture` | succeeds: charged |
//! | `processing` | polls it with the same key until it settles, is cancelled, or the attempt nears its deadline (then `ChargeProcessing`, retried) |
//! | `requires_action` (3-D Secure) | cancels the PaymentIntent and fails `AuthenticationRequired`: nobody can authenticate for an agent |
//! | `requires_payment_method`, `canceled`, `requires_confirmation` | fails `PaymentFailed`: nothing charged |

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use keylease_workflows::contract::{ChargeInput, ChargeOutput};
use secrecy::SecretString;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use crate::classify::{AttemptFailure, classify};
use crate::order;
use crate::payments::{Attempt, PaymentActivities};
use crate::reconcile::{LIST_ENDPOINT, SEARCH_ENDPOINT};
use crate::scope::{derived_key, idempotency_key, order_pair};
use crate::standing::{PaymentIntent, Standing, standing};
use crate::stripe_client::StripeClient;
use crate::validate;

/// What the charge key may call: create, read (to poll) and cancel (a 3-D
/// Secure PaymentIntent) PaymentIntents. The broker lets it reach only those
/// its own label created.
pub const CHARGE_ENDPOINTS: [&str; 3] = [
    "POST /v1/payment_intents",
    "GET /v1/payment_intents/*",
    "POST /v1/payment_intents/*/cancel",
];

/// How often a `processing` PaymentIntent is read again.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// Whether the attempt has time for one more poll before its deadline.
fn time_for_another_poll(ctx: &ActivityContext) -> bool {
    ctx.info().deadline.is_none_or(|deadline| {
        deadline
            .duration_since(SystemTime::now())
            .is_ok_and(|left| left > POLL_EVERY * 3)
    })
}

/// Follows a created PaymentIntent until it holds the money or never will.
async fn follow(
    stripe: &StripeClient,
    token: &SecretString,
    ctx: &ActivityContext,
    mut intent: PaymentIntent,
    idempotency_key: &str,
) -> Result<PaymentIntent, AttemptFailure> {
    let after_create = |id: &str| {
        let id = id.to_owned();
        move |error| AttemptFailure::AfterCreate {
            payment_intent_id: id,
            error: Box::new(error),
        }
    };
    loop {
        match standing(&intent.status) {
            Standing::Charged => return Ok(intent),
            Standing::NotCharged => {
                return Err(AttemptFailure::PaymentFailed {
                    payment_intent_id: intent.id,
                    status: intent.status,
                });
            }
            Standing::NeedsAuthentication => {
                let path = format!("/v1/payment_intents/{}/cancel", intent.id);
                let cancel_key = derived_key(idempotency_key, "cancel");
                let cancelled: PaymentIntent = stripe
                    .post_form(token, &path, &[], &cancel_key)
                    .await
                    .map_err(after_create(&intent.id))?;
                tracing::info!(payment_intent_id = %cancelled.id, status = %cancelled.status, "3-D Secure required: PaymentIntent cancelled");
                return Err(AttemptFailure::AuthenticationRequired {
                    payment_intent_id: cancelled.id,
                });
            }
            Standing::Processing => {
                // A cancelled attempt stops polling (a GET changes nothing); so does one near its end.
                if ctx.is_cancelled() || !time_for_another_poll(ctx) {
                    return Err(AttemptFailure::Unsettled {
                        payment_intent_id: intent.id,
                        status: intent.status,
                    });
                }
                tokio::time::sleep(POLL_EVERY).await;
                let path = format!("/v1/payment_intents/{}", intent.id);
                intent = stripe
                    .get(token, &path, &[])
                    .await
                    .map_err(after_create(&intent.id))?;
            }
        }
    }
}

/// Whether the charge may go on to its create, by what the order check
/// read: `Some` PaymentIntent of this checkout (an earlier attempt's) that
/// holds or is taking the money is followed instead of created again;
/// another checkout's payment refuses the order (`DuplicateOrder`: on the
/// first attempt nothing was charged; a later one is retried, since an
/// earlier attempt's create may not show yet, and the charge's outcome is
/// left to `reconcile`).
fn judge_order(
    read: order::OrderRead,
    metrics: &crate::metrics::ActivityMetrics,
) -> Result<Option<PaymentIntent>, AttemptFailure> {
    if let Some(ours) = read.ours {
        return Ok(Some(ours));
    }
    if !read.complete {
        metrics.order_checks_on_search.inc();
        tracing::warn!(
            "the order check could not read Stripe's list to its end (a busy account): the order's recent PaymentIntents were looked for with Stripe's search alone"
        );
    }
    match read.earlier {
        Some(earlier) => Err(AttemptFailure::DuplicateOrder(earlier)),
        None => Ok(None),
    }
}

impl PaymentActivities {
    pub(crate) async fn charge_attempt(
        &self,
        ctx: &ActivityContext,
        input: ChargeInput,
    ) -> Result<ChargeOutput, ActivityError> {
        let charge = validate::charge(&input)
            .map_err(|why| classify(&AttemptFailure::InvalidInput(why), ctx.info().attempt))?;
        let attempt = Attempt::of(ctx, input.schedule_to_close_ms, self.max_ttl);
        // The customer charged is the one object the key may name that it does not create.
        // The customer charged and the payment method it pays with are the
        // objects the key may name that it does not create (the broker refuses
        // any other; Stripe's `pm_card_…` test methods are nobody's).
        // A checkout that asks also reads the order's PaymentIntents first
        // (`order`): the key sees those by their metadata.
        // (A role made before the list read: search alone.)
        let checks_order = input.order_paid_since_ms.is_some();
        let order_reads: &[&str] = match (checks_order, self.list_reads) {
            (false, _) => &[],
            (true, true) => &[SEARCH_ENDPOINT, LIST_ENDPOINT],
            (true, false) => &[SEARCH_ENDPOINT],
        };
        let endpoints: Vec<&str> = CHARGE_ENDPOINTS
            .iter()
            .chain(order_reads)
            .copied()
            .collect();
        let mut request = attempt.key_request(
            charge.cap_usd,
            &endpoints,
            input
                .customer
                .iter()
                .chain(std::iter::once(&input.payment_method))
                .cloned()
                .collect(),
        );
        if checks_order {
            let (name, value) = order_pair(&input.order_id);
            request.allowed_metadata = BTreeMap::from([(name.to_owned(), value)]);
        }
        let listed_since = (input.order_paid_since_ms)
            .filter(|_| self.list_reads)
            .map(|ms| ms / 1000);
        let metrics = self.metrics.clone();
        let (order_id, checkout_id) = (input.order_id.clone(), input.checkout_id.clone());
        let form = charge.form(&attempt.workflow_id);
        let key = idempotency_key(
            "charge",
            input.checkout_id.as_deref(),
            &attempt.workflow_id,
            &attempt.activity_id,
            &input.order_id,
        );
        let stripe = self.stripe.clone();
        let broker = self.leasing_broker().cloned();
        let (intent, key_id): (PaymentIntent, String) = self
            .with_key(ctx, request, |token| async move {
                // Before every create: an earlier attempt's PaymentIntent
                // (this checkout's) is in the list, and is not another's.
                if checks_order {
                    let read = order::read(
                        &stripe,
                        broker.as_ref(),
                        &key,
                        &token,
                        &order_id,
                        checkout_id.as_deref(),
                        listed_since,
                    )
                    .await?;
                    if let Some(ours) = judge_order(read, &metrics)? {
                        tracing::info!(payment_intent_id = %ours.id, status = %ours.status, "an earlier attempt's PaymentIntent found: followed, not created again");
                        return follow(&stripe, &token, ctx, ours, &key).await;
                    }
                }
                let created: PaymentIntent = stripe
                    .post_form(&token, "/v1/payment_intents", &form, &key)
                    .await
                    .map_err(AttemptFailure::Call)?;
                follow(&stripe, &token, ctx, created, &key).await
            })
            .await?;
        tracing::info!(payment_intent_id = %intent.id, status = %intent.status, key_id = %key_id, "charged");
        Ok(ChargeOutput {
            payment_intent_id: intent.id,
            status: intent.status,
            amount: intent.amount,
            currency: intent.currency,
            key_id,
            attempt: attempt.attempt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Earlier;
    use crate::metrics::ActivityMetrics;

    fn read(earlier: bool, ours: bool, complete: bool) -> order::OrderRead {
        order::OrderRead {
            earlier: earlier.then(|| Earlier {
                payment_intent_id: "pi_old".to_owned(),
                status: "succeeded".to_owned(),
                workflow_id: Some("wf-old".to_owned()),
                checkout_id: Some("c-old".to_owned()),
            }),
            ours: ours.then(|| PaymentIntent {
                id: "pi_ours".to_owned(),
                status: "succeeded".to_owned(),
                amount: 100,
                currency: "usd".to_owned(),
            }),
            complete,
        }
    }

    #[test]
    fn an_order_paid_by_another_checkout_is_refused_and_this_ones_own_payment_followed() {
        let metrics = ActivityMetrics::default();
        for complete in [true, false] {
            assert!(matches!(
                judge_order(read(true, false, complete), &metrics),
                Err(AttemptFailure::DuplicateOrder(_))
            ));
        }
        // This checkout's own PaymentIntent (an earlier attempt's): followed,
        // not created again, whatever else the order holds.
        let followed = judge_order(read(true, true, true), &metrics).expect("goes on");
        assert_eq!(followed.map(|pi| pi.id).as_deref(), Some("pi_ours"));
        // Nothing found: created, and a list not read to its end is counted.
        let before = metrics.order_checks_on_search.get();
        assert!(matches!(
            judge_order(read(false, false, false), &metrics),
            Ok(None)
        ));
        assert_eq!(metrics.order_checks_on_search.get(), before + 1);
        assert!(matches!(
            judge_order(read(false, false, true), &metrics),
            Ok(None)
        ));
        assert_eq!(metrics.order_checks_on_search.get(), before + 1);
    }
}
