//! What a holder of one key tried against the broker (issue 8), each now
//! refused, by subject: [`spend`], [`prices`], [`objects`], [`wire`],
//! [`bodies`] and [`audit`].
//!
//! Money tests use stripe-sim as the upstream, and its own record of what
//! succeeded as the judge; the rest use the recording upstream. The
//! stripe-sim helpers they share are here.

mod audit;
mod bodies;
mod listing;
mod objects;
mod prices;
mod replays;
mod spend;
mod wire;

pub use audit::*;
pub use listing::*;

pub use objects::*;
pub use prices::*;
pub use replays::*;
pub use spend::*;
pub use wire::*;

use serde_json::Value;
use tokio::net::TcpListener;

use crate::helpers::{Backend, TestBroker, json_of};

/// A Stripe API version before 2023-08-16: confirming a card needs no `return_url`.
pub const OLD_STRIPE_VERSION: &str = "2022-11-15";

/// stripe-sim on a port of its own.
pub async fn spawn_stripe_sim() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(stripe_sim::run(listener, std::future::pending()));
    format!("http://{addr}")
}

/// A broker in front of stripe-sim.
pub async fn broker_on_sim(backend: Backend) -> (TestBroker, String) {
    let sim = spawn_stripe_sim().await;
    let base = sim.clone();
    let broker =
        TestBroker::spawn_with(backend, move |c| c.stripe_api_base = base.parse().unwrap()).await;
    (broker, sim)
}

/// Every PaymentIntent stripe-sim holds.
pub async fn sim_payment_intents(sim: &str) -> Vec<Value> {
    let body: Value = reqwest::get(format!("{sim}/_sim/payment_intents"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = body
        .get("payment_intents")
        .or_else(|| body.get("data"))
        .unwrap_or(&body);
    list.as_array().cloned().unwrap_or_default()
}

/// The sum of stripe-sim's succeeded PaymentIntents, in cents.
pub async fn succeeded_cents(sim: &str) -> i64 {
    sim_payment_intents(sim)
        .await
        .iter()
        .filter(|pi| pi["status"] == "succeeded")
        .map(|pi| pi["amount"].as_i64().unwrap())
        .sum()
}

/// A form POST through the broker on the old API version, as raw form text.
pub async fn post_form(broker: &TestBroker, token: &str, path: &str, form: &str) -> (u16, Value) {
    json_of(
        broker
            .http
            .post(broker.url(&format!("/stripe{path}")))
            .bearer_auth(token)
            .header("Stripe-Version", OLD_STRIPE_VERSION)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.to_owned())
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The allowlist of a key that charges and confirms.
const CHARGE_AND_CONFIRM: [&str; 2] = [
    "POST /v1/payment_intents",
    "POST /v1/payment_intents/*/confirm",
];

/// Creates a $`cents` PaymentIntent with a declining card; its id, or `None` at the cap.
async fn declined(broker: &TestBroker, token: &str, cents: u32) -> Option<String> {
    let form =
        format!("amount={cents}&currency=usd&confirm=true&payment_method=pm_card_chargeDeclined");
    let (status, body) = post_form(broker, token, "/v1/payment_intents", &form).await;
    if status == 429 {
        return None;
    }
    assert_eq!(status, 402, "{body}");
    Some(
        body["error"]["payment_intent"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

/// Confirms PaymentIntent `id` with a good card.
async fn confirm(broker: &TestBroker, token: &str, id: &str) -> (u16, Value) {
    let path = format!("/v1/payment_intents/{id}/confirm");
    post_form(broker, token, &path, "payment_method=pm_card_visa").await
}
