//! `/_sim`: the test-only control API. Stage faults, inspect what the
//! simulator holds and what it was sent, reset. Stripe has nothing like it;
//! nothing outside tests and the local stack should call it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::faults::FaultSpec;
use crate::pi_changes;
use crate::state::Sim;

/// `POST /_sim/faults`: stage a fault; 201 with its id, 400 when it makes no sense.
pub async fn add_fault(
    State(sim): State<Arc<Sim>>,
    spec: Result<Json<FaultSpec>, JsonRejection>,
) -> Response {
    let spec = match spec {
        Ok(Json(spec)) => spec,
        Err(rejection) => return bad_request(&rejection.body_text()),
    };
    match sim.add_fault(spec) {
        Ok(fault) => (StatusCode::CREATED, Json(json!(fault))).into_response(),
        Err(why) => bad_request(&why),
    }
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {"message": message}})),
    )
        .into_response()
}

/// `GET /_sim/faults`: faults still staged.
pub async fn faults(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!({ "data": sim.faults() }))
}

/// `DELETE /_sim/faults`.
pub async fn clear_faults(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.clear_faults();
    StatusCode::NO_CONTENT
}

/// `GET /_sim/payment_intents`: every PaymentIntent, across secrets.
pub async fn payment_intents(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(
        json!({ "data": sim.each_account(|a| a.payment_intents.iter().map(|pi| json!(pi)).collect()) }),
    )
}

/// `GET /_sim/charges`.
pub async fn charges(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!({ "data": sim.each_account(|a| a.charges.iter().map(|c| json!(c)).collect()) }))
}

/// `GET /_sim/refunds`.
pub async fn refunds(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!({ "data": sim.each_account(|a| a.refunds.iter().map(|r| json!(r)).collect()) }))
}

/// `GET /_sim/requests`: every request received, headers and body included.
pub async fn requests(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!({ "data": sim.requests() }))
}

/// `POST /_sim/reset`: forget everything, clock and search delay included.
pub async fn reset(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.reset();
    StatusCode::NO_CONTENT
}

/// `POST /_sim/clock` `{"advance_seconds": N}`: moves the simulator's clock
/// ahead (idempotency keys expire, search catches up); answers the new time.
pub async fn advance_clock(
    State(sim): State<Arc<Sim>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let seconds = match body {
        Ok(Json(body)) => body["advance_seconds"].as_u64(),
        Err(rejection) => return bad_request(&rejection.body_text()),
    };
    let Some(seconds) = seconds else {
        return bad_request("advance_seconds must be a whole number of seconds");
    };
    let now_ms = sim.advance_clock(Duration::from_secs(seconds));
    Json(json!({ "now": now_ms.div_euclid(1000) })).into_response()
}

/// `POST /_sim/config` `{"search_indexing_delay_ms": N}`: how long new
/// PaymentIntents stay out of search results.
pub async fn config(
    State(sim): State<Arc<Sim>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let delay = match body {
        Ok(Json(body)) => body["search_indexing_delay_ms"].as_u64(),
        Err(rejection) => return bad_request(&rejection.body_text()),
    };
    match delay {
        Some(ms) => {
            sim.set_search_delay(Duration::from_millis(ms));
            StatusCode::NO_CONTENT.into_response()
        }
        None => bad_request("search_indexing_delay_ms must be a whole number of milliseconds"),
    }
}

/// The secret a `/_sim` call acts for: `?secret=sk_test_…`, or the only account there is.
fn account_of(sim: &Sim, query: &HashMap<String, String>) -> Option<String> {
    query.get("secret").cloned().or_else(|| {
        let secrets = sim.secrets();
        (secrets.len() == 1).then(|| secrets[0].clone())
    })
}

/// The `{"succeed": bool}` of a control call; without it, or without a body, `true`.
fn succeeds(body: Result<Json<Value>, JsonRejection>) -> bool {
    body.map(|Json(b)| b["succeed"].as_bool().unwrap_or(true))
        .unwrap_or(true)
}

/// `POST /_sim/payment_intents/{id}/authenticate` `{"succeed": bool}`: the
/// customer completes (or fails) 3-D Secure on a `requires_action` PaymentIntent.
pub async fn authenticate(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let succeed = succeeds(body);
    change(
        &sim,
        &query,
        |account, ctx| pi_changes::authenticate(account, &id, succeed, ctx),
        &id,
    )
}

/// `POST /_sim/payment_intents/{id}/settle` `{"succeed": bool}`: a
/// `processing` PaymentIntent's debit settles (default) or fails.
pub async fn settle(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let succeed = succeeds(body);
    change(
        &sim,
        &query,
        |account, _| pi_changes::settle(account, &id, succeed),
        &id,
    )
}

/// `POST /_sim/refunds/{id}/settle` `{"succeed": bool}`: a `pending`
/// refund (of a bank debit) arrives (default) or fails. Answers the refund.
pub async fn settle_refund(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let succeed = succeeds(body);
    let Some(secret) = account_of(&sim, &query) else {
        return bad_request("name the account: ?secret=sk_test_…");
    };
    let result = sim.with_account(&secret, |account| {
        crate::refunds::settle(account, &id, succeed)?;
        Ok::<_, crate::error::StripeError>(json!(account.refunds.get_mut(&id)))
    });
    match result {
        Ok(refund) => Json(refund).into_response(),
        Err(err) => err.response().into_response(),
    }
}

fn change(
    sim: &Sim,
    query: &HashMap<String, String>,
    f: impl FnOnce(
        &mut crate::account::Account,
        &crate::state::Ctx,
    ) -> Result<(), crate::error::StripeError>,
    id: &str,
) -> Response {
    let Some(secret) = account_of(sim, query) else {
        return bad_request("name the account: ?secret=sk_test_…");
    };
    let ctx = sim.ctx(crate::version::ApiVersion::default());
    let result = sim.with_account(&secret, |account| {
        f(account, &ctx).and_then(|()| account.payment_intent_json(id, &[], ctx.version))
    });
    match result {
        Ok(pi) => Json(pi).into_response(),
        Err(err) => err.response().into_response(),
    }
}
