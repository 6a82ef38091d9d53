//! Whether an order is already paid by another checkout: what `charge`
//! reads before it creates anything, when its input asks
//! ([`ChargeInput::order_paid_since_ms`](keylease_workflows::contract::ChargeInput)).
//!
//! The charge key sees the order's PaymentIntents (`allowed_metadata`
//! `order_id`, or `order_key` for an order id a search query cannot quote:
//! [`order_pair`]; the broker filters every list and search to them, and
//! the check keeps only the order's itself). Stripe's search finds the
//! order's PaymentIntents it has indexed (under a minute behind, normally),
//! read page after page (at most ten of a hundred: an order with more
//! cannot be told paid, and the check fails rather than charge).
//! Stripe's list of those created since the time the checkout gives (its
//! start less the search's lag, and a minute for clocks) is strongly
//! consistent: it holds every PaymentIntent of this checkout and any made in
//! the time search may not have caught up with. It is read page after page
//! (at most ten), unexpanded (the broker scans up to five upstream pages of
//! a hundred for each), and an order's PaymentIntent found only there that
//! is charged or on its way is read again with its latest charge's refunds.
//! On a busy account (more of other orders' PaymentIntents than the broker
//! scans for one page, or more pages than the check reads) it cannot be
//! read to its end, and the check relies on search for those (counted in
//! `keylease_order_checks_on_search`), rather than refuse every checkout.
//!
//! | an order's PaymentIntent of another checkout (or of no checkout) | is |
//! |---|---|
//! | `succeeded`, `requires_capture`, `processing`, refunded in part or not at all | the earlier payment: `DuplicateOrder` |
//! | refunded in full, or holding no money (declined, cancelled) | no obstacle |

mod record;

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

use crate::broker_client::BrokerClient;
use crate::classify::{AttemptFailure, Earlier};
use crate::reconcile::cut_short;
use crate::scope::order_pair;
use crate::search::{self, Unsearched};
use crate::standing::{PaymentIntent, Standing, refunded_in_full, standing};
use crate::stripe_client::{ProxyError, StripeClient};
use record::{FromRecord, Reach, recorded};

/// Slack for clocks (Temporal's against Stripe's) in the list's `created` bound.
const CLOCK_SLACK_SECONDS: u64 = 60;

/// Most pages of Stripe's list the check reads (100 PaymentIntents each):
/// past them, the account is busy and search is relied on. (Search reads
/// as many, [`search::MAX_PAGES`]: past those, whether the order is paid
/// cannot be told.)
const MAX_PAGES: usize = 10;

/// A PaymentIntent of the order, with its latest charge expanded.
#[derive(Debug, Deserialize)]
struct Listed {
    id: String,
    status: String,
    #[serde(default)]
    amount: i64,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    latest_charge: Option<Value>,
}

/// A page of Stripe's list.
#[derive(Debug, Deserialize)]
struct Page {
    data: Vec<Listed>,
    /// Stripe always says; a page that does not is no answer (never read
    /// as the list's end, which could hide an earlier payment of the order).
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
        .and_then(refunded_in_full)
        .is_some();
    on_its_way && !refunded
}

/// Whether `pi` is `order_id`'s (the broker filters answers to the order,
/// but a broker that does not — or a keyless baseline — must not make
/// another order's payment this one's).
fn of_order(pi: &Listed, order_id: &str) -> bool {
    pi.metadata.get("order_id").map(String::as_str) == Some(order_id)
}

/// Whether `pi` was made by the checkout `checkout_id` (an earlier attempt).
fn of_checkout(pi: &Listed, checkout_id: Option<&str>) -> bool {
    checkout_id.is_some() && pi.metadata.get("checkout_id").map(String::as_str) == checkout_id
}

/// The first of `found` that is `order_id`'s, that another checkout (or a
/// caller with no checkout) made, and that holds money.
fn earlier(found: &[Listed], order_id: &str, checkout_id: Option<&str>) -> Option<Earlier> {
    found
        .iter()
        .filter(|pi| of_order(pi, order_id) && !of_checkout(pi, checkout_id))
        .find(|pi| holds_money(pi))
        .map(|pi| Earlier {
            workflow_id: pi.metadata.get("workflow_id").cloned(),
            checkout_id: pi.metadata.get("checkout_id").cloned(),
            payment_intent_id: pi.id.clone(),
            status: pi.status.clone(),
        })
}

/// The PaymentIntents judged: the list's, and those only search found. The
/// list's copy of a PaymentIntent was read after the search's and is never
/// stale (search may show a status it has since left), so it is the one
/// judged.
fn judged(searched: Vec<Listed>, listed: Vec<Listed>) -> Vec<Listed> {
    let mut judged: Vec<Listed> = searched
        .into_iter()
        .filter(|pi| !listed.iter().any(|newer| newer.id == pi.id))
        .collect();
    judged.extend(listed);
    judged
}

