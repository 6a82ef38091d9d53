//! Whether an order is already paid by another checkout: what `charge`
//! reads before it creates anything, when its input asks
//! ([`ChargeInput::order_paid_since_ms`](keylease_workflows::contract::ChargeInput)).
//!
//! The charge key sees the order's PaymentIntents (`allowed_metadata`
//! `order_id`, or `order_key` for an order id a search query cannot quote:
//! [`order_pair`]; the broker filters every list and search to them, and
//! the check keeps only the order's itself). Stripe's
//! list, created since the time the checkout gives (five minutes of clock
//! slack), is strongly consistent: it holds every PaymentIntent of this
//! checkout and of any checkout of the order started since. Stripe's search
//! finds the older ones, which it has long indexed. A list the broker cannot
//! read to its end (a busy account) is not an answer: the attempt fails
//! `NotYetIndexed`, retried, and charges nothing meanwhile.
//!
//! | an order's PaymentIntent of another checkout (or of no checkout) | is |
//! |---|---|
//! | `succeeded`, `requires_capture`, `processing`, refunded in part or not at all | the earlier payment: `DuplicateOrder` |
//! | refunded in full, or holding no money (declined, cancelled) | no obstacle |

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

use crate::classify::{AttemptFailure, Earlier};
use crate::reconcile::unread;
use crate::scope::order_pair;
use crate::standing::{Standing, standing};
use crate::stripe_client::StripeClient;

/// Most list pages one check reads (the broker reads up to five upstream
/// pages for each, keeping the order's PaymentIntents).
const MAX_LIST_PAGES: usize = 5;
/// Slack for clocks in the list's `created` bound.
const CLOCK_SLACK_SECONDS: u64 = 300;

