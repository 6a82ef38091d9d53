//! `GET /v1/keys/self/objects?object=payment_intent&created_since=<unix seconds>`:
//! the PaymentIntents made through the broker whose metadata holds every
//! pair of the calling key's `allowed_metadata`, recorded since then, and
//! whether that is all of them (see [`crate::store::pairs`]). Audited as a
//! proxied read is.
//!
//! The caller is a key, by its token, as on the proxy: live, with
//! `allowed_metadata`, and allowed the list (`GET /v1/payment_intents`),
//! whose answer to it this one is a part of. A key holder learns ids only:
//! each object is read through the proxy, where its metadata is checked.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use serde::Deserialize;
use serde_json::{Value, json};

use super::audit::{self, Trail};
use super::authz::namespaced_idempotency_key;
use super::{authn, authz, pairs};
use crate::error::ApiError;
use crate::state::AppState;
use crate::stripe::VENDOR;

/// Query of `GET /v1/keys/self/objects`.
#[derive(Debug, Deserialize)]
pub struct RecordedQuery {
    /// The object type: `payment_intent`, the one recorded.
    object: String,
    /// Unix seconds: objects made at or after this.
    created_since: i64,
    /// The `Idempotency-Key` the caller's create sends (its retry sends it
    /// again, and Stripe answers it with the object an earlier one made):
    /// an earlier create of the caller's label sent with it, still pending,
    /// does not make the answer incomplete.
    own_idempotency_key: Option<String>,
}

/// Its path, as the audit records it.
const PATH: &str = "/v1/keys/self/objects";

/// The handler: audited as a proxied read is (a stranger's as a summary).
pub async fn recorded(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<RecordedQuery>, QueryRejection>,
) -> Response {
    let mut trail = Trail::start("GET");
    trail.vendor = VENDOR.to_owned();
    trail.path = PATH.to_owned();
    let result = lookup(&state, &headers, query, &mut trail).await;
    audit::finish(&state, trail, result.map(IntoResponse::into_response)).await
}

async fn lookup(
    state: &AppState,
    headers: &HeaderMap,
    query: Result<Query<RecordedQuery>, QueryRejection>,
    trail: &mut Trail,
) -> Result<Json<Value>, ApiError> {
    let (key, _) = authn::key(state, headers, pairs::COLLECTION).await?;
    trail.key = Some(key.clone());
    authn::check_live(&key)?;
    let Query(query) =
        query.map_err(|err| ApiError::BadParameter(format!("object and created_since: {err}")))?;
    if query.object != pairs::KIND {
        return Err(ApiError::BadParameter(format!(
            "only `{}` objects are recorded",
            pairs::KIND
        )));
    }
    authz::check_endpoint(&key, "GET", pairs::COLLECTION)?;
    if key.allowed_metadata.is_empty() {
        return Err(ApiError::BadParameter(
            "the key has no allowed_metadata: the record answers by a key's metadata pairs"
                .to_owned(),
        ));
    }
    let since = DateTime::from_timestamp(query.created_since, 0)
        .ok_or_else(|| ApiError::BadParameter("created_since is out of range".to_owned()))?;
    // As the proxy sends it upstream: only this label's own creates match.
    let own = (query.own_idempotency_key.as_deref())
        .map(|client_key| namespaced_idempotency_key(&key.namespace(), client_key));
    let found = state
        .store()
        .recorded(
            pairs::shelf(&key),
            &key.allowed_metadata,
            own.as_deref(),
            since,
        )
        .await?;
    let data: Vec<Value> = (found.ids.iter())
        .map(|id| json!({ "id": id, "object": pairs::KIND }))
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "complete": found.incomplete.is_none(),
        "incomplete": found.incomplete,
    })))
}
