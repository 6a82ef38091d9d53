//! Stripe's test payment methods: declines, 3-D Secure, and a bank debit
//! that stays `processing` until it settles.

use serde_json::json;

use crate::helpers::TestSim;

const NEVER: [(&str, &str); 2] = [
    ("automatic_payment_methods[enabled]", "true"),
    ("automatic_payment_methods[allow_redirects]", "never"),
];

fn confirmed<'a>(pm: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    [
        ("amount", "2000"),
        ("currency", "usd"),
        ("payment_method", pm),
        ("confirm", "true"),
    ]
    .iter()
    .chain(&NEVER)
    .chain(extra)
    .copied()
    .collect()
}

#[tokio::test]
async fn each_test_card_ends_as_stripe_documents() {
    let sim = TestSim::spawn().await;
    for pm in [
        "pm_card_visa",
        "pm_card_visa_debit",
        "pm_card_mastercard",
        "pm_card_amex",
    ] {
        let answer = sim.post("/v1/payment_intents", &confirmed(pm, &[])).await;
        assert_eq!(answer.body["status"], "succeeded", "{pm}: {}", answer.body);
    }
    for (pm, code, decline_code) in [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline"),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            "card_declined",
            "insufficient_funds",
        ),
        (
            "pm_card_chargeDeclinedFraudulent",
            "card_declined",
            "fraudulent",
        ),
        (
            "pm_card_chargeDeclinedExpiredCard",
            "expired_card",
            "expired_card",
        ),
        (
            "pm_card_chargeDeclinedIncorrectCvc",
            "incorrect_cvc",
            "incorrect_cvc",
        ),
        (
            "pm_card_chargeDeclinedProcessingError",
            "processing_error",
            "processing_error",
        ),
    ] {
        let answer = sim.post("/v1/payment_intents", &confirmed(pm, &[])).await;
        assert_eq!((answer.status, answer.error_code()), (402, code), "{pm}");
        assert_eq!(answer.body["error"]["decline_code"], decline_code);
        let pi = &answer.body["error"]["payment_intent"];
        assert_eq!(pi["status"], "requires_payment_method");
        assert_eq!(pi["last_payment_error"]["code"], code);
    }
}

#[tokio::test]
async fn three_d_secure_requires_action_on_session_and_declines_off_session() {
    let sim = TestSim::spawn().await;
    for pm in [
        "pm_card_threeDSecure2Required",
        "pm_card_authenticationRequired",
    ] {
        let on_session = sim.post("/v1/payment_intents", &confirmed(pm, &[])).await;
        assert_eq!(on_session.status, 200, "{}", on_session.body);
        assert_eq!(on_session.body["status"], "requires_action");
        assert_eq!(on_session.body["next_action"]["type"], "use_stripe_sdk");
        assert_eq!(
            on_session.body["latest_charge"],
            json!(null),
            "no charge before authentication"
        );

        let off_session = sim
            .post(
                "/v1/payment_intents",
                &confirmed(pm, &[("customer", "cus_1"), ("off_session", "true")]),
            )
            .await;
        assert_eq!(
            (off_session.status, off_session.error_code()),
            (402, "authentication_required"),
            "{}",
            off_session.body
        );
        assert_eq!(
            off_session.body["error"]["decline_code"],
            "authentication_required"
        );
        assert_eq!(
            off_session.body["error"]["payment_intent"]["status"],
            "requires_payment_method"
        );
    }
    let redirect = sim
        .post(
            "/v1/payment_intents",
            &[
                ("amount", "100"),
                ("currency", "usd"),
                ("payment_method", "pm_card_threeDSecure2Required"),
                ("confirm", "true"),
                ("return_url", "https://shop.example/back"),
            ],
        )
        .await
        .body;
    assert_eq!(redirect["next_action"]["type"], "redirect_to_url");
    assert_eq!(
        redirect["next_action"]["redirect_to_url"]["return_url"],
        "https://shop.example/back"
    );
    let strict = sim
        .post(
            "/v1/payment_intents",
            &confirmed(
                "pm_card_threeDSecure2Required",
                &[("error_on_requires_action", "true")],
            ),
        )
        .await;
    assert_eq!(strict.error_code(), "authentication_required");

    // The customer authenticates: the payment completes with a 3-D Secure charge.
    let id = redirect["id"].as_str().unwrap();
    let done = sim
        .control(
            &format!("/_sim/payment_intents/{id}/authenticate"),
            json!({"succeed": true}),
        )
        .await;
    assert_eq!(done.body["status"], "succeeded", "{}", done.body);
    let charge = sim
        .get(&format!("/v1/payment_intents/{id}?expand[]=latest_charge"))
        .await
        .body["latest_charge"]
        .clone();
    assert_eq!(
        charge["payment_method_details"]["card"]["three_d_secure"]["result"],
        "authenticated"
    );
    let cancel_after = sim
        .post(&format!("/v1/payment_intents/{id}/cancel"), &[])
        .await;
    assert_eq!(cancel_after.error_code(), "payment_intent_unexpected_state");
}

