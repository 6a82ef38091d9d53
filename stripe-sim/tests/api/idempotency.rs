//! `Idempotency-Key`: replay, parameter conflict, in-flight conflict, and what is not saved.

use std::time::Duration;

use keylease_testkit::eventually;
use serde_json::json;

use crate::helpers::TestSim;

const CHARGE: &[(&str, &str)] = &[
    ("amount", "1500"),
    ("currency", "usd"),
    ("payment_method", "pm_card_visa"),
    ("confirm", "true"),
    ("automatic_payment_methods[enabled]", "true"),
    ("automatic_payment_methods[allow_redirects]", "never"),
];

#[tokio::test]
async fn the_same_key_and_params_replay_the_first_answer() {
    let sim = TestSim::spawn().await;
    let first = sim
        .post_idem("/v1/payment_intents", CHARGE, "order-1")
        .await;
    assert_eq!(first.status, 200);
    assert!(first.header("idempotent-replayed") == Some("false"));
    let second = sim
        .post_idem("/v1/payment_intents", CHARGE, "order-1")
        .await;
    assert_eq!(second.status, 200);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.body, first.body);
    assert_eq!(sim.held("payment_intents").await.len(), 1);
    // Parameter order does not matter.
    let reordered: Vec<(&str, &str)> = CHARGE.iter().rev().copied().collect();
    assert_eq!(
        sim.post_idem("/v1/payment_intents", &reordered, "order-1")
            .await
            .body,
        first.body
    );
}

#[tokio::test]
async fn the_same_key_with_other_params_is_an_idempotency_error() {
    let sim = TestSim::spawn().await;
    sim.post_idem("/v1/payment_intents", CHARGE, "order-2")
        .await;
    let other = sim
        .post_idem(
            "/v1/payment_intents",
            &[("amount", "9999"), ("currency", "usd")],
            "order-2",
        )
        .await;
    assert_eq!(other.status, 400);
    assert_eq!(other.body["error"]["type"], "idempotency_error");
    let other_path = sim
        .post_idem("/v1/refunds", &[("payment_intent", "pi_x")], "order-2")
        .await;
    assert_eq!(
        other_path.body["error"]["type"], "idempotency_error",
        "the path is part of the request"
    );
    assert_eq!(sim.held("payment_intents").await.len(), 1);
}

#[tokio::test]
async fn errors_after_execution_are_saved_and_validation_failures_are_not() {
    let sim = TestSim::spawn().await;
    let declined: &[(&str, &str)] = &[
        ("amount", "100"),
        ("currency", "usd"),
        ("payment_method", "pm_card_chargeDeclined"),
        ("confirm", "true"),
        ("automatic_payment_methods[enabled]", "true"),
        ("automatic_payment_methods[allow_redirects]", "never"),
    ];
    let first = sim
        .post_idem("/v1/payment_intents", declined, "declined-1")
        .await;
    assert_eq!(first.status, 402);
    let replay = sim
        .post_idem("/v1/payment_intents", declined, "declined-1")
        .await;
    assert_eq!(
        (replay.status, replay.header("idempotent-replayed")),
        (402, Some("true"))
    );
    assert_eq!(replay.body, first.body);
    assert_eq!(sim.held("payment_intents").await.len(), 1);

    let invalid = sim
        .post_idem("/v1/payment_intents", &[("currency", "usd")], "fix-me")
        .await;
    assert_eq!(invalid.status, 400);
    let fixed = sim.post_idem("/v1/payment_intents", CHARGE, "fix-me").await;
    assert_eq!(
        fixed.status, 200,
        "a request refused by validation did not use up its key"
    );
    assert!(fixed.header("idempotent-replayed") == Some("false"));
}

