//! What Stripe refuses before it changes anything: currencies it does not
//! know, amounts under a currency's minimum, and a refused update that must
//! leave the object as it was. And the error `type` of a refused key.

use serde_json::json;

use crate::helpers::TestSim;

#[tokio::test]
async fn an_unknown_currency_is_refused() {
    let sim = TestSim::spawn().await;
    for currency in ["zzz", "usdd", "xx"] {
        let answer = sim
            .post(
                "/v1/payment_intents",
                &[("amount", "1000"), ("currency", currency)],
            )
            .await;
        assert_eq!(answer.status, 400, "{currency}: {}", answer.body);
        assert_eq!(answer.body["error"]["type"], "invalid_request_error");
        assert_eq!(answer.body["error"]["param"], "currency", "{currency}");
    }
    for currency in ["usd", "EUR", "jpy", "gbp"] {
        let answer = sim
            .post(
                "/v1/payment_intents",
                &[("amount", "1000"), ("currency", currency)],
            )
            .await;
        assert_eq!(answer.status, 200, "{currency}: {}", answer.body);
    }
    assert_eq!(sim.held("payment_intents").await.len(), 4);
}

#[tokio::test]
async fn amounts_under_stripes_minimum_are_refused() {
    let sim = TestSim::spawn().await;
    for (amount, currency) in [
        ("10", "usd"),
        ("49", "usd"),
        ("29", "gbp"),
        ("49", "eur"),
        ("49", "jpy"),
    ] {
        let answer = sim
            .post(
                "/v1/payment_intents",
                &[("amount", amount), ("currency", currency)],
            )
            .await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (400, "amount_too_small"),
            "{amount} {currency}: {}",
            answer.body
        );
        assert_eq!(answer.body["error"]["param"], "amount");
        assert_eq!(
            answer.body["error"]["doc_url"],
            "https://stripe.com/docs/error-codes/amount-too-small"
        );
    }
    for (amount, currency) in [("50", "usd"), ("30", "gbp"), ("50", "jpy")] {
        let answer = sim
            .post(
                "/v1/payment_intents",
                &[("amount", amount), ("currency", currency)],
            )
            .await;
        assert_eq!(answer.status, 200, "{amount} {currency}: {}", answer.body);
    }
    let pi = sim
        .post(
            "/v1/payment_intents",
            &[("amount", "1000"), ("currency", "usd")],
        )
        .await
        .body;
    let lowered = sim
        .post(
            &format!("/v1/payment_intents/{}", pi["id"].as_str().unwrap()),
            &[("amount", "10")],
        )
        .await;
    assert_eq!(lowered.error_code(), "amount_too_small", "{}", lowered.body);
}

#[tokio::test]
async fn a_refused_update_changes_nothing() {
    let sim = TestSim::spawn().await;
    let pi = sim
        .post(
            "/v1/payment_intents",
            &[
                ("amount", "1000"),
                ("currency", "usd"),
                ("description", "before"),
            ],
        )
        .await
        .body;
    let path = format!("/v1/payment_intents/{}", pi["id"].as_str().unwrap());
    for refused in [
        vec![
            ("amount", "2000"),
            ("description", "after"),
            ("currency", "zzz"),
        ],
        vec![("amount", "2000"), ("metadata[k][nested]", "v")],
        vec![("description", "after"), ("capture_method", "later")],
    ] {
        let answer = sim.post(&path, &refused).await;
        assert_eq!(answer.status, 400, "{refused:?}: {}", answer.body);
        let now = sim.get(&path).await.body;
        assert_eq!(now, pi, "{refused:?} changed the PaymentIntent");
    }
    // A confirmation refused for want of a return_url keeps what it carried off the object too.
    let confirm = sim
        .post(
            &format!("{path}/confirm"),
            &[
                ("payment_method", "pm_card_visa"),
                ("capture_method", "manual"),
                (
                    "payment_method_options[card][request_incremental_authorization]",
                    "if_available",
                ),
            ],
        )
        .await;
    assert_eq!(confirm.status, 400, "{}", confirm.body);
    let now = sim.get(&path).await.body;
    assert_eq!(now, pi, "a refused confirmation changed the PaymentIntent");
}

#[tokio::test]
async fn a_refused_key_is_an_invalid_request_error_as_stripe_sends_it() {
    let sim = TestSim::spawn().await;
    for secret in ["sk_nope_1234", "sk_live_abcd"] {
        let answer = sim.with_secret(secret).get("/v1/payment_intents").await;
        assert_eq!(answer.status, 401, "{secret}");
        assert_eq!(
            answer.body["error"]["type"],
            json!("invalid_request_error"),
            "Stripe's spec allows api_error, card_error, idempotency_error, invalid_request_error"
        );
    }
}
