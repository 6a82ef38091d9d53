//! `/_sim`: the test-only control API. Stage faults, inspect what the
//! simulator holds and what it was sent, reset. Stripe has nothing like it;
//! nothing outside tests and the local stack should call it.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::faults::FaultSpec;
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

/// `POST /_sim/reset`: forget everything.
pub async fn reset(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.reset();
    StatusCode::NO_CONTENT
}
