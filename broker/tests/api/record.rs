//! `GET /v1/keys/self/objects`: the PaymentIntents made through the broker
//! with a key's metadata pairs (issue 24: the order check reads them here
//! instead of scanning a busy account's list), whole or said not to be.

use std::time::Duration;

use serde_json::{Value, json};

use crate::attacks::broker_on_sim;
use crate::helpers::{Backend, Reply, TestBroker, code, json_of};

const CREATE: &str = "POST /v1/payment_intents";
const LIST: &str = "GET /v1/payment_intents";

/// The record's answer to `token` for objects since `since` (Unix seconds).
async fn record(broker: &TestBroker, token: &str, query: &str) -> (u16, Value) {
    json_of(
        broker
            .http
            .get(broker.url(&format!("/v1/keys/self/objects?{query}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The ids of a record's answer, and whether it is whole.
fn ids(body: &Value) -> (Vec<String>, bool) {
    let ids = body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {body}"))
        .iter()
        .map(|object| object["id"].as_str().unwrap().to_owned())
        .collect();
    (ids, body["complete"].as_bool().expect("complete"))
}

/// A charge key of `order_id`, as the worker asks for one.
async fn charge_key(broker: &TestBroker, label: &str, order_id: &str) -> String {
    broker
        .issue_with(
            label,
            &[CREATE, LIST],
            100.0,
            json!({"allowed_metadata": {"order_id": order_id}}),
        )
        .await
        .token
}

/// Creates a $1 PaymentIntent with `metadata` (form pairs); status and body.
async fn create(broker: &TestBroker, token: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![("amount", "100"), ("currency", "usd")];
    form.extend_from_slice(extra);
    json_of(
        broker
            .stripe_post(token, "/v1/payment_intents", &form)
            .await,
    )
    .await
}

const SINCE_EPOCH: &str = "object=payment_intent&created_since=0";

/// Every PaymentIntent made through the broker with the key's pairs, by any
/// key (a declined create's too), and none of another order's; the key
/// must be live, hold `allowed_metadata`, and be allowed the list.
pub async fn the_record_names_every_paymentintent_of_an_order_made_through_the_broker(
    backend: Backend,
) {
    let (broker, _sim) = broker_on_sim(backend).await;
    let first = charge_key(&broker, "temporal-checkout-a-charge", "o-1").await;
    let second = charge_key(&broker, "temporal-checkout-b-charge", "o-1").await;
    let other = charge_key(&broker, "temporal-checkout-c-charge", "o-2").await;
    let mut o1 = Vec::new();
    for token in [&first, &second] {
        let (status, body) = create(&broker, token, &[("metadata[order_id]", "o-1")]).await;
        assert_eq!(status, 200, "{body}");
        o1.push(body["id"].as_str().unwrap().to_owned());
    }
    // Declined: Stripe made a PaymentIntent all the same, shown in the error.
    let (status, body) = create(
        &broker,
        &second,
        &[
            ("metadata[order_id]", "o-1"),
            ("payment_method", "pm_card_chargeDeclined"),
            ("confirm", "true"),
            ("automatic_payment_methods[enabled]", "true"),
            ("automatic_payment_methods[allow_redirects]", "never"),
        ],
    )
    .await;
    assert_eq!(status, 402, "{body}");
    o1.push(
        body["error"]["payment_intent"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let (status, body) = create(&broker, &other, &[("metadata[order_id]", "o-2")]).await;
    assert_eq!(status, 200, "{body}");
    let o2 = body["id"].as_str().unwrap().to_owned();

    let (status, body) = record(&broker, &first, SINCE_EPOCH).await;
    assert_eq!(status, 200, "{body}");
    let (mut found, complete) = ids(&body);
    found.sort();
    o1.sort();
    assert_eq!((found, complete), (o1, true), "{body}");
    let (status, body) = record(&broker, &other, SINCE_EPOCH).await;
    assert_eq!((status, ids(&body)), (200, (vec![o2], true)), "{body}");
    let later = chrono::Utc::now().timestamp() + 60;
    let (status, body) = record(
        &broker,
        &first,
        &format!("object=payment_intent&created_since={later}"),
    )
    .await;
    assert_eq!((status, ids(&body)), (200, (vec![], true)), "{body}");

    // Who may ask, and for what.
    let unscoped = broker
        .issue_with("temporal-unscoped-charge", &[CREATE, LIST], 1.0, json!({}))
        .await
        .token;
    let (status, body) = record(&broker, &unscoped, SINCE_EPOCH).await;
    assert_eq!((status, code(&body)), (400, "invalid_request"), "{body}");
    let no_list = broker
        .issue_with(
            "temporal-nolist-charge",
            &[CREATE],
            1.0,
            json!({"allowed_metadata": {"order_id": "o-1"}}),
        )
        .await
        .token;
    let (status, body) = record(&broker, &no_list, SINCE_EPOCH).await;
    assert_eq!(
        (status, code(&body)),
        (403, "endpoint_not_allowed"),
        "{body}"
    );
    let (status, body) = record(&broker, "vk_nobody", SINCE_EPOCH).await;
    assert_eq!((status, code(&body)), (401, "invalid_key"), "{body}");
    let (status, body) = record(&broker, &first, "object=charge&created_since=0").await;
    assert_eq!((status, code(&body)), (400, "invalid_request"), "{body}");
    let (status, body) = record(&broker, &first, "object=payment_intent").await;
    assert_eq!((status, code(&body)), (400, "invalid_request"), "{body}");
    let revoked = broker
        .issue_with(
            "temporal-revoked-charge",
            &[CREATE, LIST],
            1.0,
            json!({"allowed_metadata": {"order_id": "o-1"}}),
        )
        .await;
    let (status, _) = broker
        .admin(
            reqwest::Method::DELETE,
            &format!("/v1/keys/{}", revoked.id),
            None,
        )
        .await;
    assert!(status == 200 || status == 204, "revoke: {status}");
    let (status, body) = record(&broker, &revoked.token, SINCE_EPOCH).await;
    assert_eq!((status, code(&body)), (401, "key_revoked"), "{body}");
}

/// A create whose outcome the broker never learnt (a timeout, a 5xx) keeps
/// the record of its pairs incomplete; one whose refusal shows nothing was
/// made does not; a create of other pairs changes nothing.
pub async fn a_create_whose_outcome_is_unknown_leaves_the_record_incomplete(backend: Backend) {
    let broker =
        TestBroker::spawn_with(backend, |c| c.upstream_timeout = Duration::from_millis(300)).await;
    let o1 = charge_key(&broker, "temporal-checkout-a-charge", "o-1").await;
    let o2 = charge_key(&broker, "temporal-checkout-b-charge", "o-2").await;
    let o3 = charge_key(&broker, "temporal-checkout-c-charge", "o-3").await;

    // Refused (400, no PaymentIntent in the error): nothing made, nothing pending.
    broker.upstream.script([Reply::status(400)]);
    let (status, body) = create(&broker, &o1, &[("metadata[order_id]", "o-1")]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        ids(&record(&broker, &o1, SINCE_EPOCH).await.1),
        (vec![], true)
    );

    // No answer within the upstream timeout: it may have made one.
    broker.upstream.script([Reply {
        delay: Duration::from_secs(3),
        ..Reply::status(200)
    }]);
    let (status, body) = create(&broker, &o1, &[("metadata[order_id]", "o-1")]).await;
    assert_eq!((status, code(&body)), (504, "upstream_timeout"), "{body}");
    let (status, body) = record(&broker, &o1, SINCE_EPOCH).await;
    assert_eq!((status, ids(&body)), (200, (vec![], false)), "{body}");

    // Stripe's 5xx: the same.
    broker.upstream.script([Reply::status(500)]);
    let (status, body) = create(&broker, &o2, &[("metadata[order_id]", "o-2")]).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        ids(&record(&broker, &o2, SINCE_EPOCH).await.1),
        (vec![], false)
    );

    // Another order's record stays whole, and answered creates are named.
    let (status, body) = create(&broker, &o3, &[("metadata[order_id]", "o-3")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ids(&record(&broker, &o3, SINCE_EPOCH).await.1),
        (vec![], true),
        "the recording upstream answers a PaymentIntent without metadata"
    );
}
