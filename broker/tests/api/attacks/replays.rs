//! Issue 22: a library's retry of a money request (the same Idempotency-Key,
//! the same request) is Stripe's replay of the first: forwarded without a new
//! reservation, so it learns the truth instead of 429; anything else with
//! that key is counted as a request of its own. stripe-sim is the judge.

use serde_json::{Value, json};

use super::{OLD_STRIPE_VERSION, broker_on_sim, sim_payment_intents};
use crate::helpers::{Backend, TestBroker, code, json_of};

/// A $10 confirmed charge with Idempotency-Key `idempotency_key`.
async fn charge(
    broker: &TestBroker,
    token: &str,
    idempotency_key: &str,
    amount: &str,
) -> (u16, Value) {
    json_of(
        broker
            .http
            .post(broker.url("/stripe/v1/payment_intents"))
            .bearer_auth(token)
            .header("Idempotency-Key", idempotency_key)
            .header("Stripe-Version", OLD_STRIPE_VERSION)
            .form(&[
                ("amount", amount),
                ("currency", "usd"),
                ("confirm", "true"),
                ("payment_method", "pm_card_visa"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await
}

pub async fn a_librarys_retry_is_a_replay_not_a_second_charge(backend: Backend) {
    let (broker, sim) = broker_on_sim(backend).await;
    let key = broker
        .issue(
            "temporal-lib-charge",
            &["POST /v1/payment_intents"],
            20.0,
            json!(60),
        )
        .await;
    // The first answer is lost after Stripe committed: the library retries.
    let fault =
        json!({"method": "POST", "path": "/v1/payment_intents", "kind": "drop_after_commit"});
    let staged = reqwest::Client::new()
        .post(format!("{sim}/_sim/faults"))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert!(staged.status().is_success());
    let (status, _) = charge(&broker, &key.token, "lib-retry-1", "1000").await;
    assert!(status >= 500, "the dropped answer: {status}");
    // Two retries of the same request: each is Stripe's saved answer, and
    // neither is refused as over the cap ($10 reserved of $20, once).
    for _ in 0..2 {
        let (status, body) = charge(&broker, &key.token, "lib-retry-1", "1000").await;
        assert_eq!(status, 200, "the retry learns the truth: {body}");
        assert_eq!(body["status"], "succeeded");
    }
    let (_, shown) = json_of(
        broker
            .http
            .get(broker.url(&format!("/v1/keys/{}", key.id)))
            .bearer_auth(crate::helpers::ADMIN_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(shown["spent_usd"], json!(10.0), "counted once: {shown}");
    // Another $10 fits; a third would pass the $20 cap.
    let (status, _) = charge(&broker, &key.token, "lib-retry-2", "1000").await;
    assert_eq!(status, 200);
    let (status, body) = charge(&broker, &key.token, "lib-retry-3", "1000").await;
    assert_eq!((status, code(&body)), (429, "cap_exhausted"), "{body}");
    // The same key with another request is no replay: counted (and here refused).
    let (status, body) = charge(&broker, &key.token, "lib-retry-1", "1500").await;
    assert_eq!((status, code(&body)), (429, "cap_exhausted"), "{body}");
    let succeeded: Vec<Value> = sim_payment_intents(&sim)
        .await
        .into_iter()
        .filter(|pi| pi["status"] == "succeeded")
        .collect();
    assert_eq!(
        succeeded.len(),
        2,
        "one PaymentIntent per charge: {succeeded:?}"
    );
}

/// A retry of a request Stripe refused (a 4xx, which Stripe may not have
/// saved) is counted anew, and a retry under another label's key is not
/// another label's replay.
pub async fn a_retry_of_a_refused_request_or_from_another_label_is_counted(backend: Backend) {
    let (broker, sim) = broker_on_sim(backend).await;
    let key = broker
        .issue(
            "temporal-lib-charge",
            &["POST /v1/payment_intents"],
            10.0,
            json!(60),
        )
        .await;
    let declined = |token: String| {
        let broker = &broker;
        async move {
            json_of(
                broker
                    .http
                    .post(broker.url("/stripe/v1/payment_intents"))
                    .bearer_auth(token)
                    .header("Idempotency-Key", "lib-declined")
                    .header("Stripe-Version", OLD_STRIPE_VERSION)
                    .form(&[
                        ("amount", "1000"),
                        ("currency", "usd"),
                        ("confirm", "true"),
                        ("payment_method", "pm_card_chargeDeclined"),
                    ])
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    assert_eq!(declined(key.token.clone()).await.0, 402);
    assert_eq!(
        declined(key.token.clone()).await.0,
        402,
        "Stripe's saved decline"
    );
    // The label's $10 is whole again: the declines were released each time.
    let (status, body) = charge(&broker, &key.token, "lib-after", "1000").await;
    assert_eq!(status, 200, "{body}");
    // Another label's key with the same Idempotency-Key and request is counted on its own cap.
    let other = broker
        .issue(
            "temporal-other-charge",
            &["POST /v1/payment_intents"],
            5.0,
            json!(60),
        )
        .await;
    let (status, body) = charge(&broker, &other.token, "lib-after", "1000").await;
    assert_eq!((status, code(&body)), (429, "cap_exhausted"), "{body}");
    let succeeded = sim_payment_intents(&sim)
        .await
        .into_iter()
        .filter(|pi| pi["status"] == "succeeded")
        .count();
    assert_eq!(succeeded, 1);
}
