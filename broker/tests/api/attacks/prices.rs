//! Prices that go stale: a valued request on an existing object is priced
//! from what the broker knows to be current, never from an older read, and a
//! valued call carries only parameters its valuation reads.

use serde_json::{Value, json};

use super::{broker_on_sim, post_form, succeeded_cents};
use crate::helpers::{Backend, Reply, STRIPE_SECRET, TestBroker, code};

/// A PaymentIntent made at stripe-sim with the secret, outside the broker.
async fn made_elsewhere(sim: &str, cents: u32) -> String {
    let created: Value = reqwest::Client::new()
        .post(format!("{sim}/v1/payment_intents"))
        .bearer_auth(STRIPE_SECRET)
        .form(&[
            ("amount", cents.to_string()),
            ("currency", "usd".to_owned()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["id"].as_str().unwrap().to_owned()
}

/// The merchant, with the real secret, sets PaymentIntent `id`'s amount at Stripe.
async fn raise_at_stripe(sim: &str, id: &str, cents: u32) {
    let raised = reqwest::Client::new()
        .post(format!("{sim}/v1/payment_intents/{id}"))
        .bearer_auth(STRIPE_SECRET)
        .form(&[("amount", cents.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        raised.status(),
        200,
        "the merchant raises the amount at Stripe"
    );
}

/// Issue 20: a PaymentIntent made elsewhere, named in a $2 key's
/// `allowed_objects`. A declined confirm made the broker keep the 100¢ it
/// read; the merchant raised the amount to 90,000¢ at Stripe; the key's next
/// confirm moved $900, counted as $1. A read now prices only its own request.
pub async fn a_price_read_for_one_request_is_not_kept_for_the_next(backend: Backend) {
    let (broker, sim) = broker_on_sim(backend).await;
    let id = made_elsewhere(&sim, 100).await;
    let key = broker
        .issue_with(
            "temporal-stale-charge",
            &["POST /v1/payment_intents/*/confirm"],
            2.0,
            json!({"allowed_objects": [id]}),
        )
        .await;
    let confirm = format!("/v1/payment_intents/{id}/confirm");
    let (status, body) = post_form(
        &broker,
        &key.token,
        &confirm,
        "payment_method=pm_card_chargeDeclined&return_url=https://shop.example/done",
    )
    .await;
    assert_eq!(status, 402, "{body}");

    raise_at_stripe(&sim, &id, 90000).await;

    let (status, body) = post_form(
        &broker,
        &key.token,
        &confirm,
        "payment_method=pm_card_visa&return_url=https://shop.example/done",
    )
    .await;
    assert_eq!((status, code(&body)), (429, "cap_exhausted"), "{body}");
    assert_eq!(succeeded_cents(&sim).await, 0, "nothing moved on a $2 key");
}

/// Issue 20: an `increment_authorization` answered 4xx after Stripe had
/// already raised the amount left the broker's old price in place, and the
/// following capture was valued at it (100 rounds captured $948.50 on a $10
/// cap). Any non-2xx answer to a valued request now makes the price unknown,
/// and the capture reads it again.
pub async fn a_failed_valued_request_leaves_no_price_behind(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let id = "pi_3ElsewhereMade1";
    let key = broker
        .issue_with(
            "temporal-increment-charge",
            &[
                "POST /v1/payment_intents/*/increment_authorization",
                "POST /v1/payment_intents/*/capture",
            ],
            10.0,
            json!({"allowed_objects": [id]}),
        )
        .await;
    let priced = |cents: i64| Reply {
        body: json!({"id": id, "object": "payment_intent", "amount": cents, "currency": "usd"}),
        ..Reply::status(200)
    };
    broker.upstream.script([
        priced(100),        // the broker reads the price: 100¢
        Reply::status(400), // the increment is refused, after Stripe raised the amount to 500¢
        priced(500),        // the capture's read sees 500¢
        priced(500),        // the capture
    ]);
    let increment = format!("/v1/payment_intents/{id}/increment_authorization");
    let (status, _) = post_form(&broker, &key.token, &increment, "amount=500").await;
    assert_eq!(status, 400);
    assert_eq!(
        broker.key(&key.id).await["spent_usd"],
        0.0,
        "the refusal released its hold"
    );

    let capture = format!("/v1/payment_intents/{id}/capture");
    let (status, body) = post_form(&broker, &key.token, &capture, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        broker.key(&key.id).await["spent_usd"],
        5.0,
        "the capture is valued at the amount Stripe holds now"
    );
    let methods: Vec<String> = broker
        .upstream
        .received()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path.rsplit('/').next().unwrap()))
        .collect();
    assert_eq!(
        methods,
        [
            format!("GET {id}"),
            "POST increment_authorization".to_owned(),
            format!("GET {id}"),
            "POST capture".to_owned(),
        ]
    );
}

/// Issue 20: `confirm` with `amount_to_confirm` (a parameter of later
/// Stripe versions) was forwarded, valued at the stored amount. A valued
/// call now carries only the parameters its valuation knows; any other is a
/// 400 naming it, and nothing is forwarded or reserved.
pub async fn a_valued_call_with_a_parameter_the_table_does_not_know_is_refused(backend: Backend) {
    let (broker, sim) = broker_on_sim(backend).await;
    let key = broker
        .issue(
            "temporal-unknown-param-charge",
            &[
                "POST /v1/payment_intents",
                "POST /v1/payment_intents/*/confirm",
            ],
            5.0,
            json!("1h"),
        )
        .await;
    let (status, body) = post_form(
        &broker,
        &key.token,
        "/v1/payment_intents",
        "amount=100&currency=usd&payment_method=pm_card_visa",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().unwrap();
    for (path, form, name) in [
        (
            format!("/v1/payment_intents/{id}/confirm"),
            "payment_method=pm_card_visa&amount_to_confirm=100".to_owned(),
            "amount_to_confirm",
        ),
        (
            "/v1/payment_intents".to_owned(),
            "amount=100&currency=usd&amount_details[tip][amount]=90000".to_owned(),
            "amount_details",
        ),
    ] {
        let (status, body) = post_form(&broker, &key.token, &path, &form).await;
        assert_eq!(status, 400, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{name}`")), "{message}");
    }
    assert_eq!(succeeded_cents(&sim).await, 0);
    assert_eq!(
        broker.key(&key.id).await["spent_usd"],
        1.0,
        "only the create holds"
    );
}

/// Found by attacking this session's build: a create replayed with its
/// `Idempotency-Key` gets Stripe's saved answer, and the broker took that
/// answer's amount as the PaymentIntent's current price and held it. After
/// a declined confirm and the merchant raising the amount at Stripe, the
/// replay reset the price to 100¢ and the next confirm moved $5,000 on a
/// $10 key. A create's hold and price now go only to an object its own
/// answer made; a replay forgets the price instead.
pub async fn a_replayed_create_does_not_reset_a_price(backend: Backend) {
    let (broker, sim) = broker_on_sim(backend).await;
    let key = broker
        .issue(
            "temporal-replay-charge",
            &[
                "POST /v1/payment_intents",
                "POST /v1/payment_intents/*/confirm",
            ],
            10.0,
            json!("1h"),
        )
        .await;
    let create = || {
        broker
            .http
            .post(broker.url("/stripe/v1/payment_intents"))
            .bearer_auth(&key.token)
            .header("Idempotency-Key", "order-replayed-1")
            .form(&[
                ("amount", "100"),
                ("currency", "usd"),
                ("allowed_payment_method_types[]", "card"),
            ])
            .send()
    };
    let (status, created) = crate::helpers::json_of(create().await.unwrap()).await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let confirm = format!("/v1/payment_intents/{id}/confirm");
    let (status, body) = post_form(
        &broker,
        &key.token,
        &confirm,
        "payment_method=pm_card_chargeDeclined",
    )
    .await;
    assert_eq!(status, 402, "{body}");

    raise_at_stripe(&sim, &id, 500000).await;

    let (status, replayed) = crate::helpers::json_of(create().await.unwrap()).await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed["amount"], 100, "Stripe's saved answer");

    let (status, body) =
        post_form(&broker, &key.token, &confirm, "payment_method=pm_card_visa").await;
    assert_eq!((status, code(&body)), (429, "cap_exhausted"), "{body}");
    assert_eq!(succeeded_cents(&sim).await, 0, "nothing moved on a $10 key");
}
