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

/// The pending pairs of a PaymentIntent create about to be forwarded as
/// `request_id`, to commit with its audit row (`None`: not a create, or no
/// pair). More pairs than Stripe allows are refused here, as Stripe would.
pub fn pending(
    state: &AppState,
    target: Target<'_>,
    params: &FormParams,
    request_id: Option<&str>,
) -> Result<Option<Statement>, ApiError> {
    let Some(request_id) = request_id.filter(|_| creates(target)) else {
        return Ok(None);
    };
    let pairs = form_pairs(params);
    if pairs.len() > MAX_PAIRS {
        return Err(ApiError::BadParameter(format!(
            "metadata holds at most {MAX_PAIRS} keys"
        )));
    }
    Ok(state
        .store()
        .pending_pairs(shelf(target.key), request_id, &pairs, Utc::now()))
}

/// What the answer to a PaymentIntent create records: the pairs of the
/// PaymentIntent it shows (the object answered, or a declined create's
/// `error.payment_intent`), and whether the create's outcome is now known,
/// so that its pending pairs go. (Only creates: a later call's metadata is
/// not recorded, so that no request adds more than one create's pairs.)
pub fn answered(
    state: &AppState,
    target: Target<'_>,
    outcome: &Result<Upstream, UpstreamFailure>,
) -> (Option<Statement>, bool) {
    let upstream = match outcome {
        Ok(upstream) => upstream,
        // Never sent: nothing was made.
        Err(failure) => return (None, !failure.maybe_delivered),
    };
    if !creates(target) || upstream.status.is_server_error() {
        return (None, false);
    }
    let Ok(body) = serde_json::from_slice::<Value>(&upstream.body) else {
        return (None, false);
    };
    let shown = if upstream.status.is_success() {
        &body
    } else {
        &body["error"]["payment_intent"]
    };
    let id = shown["id"].as_str().filter(|_| shown["object"] == KIND);
    let Some(id) = id else {
        // A refusal that shows no PaymentIntent made none.
        return (None, upstream.status.is_client_error());
    };
    let pairs: Vec<(&str, &str)> = shown["metadata"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some((name.as_str(), value.as_str()?)))
        .collect();
    // Stripe's clock, which the list's `created` is read by; the broker's
    // when the answer does not say.
    let created = shown["created"]
        .as_i64()
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        .unwrap_or_else(Utc::now);
    let record = state
        .store()
        .record_pairs(shelf(target.key), id, &pairs, created);
    (record, true)
}
