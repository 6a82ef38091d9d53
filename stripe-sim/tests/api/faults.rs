//! Staged faults: statuses, delays, and responses lost before or after commit.

use std::time::{Duration, Instant};

use keylease_testkit::eventually;
use serde_json::{Value, json};

use crate::helpers::TestSim;

const CHARGE: &[(&str, &str)] = &[
    ("amount", "4200"),
    ("currency", "usd"),
    ("payment_method", "pm_card_visa"),
    ("confirm", "true"),
    ("automatic_payment_methods[enabled]", "true"),
    ("automatic_payment_methods[allow_redirects]", "never"),
];

#[tokio::test]
async fn status_faults_answer_without_executing_for_count_requests() {
    let sim = TestSim::spawn().await;
    sim.fault(json!({"method": "POST", "path": "/v1/payment_intents", "kind": "status", "status": 500, "count": 2})).await;
    for _ in 0..2 {
        let answer = sim.post_idem("/v1/payment_intents", CHARGE, "k-500").await;
        assert_eq!(answer.status, 500);
        assert_eq!(answer.header("stripe-should-retry"), Some("true"));
        assert_eq!(answer.body["error"]["type"], "api_error");
    }
    assert!(
        sim.held("payment_intents").await.is_empty(),
        "nothing executed"
    );
    let third = sim.post_idem("/v1/payment_intents", CHARGE, "k-500").await;
    assert_eq!(
        third.status, 200,
        "the same key executes once the faults are used up"
    );
    assert!(third.header("idempotent-replayed") == Some("false"));

    sim.fault(json!({"path": "/v1/*", "kind": "status", "status": 429, "should_retry": false, "retry_after": 3})).await;
    let limited = sim.post("/v1/payment_intents", CHARGE).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("stripe-should-retry"), Some("false"));
    assert_eq!(limited.header("retry-after"), Some("3"));
}

