//! One attempt of `reconcile`: what did a checkout's charge do at Stripe?
//!
//! The key is read-only: it may call `GET /v1/payment_intents/search`, named
//! exactly (the broker refuses search to a `*`), and, when the checkout says
//! when it began, `GET /v1/payment_intents` (the list); it sees only
//! PaymentIntents whose metadata names this checkout (`allowed_metadata`:
//! the broker filters the results). Every field it needs comes in the
//! results themselves.
//!
//! Stripe's search is eventually consistent (Stripe: up to an hour behind
//! in an outage), its list is not. So when the input carries
//! `checkout_began_ms`, a search that finds no charge is confirmed by the
//! list of PaymentIntents created since (five minutes of clock slack), and
//! only the list can say "not charged":
//!
//! | search, then (with `checkout_began_ms`) the list, finds | the attempt |
//! |---|---|
//! | a PaymentIntent `succeeded` or `requires_capture` | `Charged` |
//! | one still on its way (`processing`, …) | fails `ChargeProcessing`, retried |
//! | only ones that hold no money, or nothing (the list), within the search window | fails `NotYetIndexed`, retried |
//! | only ones that hold no money, or nothing (the list), after it | `NotCharged` |
//! | more pages than it reads (a busy account) | fails `NotYetIndexed`, retried: unknown |
//!
//! The search window runs from when `reconcile` was first scheduled: a
//! create whose attempt gave up may still land at Stripe, and search may
//! not have indexed it. A PaymentIntent that holds no money (an earlier
//! decline, or one anybody who can create PaymentIntents made with the
//! checkout's metadata) says nothing of either, so it does not end the wait.
//!
//! With `payment_intent_id` (a payment the charge left `processing`), that
//! PaymentIntent is read by its id first: strongly consistent, whatever the
//! account's size.
//!
//! Without `checkout_began_ms` (a caller of an older contract), search
//! alone, read to its end (at most ten pages of 100, else `NotYetIndexed`):
//! no charge found is `NotYetIndexed` within the search window and
//! `NotCharged` after it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use keylease_workflows::contract::{ReconcileInput, ReconcileOutput};
use secrecy::SecretString;
use serde::Deserialize;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use crate::classify::{AttemptFailure, classify};
use crate::payments::{Attempt, PaymentActivities};
use crate::search::{self, Unsearched};
use crate::standing::{Standing, refunded_in_full, refunds_unseen, standing};
use crate::stripe_client::{ProxyError, StripeClient};
use crate::validate::{check_checkout_id, is_stripe_id};

/// The search the reconcile key calls.
pub const SEARCH_ENDPOINT: &str = "GET /v1/payment_intents/search";
/// The list the reconcile key confirms an empty search with.
pub const LIST_ENDPOINT: &str = "GET /v1/payment_intents";
/// The read that tells whether a charged PaymentIntent was refunded since.
pub const READ_ENDPOINT: &str = "GET /v1/payment_intents/*";
/// Most list pages one attempt reads (the broker reads up to five upstream
/// pages for each, keeping this checkout's PaymentIntents).
const MAX_LIST_PAGES: usize = 5;
/// Slack for clocks, before the checkout's start, in the list's `created` bound.
const CLOCK_SLACK_SECONDS: u64 = 300;