/// A PaymentIntent of the order, with its latest charge expanded.
#[derive(Debug, Deserialize)]
struct Listed {
    id: String,
    status: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    latest_charge: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Page {
    data: Vec<Listed>,
    #[serde(default)]
    has_more: bool,
}

/// Whether `pi` holds (or is taking) money: charged, held or on its way,
/// and not refunded in full. A charge the answer does not expand (the
/// broker withheld it) counts as unrefunded.
fn holds_money(pi: &Listed) -> bool {
    let on_its_way = matches!(
        standing(&pi.status),
        Standing::Charged | Standing::Processing
    );
    let refunded = pi
        .latest_charge
        .as_ref()
        .and_then(|charge| charge["refunded"].as_bool())
        .unwrap_or(false);
    on_its_way && !refunded
}

/// The first of `found` that is `order_id`'s (the broker filters answers to
/// the order, but a broker that does not — or a keyless baseline — must
/// not make another order's payment this one's), that another checkout (or
/// a caller with no checkout) made, and that holds money.
fn earlier(found: Vec<Listed>, order_id: &str, checkout_id: Option<&str>) -> Option<Earlier> {
    found
        .into_iter()
        .filter(|pi| pi.metadata.get("order_id").map(String::as_str) == Some(order_id))
        .filter(|pi| pi.metadata.get("checkout_id").map(String::as_str) != checkout_id)
        .find(holds_money)
        .map(|mut pi| Earlier {
            workflow_id: pi.metadata.remove("workflow_id"),
            checkout_id: pi.metadata.remove("checkout_id"),
            payment_intent_id: pi.id,
            status: pi.status,
        })
}

/// The payment of `order_id` another checkout than `checkout_id` made and
/// that still holds money, if any. `listed_since` (Unix seconds): the list
/// reads from then on (clock slack taken off here); `None` (a role without
/// the list read): search alone. `customer` narrows the list.
pub(crate) async fn earlier_payment(
    stripe: &StripeClient,
    token: &SecretString,
    order_id: &str,
    checkout_id: Option<&str>,
    listed_since: Option<u64>,
    customer: Option<&str>,
) -> Result<Option<Earlier>, AttemptFailure> {
    let (name, value) = order_pair(order_id);
    let query = format!("metadata['{name}']:'{value}'");
    let searched: Page = stripe
        .get(
            token,
            "/v1/payment_intents/search",
            &[
                ("query", query.as_str()),
                ("limit", "100"),
                ("expand[]", "data.latest_charge"),
            ],
        )
        .await
        .map_err(AttemptFailure::Call)?;
    if let Some(found) = earlier(searched.data, order_id, checkout_id) {
        return Ok(Some(found));
    }
    let Some(since) = listed_since else {
        return Ok(None);
    };
    let since = since.saturating_sub(CLOCK_SLACK_SECONDS).to_string();
    let mut after: Option<String> = None;
    for _ in 0..MAX_LIST_PAGES {
        let mut query = vec![
            ("created[gte]", since.as_str()),
            ("limit", "100"),
            ("expand[]", "data.latest_charge"),
        ];
        if let Some(customer) = customer {
            query.push(("customer", customer));
        }
        if let Some(last) = after.as_deref() {
            query.push(("starting_after", last));
        }
        let page: Page = stripe
            .get(token, "/v1/payment_intents", &query)
            .await
            .map_err(unread)?;
        after = page.data.last().map(|pi| pi.id.clone());
        let more = page.has_more && after.is_some();
        if let Some(found) = earlier(page.data, order_id, checkout_id) {
            return Ok(Some(found));
        }
        if !more {
            return Ok(None);
        }
    }
    // Not read to its end: an earlier payment may be further on.
    Err(AttemptFailure::NotYetIndexed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pi(id: &str, status: &str, checkout: Option<&str>, charge: Option<Value>) -> Listed {
        Listed {
            id: id.to_owned(),
            status: status.to_owned(),
            metadata: checkout
                .map(|c| {
                    BTreeMap::from([
                        ("checkout_id".to_owned(), c.to_owned()),
                        ("workflow_id".to_owned(), format!("wf-{c}")),
                    ])
                })
                .unwrap_or_default()
                .into_iter()
                .chain([("order_id".to_owned(), "o-1".to_owned())])
                .collect(),
            latest_charge: charge,
        }
    }

    #[test]
    fn only_another_checkouts_unrefunded_payment_is_an_earlier_one() {
        let ours = Some("c-ours");
        let refunded = Some(serde_json::json!({"refunded": true}));
        let partly = Some(serde_json::json!({"refunded": false, "amount_refunded": 100}));
        // Our own attempts' PaymentIntents, refunded ones, and ones holding no money are not.
        assert_eq!(
            earlier(
                vec![
                    pi("pi_1", "succeeded", ours, None),
                    pi("pi_2", "succeeded", Some("c-old"), refunded.clone()),
                    pi("pi_3", "requires_payment_method", Some("c-old"), None),
                    pi("pi_4", "canceled", Some("c-old"), None),
                ],
                "o-1",
                ours,
            ),
            None
        );
        // Charged, held, on its way or refunded in part: the earlier payment.
        for (status, charge) in [
            ("succeeded", None),
            ("requires_capture", None),
            ("processing", None),
            ("succeeded", partly),
            // A charge the broker did not expand: counted as unrefunded.
            ("succeeded", Some(Value::String("ch_1".to_owned()))),
        ] {
            let found = earlier(vec![pi("pi_5", status, Some("c-old"), charge)], "o-1", ours)
                .expect("an earlier payment");
            assert_eq!(found.payment_intent_id, "pi_5");
            assert_eq!(found.workflow_id.as_deref(), Some("wf-c-old"));
            assert_eq!(found.checkout_id.as_deref(), Some("c-old"));
        }
        // One with no checkout (a charge called by another workflow) is another's.
        assert!(earlier(vec![pi("pi_6", "succeeded", None, None)], "o-1", ours).is_some());
        // Another order's payment, in an answer nobody filtered: not this order's.
        assert_eq!(
            earlier(
                vec![pi("pi_7", "succeeded", Some("c-old"), None)],
                "o-2",
                ours
            ),
            None
        );
    }
}