#[tokio::test]
async fn faults_match_method_and_path_pattern() {
    let sim = TestSim::spawn().await;
    sim.fault(json!({"method": "POST", "path": "/v1/refunds", "kind": "status", "status": 503}))
        .await;
    sim.fault(
        json!({"method": "GET", "path": "/v1/payment_intents/*", "kind": "status", "status": 502}),
    )
    .await;
    let pi = sim.charge("100").await;
    let get = sim
        .get(&format!(
            "/v1/payment_intents/{}",
            pi["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(get.status, 502);
    let refund = sim
        .post(
            "/v1/refunds",
            &[("payment_intent", pi["id"].as_str().unwrap())],
        )
        .await;
    assert_eq!(refund.status, 503);
    assert!(sim.held("faults").await.is_empty());
    for bad in [
        json!({"path": "/v1/x", "kind": "status"}),
        json!({"path": "/v1/x", "kind": "status", "status": 200}),
        json!({"path": "/v1/x", "kind": "delay"}),
        json!({"path": "/v1/x", "kind": "explode"}),
        json!({"path": "/v1/x", "kind": "drop_after_commit", "count": 0}),
    ] {
        assert_eq!(sim.fault(bad.clone()).await.status, 400, "{bad}");
    }
}

#[tokio::test]
async fn a_storm_hits_a_share_of_requests_and_the_log_says_which() {
    let sim = TestSim::spawn().await;
    let storm = sim
        .fault(json!({"method": "POST", "path": "/v1/payment_intents", "kind": "status", "status": 503, "retry_after": 2, "fraction": 0.5, "duration_ms": 60_000}))
        .await;
    assert_eq!(storm.status, 201);
    assert_eq!(
        storm.body["remaining"],
        Value::Null,
        "no limit but its time"
    );
    let mut statuses = Vec::new();
    for i in 0..6 {
        let answer = sim
            .post_idem("/v1/payment_intents", CHARGE, &format!("storm-{i}"))
            .await;
        if answer.status == 503 {
            assert_eq!(answer.header("retry-after"), Some("2"));
        }
        statuses.push(answer.status);
    }
    assert_eq!(statuses, [503, 200, 503, 200, 503, 200], "every second one");
    let listed = sim.held("faults").await;
    assert_eq!(listed.len(), 1, "still staged: its time is not over");
    assert_eq!(
        (&listed[0]["matched"], &listed[0]["hits"]),
        (&json!(6), &json!(3))
    );

    let requests = sim.held("requests").await;
    let faults: Vec<&Value> = requests.iter().map(|r| &r["fault"]).collect();
    let id = &storm.body["id"];
    assert_eq!(
        faults,
        [id, &Value::Null, id, &Value::Null, id, &Value::Null]
    );
    let times: Vec<i64> = requests
        .iter()
        .map(|r| r["received_at_ms"].as_i64().expect("a receipt time"))
        .collect();
    assert!(times.is_sorted(), "{times:?}");
}

#[tokio::test]
async fn a_request_a_share_passes_over_meets_the_next_fault() {
    let sim = TestSim::spawn().await;
    sim.fault(json!({"path": "/v1/payment_intents", "kind": "status", "status": 503, "fraction": 0.5, "count": 2}))
        .await;
    sim.fault(json!({"path": "/v1/payment_intents", "kind": "status", "status": 502}))
        .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(sim.post("/v1/payment_intents", CHARGE).await.status);
    }
    assert_eq!(statuses, [503, 502, 503, 200]);
    assert!(sim.held("faults").await.is_empty(), "both used up");
}

#[tokio::test]
async fn a_storm_ends_when_its_time_is_over() {
    let sim = TestSim::spawn().await;
    sim.fault(
        json!({"path": "/v1/payment_intents", "kind": "status", "status": 500, "duration_ms": 300}),
    )
    .await;
    assert_eq!(sim.post("/v1/payment_intents", CHARGE).await.status, 500);
    assert_eq!(sim.post("/v1/payment_intents", CHARGE).await.status, 500);
    eventually(Duration::from_secs(5), "the fault used", || async {
        sim.held("faults").await.is_empty().then_some(())
    })
    .await;
    assert_eq!(sim.post("/v1/payment_intents", CHARGE).await.status, 200);
}

#[tokio::test]
async fn a_share_or_window_that_makes_no_sense_is_refused_by_name() {
    let sim = TestSim::spawn().await;
    for (bad, named) in [
        (
            json!({"fraction": 0}),
            "fraction must be from 0.000001 to 1",
        ),
        (
            json!({"fraction": 2}),
            "fraction must be from 0.000001 to 1",
        ),
        (
            json!({"fraction": -0.5}),
            "fraction must be from 0.000001 to 1",
        ),
        (json!({"fraction": "half"}), "fraction"),
        (json!({"duration_ms": 0}), "duration_ms must be at least 1"),
        (json!({"duration_ms": -1}), "duration_ms"),
    ] {
        let mut spec = bad.clone();
        spec["path"] = json!("/v1/payment_intents");
        spec["kind"] = json!("status");
        spec["status"] = json!(503);
        let refused = sim.fault(spec).await;
        assert_eq!(refused.status, 400, "{bad}");
        let message = refused.body["error"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains(named), "{bad}: {message}");
    }
    assert!(sim.held("faults").await.is_empty(), "nothing staged");
}

#[tokio::test]
async fn a_delay_holds_the_answer() {
    let sim = TestSim::spawn().await;
    sim.fault(json!({"path": "/v1/payment_intents", "kind": "delay", "delay_ms": 400}))
        .await;
    let started = Instant::now();
    let answer = sim.post("/v1/payment_intents", CHARGE).await;
    assert_eq!(answer.status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn drop_after_commit_loses_the_answer_and_the_retry_gets_the_same_payment_intent() {
    let sim = TestSim::spawn().await;
    sim.fault(
        json!({"method": "POST", "path": "/v1/payment_intents", "kind": "drop_after_commit"}),
    )
    .await;
    let lost = sim
        .try_post("/v1/payment_intents", CHARGE, Some("order-77"))
        .await;
    assert!(lost.is_err(), "no answer came back: {lost:?}");
    let held = sim.held("payment_intents").await;
    assert_eq!(held.len(), 1, "but the charge happened");
    assert_eq!(held[0]["status"], "succeeded");

    let retry = sim
        .post_idem("/v1/payment_intents", CHARGE, "order-77")
        .await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body["id"], held[0]["id"]);
    assert_eq!(
        sim.held("payment_intents").await.len(),
        1,
        "exactly one PaymentIntent exists"
    );
}

#[tokio::test]
async fn drop_before_commit_loses_the_request_and_the_retry_executes() {
    let sim = TestSim::spawn().await;
    sim.fault(json!({"path": "/v1/payment_intents", "kind": "drop_before_commit"}))
        .await;
    assert!(
        sim.try_post("/v1/payment_intents", CHARGE, Some("order-78"))
            .await
            .is_err()
    );
    assert!(
        sim.held("payment_intents").await.is_empty(),
        "nothing happened"
    );
    let retry = sim
        .post_idem("/v1/payment_intents", CHARGE, "order-78")
        .await;
    assert_eq!(retry.status, 200);
    assert!(
        retry.header("idempotent-replayed") == Some("false"),
        "the key was not used up"
    );
    assert_eq!(sim.held("payment_intents").await.len(), 1);
}

#[tokio::test]
async fn requests_are_recorded_and_reset_forgets_everything() {
    let sim = TestSim::spawn().await;
    sim.post_idem("/v1/payment_intents", CHARGE, "rec-1").await;
    let requests = sim.held("requests").await;
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request["method"], "POST");
    assert_eq!(request["path"], "/v1/payment_intents");
    assert_eq!(
        request["headers"]["authorization"],
        format!("Bearer {}", sim.secret)
    );
    assert_eq!(request["headers"]["idempotency-key"], "rec-1");
    assert!(request["body"].as_str().unwrap().contains("amount=4200"));

    sim.fault(json!({"path": "/v1/refunds", "kind": "status", "status": 500}))
        .await;
    let reset = sim.http.post(sim.url("/_sim/reset")).send().await.unwrap();
    assert_eq!(reset.status(), 204);
    for what in [
        "payment_intents",
        "charges",
        "refunds",
        "requests",
        "faults",
    ] {
        assert!(sim.held(what).await.is_empty(), "{what}");
    }
    let fresh = sim.post_idem("/v1/payment_intents", CHARGE, "rec-1").await;
    assert!(
        fresh.header("idempotent-replayed") == Some("false"),
        "idempotency keys are forgotten too"
    );
}

#[tokio::test]
async fn a_request_whose_client_hangs_up_still_commits() {
    let sim = TestSim::spawn().await;
    sim.fault(
        json!({"method": "POST", "path": "/v1/payment_intents", "kind": "delay", "delay_ms": 800}),
    )
    .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let lost = impatient
        .post(sim.url("/v1/payment_intents"))
        .bearer_auth(&sim.secret)
        .header("Idempotency-Key", "gone-1")
        .form(CHARGE)
        .send()
        .await;
    assert!(lost.is_err(), "the client gave up: {lost:?}");
    eventually(
        Duration::from_secs(5),
        "the PaymentIntent stored",
        || async { (sim.held("payment_intents").await.len() == 1).then_some(()) },
    )
    .await;
    let retry = sim.post_idem("/v1/payment_intents", CHARGE, "gone-1").await;
    assert_eq!(
        retry.header("idempotent-replayed"),
        Some("true"),
        "the charge it left behind is the one a retry finds"
    );
    assert_eq!(sim.held("payment_intents").await.len(), 1);
}

#[tokio::test]
async fn faults_apply_to_idempotent_replays_too() {
    let sim = TestSim::spawn().await;
    sim.fault(json!({"method": "POST", "path": "/v1/payment_intents", "kind": "drop_after_commit", "count": 3})).await;
    for attempt in 0..3 {
        let lost = sim
            .try_post("/v1/payment_intents", CHARGE, Some("order-79"))
            .await;
        assert!(lost.is_err(), "attempt {attempt} lost its answer: {lost:?}");
    }
    assert_eq!(
        sim.held("payment_intents").await.len(),
        1,
        "executed once, replayed twice"
    );
    let fourth = sim
        .post_idem("/v1/payment_intents", CHARGE, "order-79")
        .await;
    assert_eq!(fourth.header("idempotent-replayed"), Some("true"));

    sim.fault(
        json!({"method": "POST", "path": "/v1/payment_intents", "kind": "status", "status": 503}),
    )
    .await;
    let refused_replay = sim
        .post_idem("/v1/payment_intents", CHARGE, "order-79")
        .await;
    assert_eq!(
        refused_replay.status, 503,
        "a replay meets a staged status too"
    );
}