/// `pi` from the unexpanded list, with its latest charge and that charge's
/// refunds read when they decide whether it holds the order's money (it is
/// the order's and charged or on its way); as it is otherwise.
async fn expanded(
    stripe: &StripeClient,
    token: &SecretString,
    pi: Listed,
    order_id: &str,
) -> Result<Listed, AttemptFailure> {
    if !of_order(&pi, order_id) || !holds_money(&pi) {
        return Ok(pi);
    }
    let read: Listed = stripe
        .get(
            token,
            &format!("/v1/payment_intents/{}", pi.id),
            &[("expand[]", "latest_charge.refunds")],
        )
        .await
        .map_err(unreadable)?;
    // An id that is not one path segment reads another object: never taken for it.
    if read.id != pi.id {
        return Err(AttemptFailure::OrderUnread(format!(
            "reading PaymentIntent {} again answered {}",
            pi.id, read.id
        )));
    }
    Ok(read)
}

/// What the order check read.
#[derive(Debug)]
pub(crate) struct OrderRead {
    /// Another checkout's payment that holds the order's money.
    pub(crate) earlier: Option<Earlier>,
    /// A PaymentIntent of this checkout (an earlier attempt's) that holds or
    /// is taking the money: the charge follows it instead of creating one
    /// (whose idempotency key may be past Stripe's 24 hours).
    pub(crate) ours: Option<PaymentIntent>,
    /// Whether Stripe's list was read to its end: every PaymentIntent of
    /// the order made since the list's start was seen.
    pub(crate) complete: bool,
}

/// A read of the order's PaymentIntents that failed. Stripe's refusal (a
/// 4xx) is about the read, not the charge: never "nothing charged".
fn unreadable(err: ProxyError) -> AttemptFailure {
    match err {
        ProxyError::Stripe { status, .. } if (400..500).contains(&status) => {
            AttemptFailure::OrderUnread(err.to_string())
        }
        other => AttemptFailure::Call(other),
    }
}

/// Every PaymentIntent of the order Stripe's search finds, page after page.
/// (Issue 24's third review: only the first page of 100 was read, so a
/// key holder that made 100 unpaid PaymentIntents of the order after its
/// payment hid that payment from the next checkout's check, on an account
/// whose list cannot be read to its end.) An order with more than
/// [`search::MAX_PAGES`] pages cannot be told paid: the check fails rather
/// than charge.
async fn searched(
    stripe: &StripeClient,
    token: &SecretString,
    order_id: &str,
) -> Result<Vec<Listed>, AttemptFailure> {
    let (name, value) = order_pair(order_id);
    let query = format!("metadata['{name}']:'{value}'");
    let expand = [("expand[]", "data.latest_charge.refunds")];
    search::every_page(stripe, token, &query, &expand)
        .await
        .map_err(|err| match err {
            Unsearched::Call(err) => unreadable(err),
            // More, and no way to it: not an answer the check can stand on.
            Unsearched::NoNextPage => {
                AttemptFailure::OrderUnread("Stripe's search has more and no next page".to_owned())
            }
            Unsearched::TooMany => AttemptFailure::OrderUnread(format!(
                "Stripe's search finds more than {} PaymentIntents of the order",
                search::MAX_PAGES * 100
            )),
        })
}

/// The PaymentIntents Stripe's list shows since `since` (Unix seconds),
/// page after page, each of the order's that is charged read again with its
/// refunds ([`expanded`]); and whether the list was read to its end.
///
/// Unexpanded: the list is read for the order's PaymentIntents among every
/// one of the account made since, and a page with each latest charge and its
/// refunds is nearly three times the size (issue 24: the broker and Stripe
/// spent more on those pages than on the rest of a checkout).
///
/// Issue 24's third review: one page was read, so 100 unpaid PaymentIntents
/// of the order made after a payment that search had not indexed yet hid it
/// from the next checkout. The broker's "narrow it" (more of the account
/// than it scans for one page) ends the read where it is, and the check
/// relies on search for the rest; so does a list of more than [`MAX_PAGES`]
/// pages of what the key sees.
async fn listed(
    stripe: &StripeClient,
    token: &SecretString,
    since: &str,
    order_id: &str,
) -> Result<(Vec<Listed>, bool), AttemptFailure> {
    let first = [("created[gte]", since), ("limit", "100")];
    let (mut listed, complete, requests) = paged(stripe, token, &first, order_id).await?;
    // Paging took time (on a busy account, seconds for each page), and a
    // PaymentIntent made since the first page is newer than everything read
    // after it: the newest page is read once more, so that a checkout of the
    // order started meanwhile is seen as it would have been with one page
    // (a helper's review of the paging).
    if requests > 1 {
        match stripe
            .get::<Page>(token, "/v1/payment_intents", &first)
            .await
        {
            Ok(page) => {
                for pi in page.data {
                    listed.push(expanded(stripe, token, pi, order_id).await?);
                }
            }
            Err(err) if cut_short(&err) => {}
            Err(err) => return Err(unreadable(err)),
        }
    }
    Ok((listed, complete))
}

