//! PaymentIntents: shapes, status rules, declines and request errors.

use serde_json::json;

use crate::helpers::{SECRET, TestSim};

/// A form, and the error code and param it must be refused with.
type BadCase = (
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
);

#[tokio::test]
async fn create_and_confirm_with_a_good_card_succeeds() {
    let sim = TestSim::spawn().await;
    let answer = sim
        .post(
            "/v1/payment_intents",
            &[
                ("amount", "2500"),
                ("currency", "USD"),
                ("payment_method", "pm_card_visa"),
                ("confirm", "true"),
                ("automatic_payment_methods[enabled]", "true"),
                ("automatic_payment_methods[allow_redirects]", "never"),
                ("customer", "cus_1"),
                ("description", "order o1"),
                ("metadata[order_id]", "o1"),
                ("metadata[workflow_id]", "wf1"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer
            .header("request-id")
            .is_some_and(|id| id.starts_with("req_"))
    );
    let pi = answer.body;
    assert!(pi["id"].as_str().unwrap().starts_with("pi_"));
    assert_eq!(pi["object"], "payment_intent");
    assert_eq!(pi["status"], "succeeded");
    assert_eq!(pi["amount"], 2500);
    assert_eq!(pi["amount_received"], 2500);
    assert_eq!(pi["currency"], "usd");
    assert_eq!(pi["customer"], "cus_1");
    assert_eq!(pi["livemode"], false);
    assert_eq!(
        pi["metadata"],
        json!({"order_id": "o1", "workflow_id": "wf1"})
    );
    assert!(pi["created"].as_i64().unwrap() > 1_700_000_000);
    let charge_id = pi["latest_charge"].as_str().unwrap();
    assert!(charge_id.starts_with("ch_"));

    let fetched = sim
        .get(&format!(
            "/v1/payment_intents/{}",
            pi["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(fetched.body, pi);
    let expanded = sim
        .get(&format!(
            "/v1/payment_intents/{}?expand[]=latest_charge",
            pi["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(expanded.body["latest_charge"]["id"], charge_id);
    assert_eq!(expanded.body["latest_charge"]["amount_captured"], 2500);
    assert_eq!(
        sim.get(&format!("/v1/charges/{charge_id}")).await.body["paid"],
        true
    );
}

#[tokio::test]
async fn statuses_follow_stripes_rules() {
    let sim = TestSim::spawn().await;
    let created = sim
        .post(
            "/v1/payment_intents",
            &[("amount", "1000"), ("currency", "usd")],
        )
        .await;
    assert_eq!(created.body["status"], "requires_payment_method");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let missing_pm = sim
        .post(&format!("/v1/payment_intents/{id}/confirm"), &[])
        .await;
    assert_eq!(
        (missing_pm.status, missing_pm.error_code()),
        (400, "payment_intent_unexpected_state")
    );
    let confirmed = sim
        .post(
            &format!("/v1/payment_intents/{id}/confirm"),
            &[
                ("payment_method", "pm_card_visa"),
                ("return_url", "https://shop.example/done"),
            ],
        )
        .await;
    assert_eq!(confirmed.body["status"], "succeeded");
    let again = sim
        .post(&format!("/v1/payment_intents/{id}/confirm"), &[])
        .await;
    assert_eq!(
        (again.status, again.error_code()),
        (400, "payment_intent_unexpected_state")
    );
    assert_eq!(again.body["error"]["payment_intent"]["status"], "succeeded");
    let cancel = sim
        .post(&format!("/v1/payment_intents/{id}/cancel"), &[])
        .await;
    assert_eq!(
        (cancel.status, cancel.error_code()),
        (400, "payment_intent_unexpected_state")
    );
    let capture = sim
        .post(&format!("/v1/payment_intents/{id}/capture"), &[])
        .await;
    assert_eq!(
        (capture.status, capture.error_code()),
        (400, "payment_intent_unexpected_state")
    );

    let pending = sim
        .post(
            "/v1/payment_intents",
            &[
                ("amount", "700"),
                ("currency", "eur"),
                ("payment_method", "pm_card_visa"),
            ],
        )
        .await;
    assert_eq!(pending.body["status"], "requires_confirmation");
    let pending_id = pending.body["id"].as_str().unwrap();
    let cancelled = sim
        .post(
            &format!("/v1/payment_intents/{pending_id}/cancel"),
            &[("cancellation_reason", "requested_by_customer")],
        )
        .await;
    assert_eq!(cancelled.body["status"], "canceled");
    assert_eq!(
        cancelled.body["cancellation_reason"],
        "requested_by_customer"
    );
    assert!(cancelled.body["canceled_at"].is_i64());
}

#[tokio::test]
async fn manual_capture_holds_then_captures_once() {
    let sim = TestSim::spawn().await;
    let held = sim
        .post(
            "/v1/payment_intents",
            &[
                ("amount", "5000"),
                ("currency", "usd"),
                ("payment_method", "pm_card_visa"),
                ("confirm", "true"),
                ("automatic_payment_methods[enabled]", "true"),
                ("automatic_payment_methods[allow_redirects]", "never"),
                ("capture_method", "manual"),
            ],
        )
        .await;
    assert_eq!(held.body["status"], "requires_capture");
    assert_eq!(held.body["amount_capturable"], 5000);
    assert_eq!(held.body["amount_received"], 0);
    let id = held.body["id"].as_str().unwrap();
    let too_much = sim
        .post(
            &format!("/v1/payment_intents/{id}/capture"),
            &[("amount_to_capture", "5001")],
        )
        .await;
    assert_eq!(
        (too_much.status, too_much.error_code()),
        (400, "amount_too_large")
    );
    let captured = sim
        .post(
            &format!("/v1/payment_intents/{id}/capture"),
            &[("amount_to_capture", "4000")],
        )
        .await;
    assert_eq!(captured.body["status"], "succeeded");
    assert_eq!(captured.body["amount_received"], 4000);
    assert_eq!(captured.body["amount_capturable"], 0);
    let twice = sim
        .post(&format!("/v1/payment_intents/{id}/capture"), &[])
        .await;
    assert_eq!(twice.status, 400);
}

#[tokio::test]
async fn declined_cards_are_402_with_the_payment_intent() {
    let sim = TestSim::spawn().await;
    for (card, decline_code) in [
        ("pm_card_chargeDeclined", "generic_decline"),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            "insufficient_funds",
        ),
    ] {
        let answer = sim
            .post(
                "/v1/payment_intents",
                &[
                    ("amount", "1000"),
                    ("currency", "usd"),
                    ("payment_method", card),
                    ("confirm", "true"),
                    ("automatic_payment_methods[enabled]", "true"),
                    ("automatic_payment_methods[allow_redirects]", "never"),
                ],
            )
            .await;
        assert_eq!(answer.status, 402, "{card}");
        let error = &answer.body["error"];
        assert_eq!(error["type"], "card_error");
        assert_eq!(error["code"], "card_declined");
        assert_eq!(error["decline_code"], decline_code);
        assert_eq!(error["payment_intent"]["status"], "requires_payment_method");
        assert_eq!(
            error["payment_intent"]["last_payment_error"]["decline_code"],
            decline_code
        );
        assert!(
            answer.header("stripe-should-retry").is_none(),
            "a decline is not worth retrying as is"
        );
    }
    let held = sim.held("payment_intents").await;
    assert_eq!(held.len(), 2, "a declined PaymentIntent still exists");
    assert!(held.iter().all(|pi| pi["amount_received"] == 0));
}

#[tokio::test]
async fn bad_requests_name_their_param() {
    let sim = TestSim::spawn().await;
    let cases: &[BadCase] = &[
        (&[("currency", "usd")], "parameter_missing", "amount"),
        (&[("amount", "100")], "parameter_missing", "currency"),
        (
            &[("amount", "ten"), ("currency", "usd")],
            "parameter_invalid_integer",
            "amount",
        ),
        (
            &[("amount", "100"), ("currency", "usd"), ("colour", "red")],
            "parameter_unknown",
            "colour",
        ),
        (
            &[("amount", "0"), ("currency", "usd")],
            "amount_too_small",
            "amount",
        ),
        (
            &[("amount", "100000000"), ("currency", "usd")],
            "amount_too_large",
            "amount",
        ),
        (
            &[
                ("amount", "100"),
                ("currency", "usd"),
                ("capture_method", "later"),
            ],
            "parameter_invalid",
            "capture_method",
        ),
    ];
    for (form, code, param) in cases {
        let answer = sim.post("/v1/payment_intents", form).await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (400, *code),
            "{form:?}: {}",
            answer.body
        );
        assert_eq!(answer.body["error"]["param"], *param);
        assert_eq!(answer.body["error"]["type"], "invalid_request_error");
    }
    let unknown_card = sim
        .post(
            "/v1/payment_intents",
            &[
                ("amount", "100"),
                ("currency", "usd"),
                ("payment_method", "pm_card_nope"),
            ],
        )
        .await;
    assert_eq!(
        (unknown_card.status, unknown_card.error_code()),
        (404, "resource_missing")
    );
    // A JSON body is not read, so its parameters are missing.
    let json_body = sim
        .http
        .post(sim.url("/v1/payment_intents"))
        .bearer_auth(SECRET)
        .json(&json!({"amount": 100, "currency": "usd"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 400);
    let body: serde_json::Value = json_body.json().await.unwrap();
    assert_eq!(body["error"]["code"], "parameter_missing");
    assert!(
        sim.held("payment_intents").await.is_empty(),
        "no request above created anything"
    );

    let missing = sim.get("/v1/payment_intents/pi_missing").await;
    assert_eq!(
        (missing.status, missing.error_code()),
        (404, "resource_missing")
    );
    let unrouted = sim.get("/v1/customers").await;
    assert_eq!(unrouted.status, 404);
}

#[tokio::test]
async fn a_test_secret_is_required_and_scopes_objects() {
    let sim = TestSim::spawn().await;
    for auth in [
        None,
        Some("Bearer sk_live_real"),
        Some("Bearer vk_vault"),
        Some("Token sk_test_x"),
    ] {
        let mut request = sim.http.get(sim.url("/v1/payment_intents/pi_1"));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        // Stripe's type for a refused key; libraries tell it by the 401.
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    let pi = sim.charge("100").await;
    let path = format!("/v1/payment_intents/{}", pi["id"].as_str().unwrap());
    let basic = sim
        .http
        .get(sim.url(&path))
        .basic_auth(SECRET, Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200, "Basic auth with the key as user");
    let other = sim.with_secret("sk_test_another_account").get(&path).await;
    assert_eq!(
        other.status, 404,
        "another secret sees none of this account's objects"
    );
}
