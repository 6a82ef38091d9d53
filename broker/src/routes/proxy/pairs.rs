//! The metadata pairs of the PaymentIntents made through the proxy (see
//! [`crate::store::pairs`]): pending before a create is forwarded,
//! recorded from its answer.

use chrono::Utc;
use serde_json::Value;

use super::spend::Target;
use super::upstream::{Upstream, UpstreamFailure};
use crate::error::ApiError;
use crate::form::FormParams;
use crate::group_commit::Statement;
use crate::state::AppState;
use crate::store::pairs::MAX_PAIRS;
use crate::stripe::VENDOR;
use crate::stripe::endpoints::created_kind;

/// The object type whose pairs are recorded.
pub const KIND: &str = "payment_intent";
/// The id prefix of that type.
pub const PREFIX: &str = "pi_";

/// Whether `target` creates a PaymentIntent.
fn creates(target: Target<'_>) -> bool {
    target.method == "POST" && created_kind(target.path).is_some_and(|(kind, _)| kind == KIND)
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
        .pending_pairs(request_id, VENDOR, KIND, &pairs, Utc::now()))
}

/// What an answer of a POST records: the pairs of the PaymentIntent it
/// shows (the object answered, or a declined create's `error.payment_intent`),
/// and whether a create's outcome is now known, so that its pending pairs go.
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
    if target.method != "POST" || upstream.status.is_server_error() {
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
    let record = state
        .store()
        .record_pairs(VENDOR, KIND, id, &pairs, Utc::now());
    (record, true)
}