/// [`listed`]'s pages from `query` on: what they showed, whether the list
/// was read to its end, and how many requests that took.
async fn paged(
    stripe: &StripeClient,
    token: &SecretString,
    query: &[(&str, &str)],
    order_id: &str,
) -> Result<(Vec<Listed>, bool, usize), AttemptFailure> {
    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    for requests in 1..=MAX_PAGES {
        let mut query = query.to_vec();
        if let Some(id) = &after {
            query.push(("starting_after", id.as_str()));
        }
        let page: Page = match stripe.get(token, "/v1/payment_intents", &query).await {
            Ok(page) => page,
            Err(err) if cut_short(&err) => return Ok((listed, false, requests)),
            Err(err) => return Err(unreadable(err)),
        };
        let more = page.has_more;
        after = page.data.last().map(|pi| pi.id.clone());
        for pi in page.data {
            listed.push(expanded(stripe, token, pi, order_id).await?);
        }
        if !more {
            return Ok((listed, true, requests));
        }
        if after.is_none() {
            return Err(AttemptFailure::OrderUnread(
                "Stripe's list has more and nothing to go on from".to_owned(),
            ));
        }
    }
    // More than the check reads: a busy account, as when the broker cuts
    // the list short, and the check relies on search for the rest. (Failing
    // here, as it did, failed every checkout of a keyless reader's busy
    // account, and of an order with a few PaymentIntents spread among
    // thousands; who can make the list this long can make the broker cut
    // it short as well.)
    Ok((listed, false, MAX_PAGES))
}

/// Whether `found` answers the check by itself: an earlier payment of the
/// order, or this checkout's own PaymentIntent holding or taking the money.
fn answers(found: &[Listed], order_id: &str, checkout_id: Option<&str>) -> bool {
    earlier(found, order_id, checkout_id).is_some() || own(found, order_id, checkout_id).is_some()
}

/// This checkout's own PaymentIntent (an earlier attempt's) that holds or
/// is taking the money.
fn own(found: &[Listed], order_id: &str, checkout_id: Option<&str>) -> Option<PaymentIntent> {
    found
        .iter()
        .filter(|pi| of_order(pi, order_id) && of_checkout(pi, checkout_id))
        .find(|pi| !matches!(standing(&pi.status), Standing::NotCharged))
        .map(|pi| PaymentIntent {
            id: pi.id.clone(),
            status: pi.status.clone(),
            amount: pi.amount,
            currency: pi.currency.clone(),
        })
}

/// Reads the order's PaymentIntents: Stripe's search, and (from
/// `listed_since`, Unix seconds, clock slack taken off here; `None`: a role
/// without the list read) those made since: from the broker's record
/// (`broker`: the leasing broker; `own_key`: this charge's idempotency key)
/// when it is whole, else Stripe's list as well. (Never narrowed to the
/// checkout's customer: an earlier checkout of the order may name another.)
pub(crate) async fn read(
    stripe: &StripeClient,
    broker: Option<&BrokerClient>,
    own_key: &str,
    token: &SecretString,
    order_id: &str,
    checkout_id: Option<&str>,
    listed_since: Option<u64>,
) -> Result<OrderRead, AttemptFailure> {
    let mut found = searched(stripe, token, order_id).await?;
    let mut complete = false;
    if let Some(since) = listed_since {
        let since = since.saturating_sub(CLOCK_SLACK_SECONDS);
        let record = match broker {
            Some(broker) => recorded(stripe, broker, token, since, own_key).await?,
            None => FromRecord::absent(),
        };
        found = judged(found, record.found);
        complete = match record.reach {
            Reach::Whole => true,
            Reach::Absent => {
                let (listed, read_to_end) =
                    listed(stripe, token, &since.to_string(), order_id).await?;
                found = judged(found, listed);
                read_to_end
            }
            Reach::Unsure(why) => {
                let (listed, read_to_end) =
                    listed(stripe, token, &since.to_string(), order_id).await?;
                found = judged(found, listed);
                if !read_to_end && !answers(&found, order_id, checkout_id) {
                    return Err(AttemptFailure::OrderUnread(format!(
                        "{why}, and Stripe's list cannot be read to its end (a busy account): \
                         not left to Stripe's search alone"
                    )));
                }
                read_to_end
            }
        };
    }
    Ok(OrderRead {
        earlier: earlier(&found, order_id, checkout_id),
        ours: own(&found, order_id, checkout_id),
        complete,
    })
}

#[cfg(test)]
mod tests;