#[tokio::test]
async fn a_key_still_executing_is_a_409() {
    let sim = TestSim::spawn().await;
    let staged = sim.fault(json!({"method": "POST", "path": "/v1/payment_intents", "kind": "delay", "delay_ms": 1500})).await;
    assert_eq!(staged.status, 201);
    let slow = tokio::spawn({
        let sim = sim.with_secret(&sim.secret);
        async move { sim.post_idem("/v1/payment_intents", CHARGE, "busy-1").await }
    });
    // The fault is taken only after the request holds its key.
    eventually(Duration::from_secs(5), "the fault used", || async {
        sim.held("faults").await.is_empty().then_some(())
    })
    .await;
    let conflict = sim.post_idem("/v1/payment_intents", CHARGE, "busy-1").await;
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.error_code(), "idempotency_key_in_use");
    assert_eq!(conflict.header("stripe-should-retry"), Some("true"));
    let first = slow.await.unwrap();
    assert_eq!(first.status, 200);
    let after = sim.post_idem("/v1/payment_intents", CHARGE, "busy-1").await;
    assert_eq!(
        (after.header("idempotent-replayed"), &after.body),
        (Some("true"), &first.body)
    );
    assert_eq!(sim.held("payment_intents").await.len(), 1);
}

#[tokio::test]
async fn keys_are_scoped_per_secret() {
    let sim = TestSim::spawn().await;
    let mine = sim
        .post_idem("/v1/payment_intents", CHARGE, "shared-key")
        .await;
    let theirs = sim
        .with_secret("sk_test_other_team")
        .post_idem("/v1/payment_intents", CHARGE, "shared-key")
        .await;
    assert_eq!(theirs.status, 200);
    assert!(theirs.header("idempotent-replayed") == Some("false"));
    assert_ne!(theirs.body["id"], mine.body["id"]);
    assert_eq!(sim.held("payment_intents").await.len(), 2);
}

#[tokio::test]
async fn a_500_raised_while_executing_is_saved_and_replayed() {
    let sim = TestSim::spawn().await;
    let staged = sim.fault(json!({"method": "POST", "path": "/v1/payment_intents", "kind": "error_while_executing"})).await;
    assert_eq!(staged.status, 201);
    let first = sim.post_idem("/v1/payment_intents", CHARGE, "boom-1").await;
    assert_eq!(
        (first.status, first.body["error"]["type"].clone()),
        (500, json!("api_error"))
    );
    assert_eq!(
        first.header("stripe-should-retry"),
        Some("false"),
        "a retry would only replay it"
    );
    let replay = sim.post_idem("/v1/payment_intents", CHARGE, "boom-1").await;
    assert_eq!(
        (replay.status, replay.header("idempotent-replayed")),
        (500, Some("true"))
    );
    assert_eq!(replay.body, first.body);
    assert!(
        sim.held("payment_intents").await.is_empty(),
        "nothing was committed"
    );
    let fresh = sim.post_idem("/v1/payment_intents", CHARGE, "boom-2").await;
    assert_eq!(fresh.status, 200, "another key executes");
}

#[tokio::test]
async fn keys_expire_24_hours_after_first_use() {
    let sim = TestSim::spawn().await;
    let first = sim.post_idem("/v1/payment_intents", CHARGE, "day-1").await;
    let advance = |seconds: u64| {
        let sim = &sim;
        async move {
            let answer = sim
                .http
                .post(sim.url("/_sim/clock"))
                .json(&json!({"advance_seconds": seconds}))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200);
        }
    };
    advance(23 * 3600).await;
    let within = sim.post_idem("/v1/payment_intents", CHARGE, "day-1").await;
    assert_eq!(
        (within.header("idempotent-replayed"), &within.body["id"]),
        (Some("true"), &first.body["id"])
    );
    advance(3600).await;
    let after = sim.post_idem("/v1/payment_intents", CHARGE, "day-1").await;
    assert_eq!(after.status, 200);
    assert!(
        after.header("idempotent-replayed") == Some("false"),
        "an expired key executes afresh"
    );
    assert_ne!(after.body["id"], first.body["id"]);
    assert!(
        after.body["created"].as_i64().unwrap()
            >= first.body["created"].as_i64().unwrap() + 24 * 3600,
        "objects carry the simulator's clock"
    );
    assert_eq!(sim.held("payment_intents").await.len(), 2);
}