#[tokio::test]
async fn a_bank_debit_stays_processing_until_it_settles() {
    let sim = TestSim::spawn().await;
    let pi = sim
        .post(
            "/v1/payment_intents",
            &confirmed("pm_usBankAccount_success", &[]),
        )
        .await
        .body;
    assert_eq!(pi["status"], "processing", "{pi}");
    assert_eq!(pi["amount_received"], 0);
    let id = pi["id"].as_str().unwrap();
    let refund = sim.post("/v1/refunds", &[("payment_intent", id)]).await;
    assert_eq!(refund.status, 400, "nothing to refund while processing");
    let settled = sim
        .control(&format!("/_sim/payment_intents/{id}/settle"), json!({}))
        .await;
    assert_eq!(settled.body["status"], "succeeded", "{}", settled.body);
    assert_eq!(
        sim.get(&format!("/v1/payment_intents/{id}")).await.body["amount_received"],
        2000
    );
    let again = sim
        .control(&format!("/_sim/payment_intents/{id}/settle"), json!({}))
        .await;
    assert_eq!(again.status, 400, "only a processing PaymentIntent settles");

    let card_only = sim
        .post(
            "/v1/payment_intents",
            &[
                ("amount", "100"),
                ("currency", "usd"),
                ("payment_method", "pm_usBankAccount_success"),
                ("confirm", "true"),
                ("allowed_payment_method_types[0]", "card"),
            ],
        )
        .await;
    assert_eq!(
        card_only.status, 400,
        "a bank account on a card-only PaymentIntent: {}",
        card_only.body
    );
    assert_eq!(card_only.body["error"]["param"], "payment_method");
}

#[tokio::test]
async fn a_bank_debits_refund_stays_pending_until_its_transfer_arrives_or_fails() {
    let sim = TestSim::spawn().await;
    let mut refunds = Vec::new();
    for _ in 0..2 {
        let pi = sim
            .post(
                "/v1/payment_intents",
                &confirmed("pm_usBankAccount_success", &[]),
            )
            .await
            .body;
        let id = pi["id"].as_str().unwrap().to_owned();
        sim.control(&format!("/_sim/payment_intents/{id}/settle"), json!({}))
            .await;
        let refund = sim
            .post("/v1/refunds", &[("payment_intent", &id)])
            .await
            .body;
        assert_eq!(refund["status"], "pending", "{refund}");
        assert_eq!(refund["destination_details"]["type"], "us_bank_transfer");
        assert!(refund.get("failure_reason").is_none(), "{refund}");
        refunds.push((id, refund["id"].as_str().unwrap().to_owned()));
    }
    let (_, arrives) = &refunds[0];
    let arrived = sim
        .control(&format!("/_sim/refunds/{arrives}/settle"), json!({}))
        .await;
    assert_eq!(arrived.body["status"], "succeeded", "{}", arrived.body);
    assert_eq!(
        sim.get(&format!("/v1/refunds/{arrives}")).await.body["status"],
        "succeeded"
    );
    let again = sim
        .control(&format!("/_sim/refunds/{arrives}/settle"), json!({}))
        .await;
    assert_eq!(again.status, 400, "only a pending refund settles");

    let (pi, fails) = &refunds[1];
    let failed = sim
        .control(
            &format!("/_sim/refunds/{fails}/settle"),
            json!({"succeed": false}),
        )
        .await;
    assert_eq!(failed.body["status"], "failed", "{}", failed.body);
    assert_eq!(failed.body["failure_reason"], "declined");
    let charge = sim
        .get(&format!("/v1/payment_intents/{pi}?expand[]=latest_charge"))
        .await
        .body;
    assert_eq!(
        charge["latest_charge"]["amount_refunded"], 0,
        "the money is back with the merchant"
    );
    assert_eq!(charge["latest_charge"]["refunded"], false);

    let card = sim.charge("500").await;
    let card_refund = sim
        .post(
            "/v1/refunds",
            &[("payment_intent", card["id"].as_str().unwrap())],
        )
        .await
        .body;
    assert_eq!(
        card_refund["status"], "succeeded",
        "a card's refund: at once"
    );
}

