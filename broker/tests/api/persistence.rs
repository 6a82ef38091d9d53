//! A restart on the same database file keeps keys, revocations and spend.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestBroker, code, json_of};

pub async fn keys_revocations_and_spend_survive_a_restart(backend: Backend) {
    let mut broker = TestBroker::spawn(backend).await;
    let live = broker
        .issue(
            "temporal-p-charge",
            &["POST /v1/payment_intents"],
            30.0,
            json!("1h"),
        )
        .await;
    let revoked = broker
        .issue("temporal-p-refund", &["POST /v1/refunds"], 0.0, json!("1h"))
        .await;
    let form = [("amount", "2000"), ("currency", "usd")];
    assert_eq!(
        broker
            .stripe_post(&live.token, "/v1/payment_intents", &form)
            .await
            .status(),
        200
    );
    broker
        .admin(Method::DELETE, &format!("/v1/keys/{}", revoked.id), None)
        .await;
    let before = broker.key(&live.id).await;

    broker.restart().await;

    let after = broker.key(&live.id).await;
    assert_eq!(after, before);
    assert_eq!(after["spent_usd"], 20.0);
    let (status, body) = json_of(
        broker
            .stripe_post(&live.token, "/v1/payment_intents", &form)
            .await,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (429, "cap_exhausted"),
        "spend is remembered"
    );
    let (status, body) =
        json_of(broker.stripe_post(&revoked.token, "/v1/refunds", &[]).await).await;
    assert_eq!(
        (status, code(&body)),
        (401, "key_revoked"),
        "revocation is remembered"
    );
    let small = [("amount", "1000"), ("currency", "usd")];
    assert_eq!(
        broker
            .stripe_post(&live.token, "/v1/payment_intents", &small)
            .await
            .status(),
        200,
        "the token still works"
    );
}
