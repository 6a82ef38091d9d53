//! The headers Stripe puts on every answer: `Stripe-Version`, `Request-Id`,
//! and on an idempotent POST the key echoed with `Idempotent-Replayed`.

use crate::helpers::TestSim;

const CREATE: &[(&str, &str)] = &[("amount", "1000"), ("currency", "usd")];

#[tokio::test]
async fn every_answer_names_its_version_and_request() {
    let sim = TestSim::spawn().await;
    let created = sim.post("/v1/payment_intents", CREATE).await;
    let refused = sim
        .post("/v1/payment_intents", &[("currency", "usd")])
        .await;
    let missing = sim.get("/v1/payment_intents/pi_nope").await;
    let stranger = sim.with_secret("sk_nope").get("/v1/payment_intents").await;
    let old = sim.get_version("/v1/payment_intents", "2022-11-15").await;
    for (what, answer, version) in [
        ("created", &created, "2026-10-28.endive"),
        ("refused", &refused, "2026-10-28.endive"),
        ("missing", &missing, "2026-10-28.endive"),
        ("stranger", &stranger, "2026-10-28.endive"),
        ("old", &old, "2022-11-15"),
    ] {
        assert_eq!(answer.header("stripe-version"), Some(version), "{what}");
        let request_id = answer.header("request-id").unwrap_or_default();
        assert!(request_id.starts_with("req_"), "{what}: {request_id}");
        assert_eq!(answer.header("idempotency-key"), None, "{what}");
        assert_eq!(answer.header("idempotent-replayed"), None, "{what}");
    }
    assert_ne!(
        created.header("request-id"),
        refused.header("request-id"),
        "one id per request"
    );
}

#[tokio::test]
async fn an_idempotent_post_echoes_its_key_and_says_whether_it_replayed() {
    let sim = TestSim::spawn().await;
    let first = sim.post_idem("/v1/payment_intents", CREATE, "k-1").await;
    let again = sim.post_idem("/v1/payment_intents", CREATE, "k-1").await;
    let other = sim
        .post_idem(
            "/v1/payment_intents",
            &[("amount", "999"), ("currency", "usd")],
            "k-1",
        )
        .await;
    assert_eq!(first.body["id"], again.body["id"]);
    for (what, answer, replayed) in [
        ("first", &first, "false"),
        ("again", &again, "true"),
        ("other parameters", &other, "false"),
    ] {
        assert_eq!(answer.header("idempotency-key"), Some("k-1"), "{what}");
        assert_eq!(
            answer.header("idempotent-replayed"),
            Some(replayed),
            "{what}"
        );
        assert!(answer.header("request-id").is_some(), "{what}");
    }
    assert_eq!(other.body["error"]["type"], "idempotency_error");
}