/// Stripe's documented decline test methods (docs.stripe.com/testing#declined-payments,
/// and the fraud section's `pm_card_radarBlock`): code, decline code, and the
/// page of `doc_url`.
const DECLINES: [(&str, &str, &str, &str); 10] = [
    (
        "pm_card_visa_chargeDeclined",
        "card_declined",
        "generic_decline",
        "card-declined",
    ),
    (
        "pm_card_visa_chargeDeclinedInsufficientFunds",
        "card_declined",
        "insufficient_funds",
        "card-declined",
    ),
    (
        "pm_card_visa_chargeDeclinedLostCard",
        "card_declined",
        "lost_card",
        "card-declined",
    ),
    (
        "pm_card_visa_chargeDeclinedStolenCard",
        "card_declined",
        "stolen_card",
        "card-declined",
    ),
    (
        "pm_card_visa_chargeDeclinedVelocityLimitExceeded",
        "card_declined",
        "card_velocity_exceeded",
        "card-declined",
    ),
    (
        "pm_card_chargeDeclinedExpiredCard",
        "expired_card",
        "expired_card",
        "expired-card",
    ),
    (
        "pm_card_chargeDeclinedIncorrectCvc",
        "incorrect_cvc",
        "incorrect_cvc",
        "incorrect-cvc",
    ),
    (
        "pm_card_chargeDeclinedProcessingError",
        "processing_error",
        "processing_error",
        "processing-error",
    ),
    (
        "pm_card_radarBlock",
        "card_declined",
        "fraudulent",
        "card-declined",
    ),
    (
        "pm_card_chargeDeclinedInsufficientFunds",
        "card_declined",
        "insufficient_funds",
        "card-declined",
    ),
];

#[tokio::test]
async fn each_documented_decline_is_a_full_card_error() {
    let sim = TestSim::spawn().await;
    for (pm, code, decline_code, page) in DECLINES {
        let answer = sim.post("/v1/payment_intents", &confirmed(pm, &[])).await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (402, code),
            "{pm}: {}",
            answer.body
        );
        let error = &answer.body["error"];
        assert_eq!(error["type"], "card_error", "{pm}");
        assert_eq!(error["decline_code"], decline_code, "{pm}");
        assert_eq!(
            error["doc_url"],
            format!("https://stripe.com/docs/error-codes/{page}"),
            "{pm}"
        );
        let pi = &error["payment_intent"];
        assert_eq!(pi["status"], "requires_payment_method", "{pm}");
        assert_eq!(error["charge"], pi["latest_charge"], "{pm}");
        assert!(error["charge"].as_str().unwrap().starts_with("ch_"), "{pm}");
        assert_eq!(error["payment_method"]["id"], pm, "{pm}");
        assert_eq!(error["payment_method"]["object"], "payment_method", "{pm}");
        assert_eq!(error["payment_method"]["type"], "card", "{pm}");
        let request_id = answer.header("request-id").unwrap();
        let log = error["request_log_url"].as_str().unwrap_or_default();
        assert!(
            log.starts_with("https://dashboard.stripe.com/test/logs/") && log.contains(request_id),
            "{pm}: {log}"
        );
        let last = &pi["last_payment_error"];
        for field in [
            "type",
            "code",
            "decline_code",
            "doc_url",
            "charge",
            "message",
        ] {
            assert_eq!(
                last[field], error[field],
                "{pm}: last_payment_error.{field}"
            );
        }
        assert_eq!(last["payment_method"]["id"], pm, "{pm}");
    }
}