#[derive(Debug, Deserialize)]
struct Found {
    id: String,
    status: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

impl Found {
    /// Whether it is `checkout_id`'s: the broker filters the list to the
    /// checkout, but a broker that does not (or a keyless baseline) must
    /// not make another checkout's charge this one's.
    fn of(&self, checkout_id: &str) -> bool {
        self.metadata.get("checkout_id").map(String::as_str) == Some(checkout_id)
    }
}

/// The PaymentIntents of `found` that are `checkout_id`'s. Search answers
/// are kept to them too: a broker that does not filter (or a keyless
/// baseline) passes whatever Stripe's search matched, and Stripe's `:`
/// ignores case, so `C-1`'s search also finds `c-1`'s (a helper's review).
fn ours(found: Vec<Found>, checkout_id: &str) -> Vec<Found> {
    found.into_iter().filter(|pi| pi.of(checkout_id)).collect()
}

#[derive(Debug, Deserialize)]
struct SearchResult {
    data: Vec<Found>,
}

#[derive(Debug, Deserialize)]
struct ListPage {
    data: Vec<Found>,
    /// Stripe always says; a page that does not is no answer (never read
    /// as the list's end).
    has_more: bool,
}

/// Whether a failed list call is the broker's "narrow it": a busy
/// account, none of the key's PaymentIntents among the next pages it reads.
/// The list could not be read to its end; it does not say nothing is there.
pub(crate) fn cut_short(err: &ProxyError) -> bool {
    matches!(err, ProxyError::Broker { status: 400, message, .. } if message.contains("narrow it"))
}

/// A failed list call: cut short ([`cut_short`]) is retried as
/// `NotYetIndexed`, while search catches up.
fn unread(err: ProxyError) -> AttemptFailure {
    if cut_short(&err) {
        return AttemptFailure::NotYetIndexed;
    }
    AttemptFailure::Call(err)
}

/// A search that could not be read to its end: more pages than are read
/// (a thousand PaymentIntents with the checkout's metadata), or more and
/// no way to them, is retried as `NotYetIndexed`, never "nothing charged".
fn unsearched(err: Unsearched) -> AttemptFailure {
    match err {
        Unsearched::Call(err) => AttemptFailure::Call(err),
        Unsearched::NoNextPage | Unsearched::TooMany => AttemptFailure::NotYetIndexed,
    }
}

/// A PaymentIntent read with its latest charge's refunds expanded.
#[derive(Debug, Deserialize)]
struct Read {
    #[serde(default)]
    latest_charge: Option<serde_json::Value>,
}

/// `found`, with the refund of its PaymentIntent's charge when some of its
/// money went back (a `succeeded` PaymentIntent stays `succeeded` when
/// refunded: only its charge tells).
async fn with_refund(
    stripe: &StripeClient,
    token: &SecretString,
    found: ReconcileOutput,
) -> Result<ReconcileOutput, AttemptFailure> {
    let ReconcileOutput::Charged {
        payment_intent_id,
        status,
        ..
    } = found
    else {
        return Ok(found);
    };
    let read: Read = stripe
        .get(
            token,
            &format!("/v1/payment_intents/{payment_intent_id}"),
            &[("expand[]", "latest_charge.refunds")],
        )
        .await
        .map_err(AttemptFailure::Call)?;
    let charge = read.latest_charge.unwrap_or_default();
    // Only a charge refunded in full, by refunds that succeeded: one
    // refunded in part (by an operator, say), or by a refund still pending,
    // still holds money the checkout goes on with. One whose refunds go
    // past what the answer shows may be either: not yet an answer.
    if refunds_unseen(&charge) {
        return Err(AttemptFailure::NotYetIndexed);
    }
    let refund_id = refunded_in_full(&charge);
    Ok(ReconcileOutput::Charged {
        payment_intent_id,
        status,
        refund_id,
    })
}

/// The first of `found` that is charged (`succeeded`, `requires_capture`).
fn first_charged(found: &[Found]) -> Option<&Found> {
    found
        .iter()
        .find(|pi| matches!(standing(&pi.status), Standing::Charged))
}

/// A charge of `pi`, its refunds not read.
fn charge_of(pi: &Found) -> ReconcileOutput {
    ReconcileOutput::Charged {
        payment_intent_id: pi.id.clone(),
        status: pi.status.clone(),
        refund_id: None,
    }
}

/// What `found` says once no charge among it holds money: a payment on
/// its way; not yet an answer, within the window or when `found` is not
/// all there is; else the charge refunded in full (`refunded`), or nothing
/// charged.
fn unheld(
    found: &[Found],
    complete: bool,
    since_scheduled: Duration,
    window: Duration,
    refunded: Option<ReconcileOutput>,
) -> Result<ReconcileOutput, AttemptFailure> {
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
    // Nothing that holds money yet, within the window, whatever else was
    // found: search may not have indexed the charge, and a create whose
    // attempt gave up may still land, while a PaymentIntent that holds no
    // money (an earlier decline, a charge refunded in full, or one anybody
    // made with the checkout's metadata) says nothing of either.
    if !complete || since_scheduled < window {
        return Err(AttemptFailure::NotYetIndexed);
    }
    Ok(refunded.unwrap_or_else(|| ReconcileOutput::NotCharged {
        found: found
            .iter()
            .map(|pi| (pi.id.clone(), pi.status.clone()))
            .collect(),
    }))
}

/// Most charged PaymentIntents of one checkout whose refunds are read.
const MAX_CHARGED_READS: usize = 10;

/// A lookup of the checkout's PaymentIntents, for one attempt.
struct Lookup<'a> {
    stripe: &'a StripeClient,
    token: &'a SecretString,
    checkout_id: &'a str,
    /// Stripe's search for the checkout's PaymentIntents.
    query: &'a str,
    /// Unix seconds the list is read from; `None`: search alone.
    listed_since: Option<u64>,
    since_scheduled: Duration,
    window: Duration,
    reads_refunds: bool,
}

