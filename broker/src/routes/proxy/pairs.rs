//! The metadata pairs of the PaymentIntents creates through the proxy made
//! (see [`crate::store::pairs`]): pending before a create is forwarded,
//! recorded from its answer.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::spend::Target;
use super::upstream::{Upstream, UpstreamFailure};
use crate::error::ApiError;
use crate::form::FormParams;
use crate::group_commit::Statement;
use crate::key::KeyRecord;
use crate::state::AppState;
use crate::store::pairs::{MAX_PAIRS, Shelf};
use crate::stripe::VENDOR;

/// The object type whose pairs are recorded.
pub const KIND: &str = "payment_intent";
/// Where it is created (and listed).
pub const COLLECTION: &str = "/v1/payment_intents";

/// Where `key`'s PaymentIntents are: the account it acts as.
pub fn shelf(key: &KeyRecord) -> Shelf<'_> {
    Shelf {
        vendor: VENDOR,
        account: key.stripe_account.as_deref().unwrap_or(""),
        kind: KIND,
    }
}

/// Whether `target` creates a PaymentIntent.
fn creates(target: Target<'_>) -> bool {
    target.method == "POST" && target.path == COLLECTION
}

/// A metadata pair: its name and value.
type Pair<'a> = (&'a str, &'a str);

/// The `metadata[name]` pairs of a form.
fn form_pairs(params: &FormParams) -> Vec<(&str, &str)> {
    params
        .pairs()
        .filter_map(|(name, value)| {
            let name = name.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((name, value))
        })
        .collect()
}

/// Whether `key` may write the pair `name`=`value` into the record: its
/// `allowed_metadata` holds it (a key writes only its own order's pairs,
/// so no key can crowd or grow another order's record).
fn owns_pair(key: &KeyRecord, (name, value): (&str, &str)) -> bool {
    key.allowed_metadata.get(name).map(String::as_str) == Some(value)
}

/// What a PaymentIntent create about to be forwarded as `request_id`
/// writes with its audit row: its pairs the key owns, pending, and a
/// digest of each it does not own (so that a lookup of such a pair is not
/// called whole). More pairs than Stripe allows are refused here, as Stripe
/// would; so is a value for a name of the key's `allowed_metadata` other
/// than the key's own (a key of one order making another order's payment).
pub fn pending(
    state: &AppState,
    target: Target<'_>,
    params: &FormParams,
    request_id: Option<&str>,
    idempotency_key: Option<&str>,
) -> Result<Vec<Statement>, ApiError> {
    let Some(request_id) = request_id.filter(|_| creates(target)) else {
        return Ok(Vec::new());
    };
    let pairs = form_pairs(params);
    if pairs.len() > MAX_PAIRS {
        return Err(ApiError::BadParameter(format!(
            "metadata holds at most {MAX_PAIRS} keys"
        )));
    }
    if let Some((name, _)) = (pairs.iter()).find(|(name, value)| {
        target
            .key
            .allowed_metadata
            .get(*name)
            .is_some_and(|own| own != value)
    }) {
        return Err(ApiError::BadParameter(format!(
            "metadata[{}] must be the key's own allowed_metadata value",
            super::canonical::bounded(name, 64)
        )));
    }
    let (owned, unowned): (Vec<Pair>, Vec<Pair>) = pairs
        .into_iter()
        .partition(|pair| owns_pair(target.key, *pair));
    let store = state.store();
    let now = Utc::now();
    Ok(store
        .pending_pairs(
            shelf(target.key),
            request_id,
            idempotency_key.unwrap_or(""),
            &owned,
            now,
        )
        .into_iter()
        .chain(store.unowned_pairs(shelf(target.key), &unowned, now))
        .collect())
}

/// What the answer to a PaymentIntent create records: the pairs of the
/// PaymentIntent it shows (the object answered, or a declined create's
/// `error.payment_intent`) that the key owns, the settling of every create
/// sent with the same `idempotency_key` (Stripe made that one object for
/// all of them), and whether this create's outcome is now known, so that
/// its pending pairs go. (Only creates: a later call's metadata is not
/// recorded.)
pub fn answered(
    state: &AppState,
    target: Target<'_>,
    outcome: &Result<Upstream, UpstreamFailure>,
    idempotency_key: Option<&str>,
) -> (Vec<Statement>, bool) {
    let upstream = match outcome {
        Ok(upstream) => upstream,
        // Never sent: nothing was made.
        Err(failure) => return (Vec::new(), !failure.maybe_delivered),
    };
    if !creates(target) || upstream.status.is_server_error() {
        return (Vec::new(), false);
    }
    let Ok(body) = serde_json::from_slice::<Value>(&upstream.body) else {
        return (Vec::new(), false);
    };
    let shown = if upstream.status.is_success() {
        &body
    } else {
        &body["error"]["payment_intent"]
    };
    let id = shown["id"].as_str().filter(|_| shown["object"] == KIND);
    let Some(id) = id else {
        // A refusal that shows no PaymentIntent made none.
        return (Vec::new(), upstream.status.is_client_error());
    };
    let pairs: Vec<(&str, &str)> = shown["metadata"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some((name.as_str(), value.as_str()?)))
        .filter(|pair| owns_pair(target.key, *pair))
        .collect();
    // Stripe's clock, which the list's `created` is read by; the broker's
    // when the answer does not say.
    let created = shown["created"]
        .as_i64()
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        .unwrap_or_else(Utc::now);
    let store = state.store();
    let mut writes: Vec<Statement> = (store.record_pairs(shelf(target.key), id, &pairs, created))
        .into_iter()
        .collect();
    if let Some(key) = idempotency_key {
        writes.push(store.settle_pending_of_key(shelf(target.key), key));
    }
    (writes, true)
}