impl Lookup<'_> {
    /// Of `found` (the checkout's PaymentIntents), a charge that holds
    /// money, read with its refunds; and the first charge refunded in full.
    /// Without the read of refunds, the first charge. (A helper's review:
    /// the first charge found was answered, so a charge anybody made with
    /// the checkout's metadata and refunded in full hid the checkout's own,
    /// which the checkout then took for refunded.) More than
    /// [`MAX_CHARGED_READS`] charges is not yet an answer.
    async fn holding(
        &self,
        found: &[Found],
    ) -> Result<(Option<ReconcileOutput>, Option<ReconcileOutput>), AttemptFailure> {
        if !self.reads_refunds {
            return Ok((first_charged(found).map(charge_of), None));
        }
        let charged = found
            .iter()
            .filter(|pi| matches!(standing(&pi.status), Standing::Charged));
        let mut refunded = None;
        for (n, pi) in charged.enumerate() {
            if n == MAX_CHARGED_READS {
                return Err(AttemptFailure::NotYetIndexed);
            }
            match with_refund(self.stripe, self.token, charge_of(pi)).await? {
                kept @ ReconcileOutput::Charged {
                    refund_id: None, ..
                } => return Ok((Some(kept), refunded)),
                gone => {
                    refunded.get_or_insert(gone);
                }
            }
        }
        Ok((None, refunded))
    }

    /// The answer `found` gives: a charge that holds money at once; else
    /// [`unheld`], where "refunded" and "nothing charged" need `found` to
    /// be `complete` (the whole list, or every page of search alone) and
    /// the window passed.
    async fn conclude(
        &self,
        found: &[Found],
        complete: bool,
        since_scheduled: Duration,
    ) -> Result<ReconcileOutput, AttemptFailure> {
        let (held, refunded) = self.holding(found).await?;
        match held {
            Some(charge) => Ok(charge),
            None => unheld(found, complete, since_scheduled, self.window, refunded),
        }
    }

    /// What Stripe's search, and then its list, find.
    async fn run(&self) -> Result<ReconcileOutput, AttemptFailure> {
        let (stripe, token) = (self.stripe, self.token);
        let Some(since) = self.listed_since else {
            // Search alone: every page (whoever can create PaymentIntents
            // with the checkout's metadata can push its charge off the first one).
            let found: Vec<Found> = search::every_page(stripe, token, self.query, &[])
                .await
                .map_err(unsearched)?;
            let found = ours(found, self.checkout_id);
            return self.conclude(&found, true, self.since_scheduled).await;
        };
        // A charge on search's first page is the answer; anything else the
        // list confirms, so one page is enough.
        let result: SearchResult = stripe
            .get(
                token,
                "/v1/payment_intents/search",
                &[("query", self.query), ("limit", "10")],
            )
            .await
            .map_err(AttemptFailure::Call)?;
        let found = ours(result.data, self.checkout_id);
        if let (Some(charge), _) = self.holding(&found).await? {
            return Ok(charge);
        }
        // Search found no charge that holds money: only the whole list may
        // say there is none, or that it was refunded.
        let since = since.to_string();
        let mut listed = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let mut query = vec![("created[gte]", since.as_str()), ("limit", "100")];
            if let Some(last) = after.as_deref() {
                query.push(("starting_after", last));
            }
            let page: ListPage = stripe
                .get(token, "/v1/payment_intents", &query)
                .await
                .map_err(unread)?;
            after = page.data.last().map(|pi| pi.id.clone());
            listed.extend(ours(page.data, self.checkout_id));
            if !page.has_more {
                // The whole list read: the answer, once the search window
                // has passed since the charge ended — a create whose attempt
                // gave up may still land at Stripe.
                return self.conclude(&listed, true, self.since_scheduled).await;
            }
            if after.is_none() {
                // More, and nothing to go on from: not the whole list.
                return Err(AttemptFailure::NotYetIndexed);
            }
        }
        // More pages than are read: a charge among them that holds money is
        // the answer; anything else is not yet one.
        self.conclude(&listed, false, self.since_scheduled).await
    }
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
        if let Some(id) = &input.payment_intent_id
            && !(id.starts_with("pi_") && is_stripe_id(id))
        {
            let why = "payment_intent_id must be a PaymentIntent id (pi_…)".to_owned();
            return Err(classify(&AttemptFailure::InvalidInput(why), attempt_number));
        }
        let attempt = Attempt::of(ctx, input.schedule_to_close_ms, self.max_ttl);
        let listed_since = (input.checkout_began_ms)
            .filter(|_| self.list_reads)
            .map(|ms| (ms / 1000).saturating_sub(CLOCK_SLACK_SECONDS));
        // A role made before the list read still allows the read (the
        // charge's own `GET /v1/payment_intents/*`): refunds are read either way.
        let reads_refunds = input.checkout_began_ms.is_some();
        let endpoints: &[&str] = match (listed_since, reads_refunds) {
            (Some(_), _) => &[SEARCH_ENDPOINT, LIST_ENDPOINT, READ_ENDPOINT],
            (None, true) => &[SEARCH_ENDPOINT, READ_ENDPOINT],
            (None, false) => &[SEARCH_ENDPOINT],
        };
        let mut request = attempt.key_request(0.0, endpoints, Vec::new());
        // The broker shows a key only the objects it may see: this one sees
        // the PaymentIntents of this checkout, whichever attempt made them.
        request.allowed_metadata =
            BTreeMap::from([("checkout_id".to_owned(), input.checkout_id.clone())]);
        let query = format!("metadata['checkout_id']:'{}'", input.checkout_id);
        let checkout_id = input.checkout_id.clone();
        // A PaymentIntent the caller names is read by its id (with the
        // read endpoint, which every key that reads refunds has).
        let known = input.payment_intent_id.clone().filter(|_| reads_refunds);
        let since_scheduled = ctx
            .info()
            .scheduled_time
            .and_then(|at| SystemTime::now().duration_since(at).ok())
            .unwrap_or_default();
        let window = Duration::from_millis(input.search_window_ms);
        let stripe = self.stripe.clone();
        let (output, key_id) = self
            .with_key(ctx, request, |token| async move {
                let lookup = Lookup {
                    stripe: &stripe,
                    token: &token,
                    checkout_id: &checkout_id,
                    query: &query,
                    listed_since,
                    since_scheduled,
                    window,
                    reads_refunds,
                };
                let Some(id) = known else {
                    return lookup.run().await;
                };
                let read: Found = stripe
                    .get(&token, &format!("/v1/payment_intents/{id}"), &[])
                    .await
                    .map_err(AttemptFailure::Call)?;
                // Another checkout's is no answer: look this one's up.
                if !read.of(&checkout_id) {
                    return lookup.run().await;
                }
                let named = [read];
                let (held, refunded) = lookup.holding(&named).await?;
                if let Some(charge) = held {
                    return Ok(charge);
                }
                if matches!(standing(&named[0].status), Standing::Processing) {
                    return unheld(&named, true, Duration::MAX, Duration::ZERO, None);
                }
                // One that holds no money (failed, or refunded in full)
                // answers for nothing but itself: the checkout may have
                // another (a helper's review: a PaymentIntent anybody made
                // with its metadata, once followed and failed or refunded,
                // answered for the checkout while its own was paid). Only
                // when the lookup cannot tell (a busy account) is the named
                // one's end the answer, as it was: a debit that failed must
                // not wait forever.
                match lookup.run().await {
                    Err(AttemptFailure::NotYetIndexed) => {
                        unheld(&named, true, Duration::MAX, Duration::ZERO, refunded)
                    }
                    answer => answer,
                }
            })
            .await?;
        tracing::info!(order_id = %input.order_id, checkout_id = %input.checkout_id, key_id = %key_id, outcome = ?output, "reconciled");
        Ok(output)
    }
}

#[cfg(test)]
mod tests;
