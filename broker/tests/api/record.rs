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

    // At the edge of time: an answer, not a panic.
    for since in ["-8334601228800", "8210266876799", "-9223372036854775808"] {
        let (status, body) = record(
            &broker,
            &first,
            &format!("object=payment_intent&created_since={since}"),
        )
        .await;
        assert!(status == 200 || status == 400, "{since}: {status} {body}");
    }
    // On record, as a proxied read is.
    let (status, audit) = broker
        .admin(
            reqwest::Method::GET,
            "/v1/audit?label_prefix=temporal-checkout-a-",
            None,
        )
        .await;
    assert_eq!(status, 200, "{audit}");
    assert!(
        audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row["path"] == "/v1/keys/self/objects" && row["status"] == 200),
        "{audit}"
    );

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

/// What the recording upstream answers a create: a PaymentIntent `id` of
/// order `order_id`, made by checkout `checkout_id`.
fn made(id: &str, order_id: &str, checkout_id: &str) -> Reply {
    Reply {
        body: json!({
            "id": id, "object": "payment_intent", "amount": 100, "currency": "usd",
            "created": chrono::Utc::now().timestamp(),
            "metadata": {"order_id": order_id, "checkout_id": checkout_id},
        }),
        ..Reply::status(200)
    }
}

/// The form of a create of order `order_id` by checkout `checkout_id`.
fn of(order_id: &'static str, checkout_id: &'static str) -> [(&'static str, &'static str); 2] {
    [
        ("metadata[order_id]", order_id),
        ("metadata[checkout_id]", checkout_id),
    ]
}

/// Creates a PaymentIntent with `extra` form pairs and Idempotency-Key `key`.
async fn create_keyed(
    broker: &TestBroker,
    token: &str,
    extra: &[(&str, &str)],
    key: &str,
) -> (u16, Value) {
    let mut form = vec![("amount", "100"), ("currency", "usd")];
    form.extend_from_slice(extra);
    json_of(
        broker
            .http
            .post(broker.url("/stripe/v1/payment_intents"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// A create whose outcome the broker never learnt (a timeout, a 5xx) keeps
/// the record of its pairs incomplete (`pending`), except to a retry that
/// sends it again (`own_idempotency_key`), until a create with its
/// idempotency key is answered with a PaymentIntent; one whose refusal
/// shows nothing was made does not; a key may not give its own metadata
/// name another value; another account's record is its own; a create of a
/// pair by a key that does not own it (`unowned`) and one an earlier
/// release's broker forwarded (`earlier_release`) make the record of their
/// time incomplete, and what is recorded is answered all the same.
pub async fn a_create_whose_outcome_is_unknown_leaves_the_record_incomplete(backend: Backend) {
    let broker =
        TestBroker::spawn_with(backend, |c| c.upstream_timeout = Duration::from_millis(300)).await;
    let o1 = charge_key(&broker, "temporal-checkout-a-charge", "o-1").await;
    let o2 = charge_key(&broker, "temporal-checkout-b-charge", "o-2").await;
    let o3 = charge_key(&broker, "temporal-checkout-c-charge", "o-3").await;
    let elsewhere = broker
        .issue_with(
            "temporal-checkout-d-charge",
            &[CREATE, LIST],
            100.0,
            json!({"allowed_metadata": {"order_id": "o-3"}, "stripe_account": "acct_1OtherTenant"}),
        )
        .await
        .token;
    let state = |body: &Value| (ids(body), body["incomplete"].clone());
    let whole = |found: &[&str]| {
        (
            (
                found.iter().map(|id| (*id).to_owned()).collect::<Vec<_>>(),
                true,
            ),
            Value::Null,
        )
    };
    let not_whole = |why: &str| (((vec![]), false), json!(why));

    // Refused (400, no PaymentIntent in the error): nothing made, nothing pending.
    broker.upstream.script([Reply::status(400)]);
    let (status, body) = create_keyed(&broker, &o1, &of("o-1", "c-1"), "k-1").await;
    assert_eq!(status, 400, "{body}");
    let (_, body) = record(&broker, &o1, SINCE_EPOCH).await;
    assert_eq!(state(&body), whole(&[]), "{body}");

    // No answer within the upstream timeout: it may have made one.
    broker.upstream.script([Reply {
        delay: Duration::from_secs(3),
        ..Reply::status(200)
    }]);
    let (status, body) = create_keyed(&broker, &o1, &of("o-1", "c-1"), "k-1").await;
    assert_eq!((status, code(&body)), (504, "upstream_timeout"), "{body}");
    let (status, body) = record(&broker, &o1, SINCE_EPOCH).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(state(&body), not_whole("pending"), "{body}");
    // Not to its own retry, which sends it again; to anything else, yes.
    let own = format!("{SINCE_EPOCH}&own_idempotency_key=k-1");
    let (_, body) = record(&broker, &o1, &own).await;
    assert_eq!(state(&body), whole(&[]), "{body}");
    let (_, body) = record(
        &broker,
        &o1,
        &format!("{SINCE_EPOCH}&own_idempotency_key=k-2"),
    )
    .await;
    assert_eq!(state(&body), not_whole("pending"), "{body}");
    let same_order = charge_key(&broker, "temporal-checkout-z-charge", "o-1").await;
    let (_, body) = record(&broker, &same_order, &own).await;
    assert_eq!(
        state(&body),
        not_whole("pending"),
        "another label's key of the same name is another key: {body}"
    );
    // The retry is answered with the PaymentIntent: Stripe made one for the key.
    broker.upstream.script([made("pi_retried1", "o-1", "c-1")]);
    let (status, body) = create_keyed(&broker, &o1, &of("o-1", "c-1"), "k-1").await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = record(&broker, &same_order, SINCE_EPOCH).await;
    assert_eq!(state(&body), whole(&["pi_retried1"]), "{body}");

    // Stripe's 5xx: pending as well.
    broker.upstream.script([Reply::status(500)]);
    let (status, body) = create(&broker, &o2, &of("o-2", "c-2")).await;
    assert_eq!(status, 500, "{body}");
    let (_, body) = record(&broker, &o2, SINCE_EPOCH).await;
    assert_eq!(state(&body), not_whole("pending"), "{body}");

    // A key of one order may not make another order's payment.
    let forwarded = broker.upstream.received().len();
    let (status, body) = create(&broker, &o1, &of("o-3", "c-9")).await;
    assert_eq!((status, code(&body)), (400, "invalid_request"), "{body}");
    assert_eq!(
        broker.upstream.received().len(),
        forwarded,
        "nothing forwarded"
    );
    // Answered creates are named, each on its own account.
    broker.upstream.script([made("pi_platform3", "o-3", "c-3")]);
    let (status, body) = create(&broker, &o3, &of("o-3", "c-3")).await;
    assert_eq!(status, 200, "{body}");
    broker
        .upstream
        .script([made("pi_elsewhere3", "o-3", "c-4")]);
    let (status, body) = create(&broker, &elsewhere, &of("o-3", "c-4")).await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = record(&broker, &o3, SINCE_EPOCH).await;
    assert_eq!(state(&body), whole(&["pi_platform3"]), "{body}");
    let (_, body) = record(&broker, &elsewhere, SINCE_EPOCH).await;
    assert_eq!(state(&body), whole(&["pi_elsewhere3"]), "{body}");

    // A key that does not own the pair (no allowed_metadata: a charge
    // without the order check) made one: the record does not hold it.
    let unscoped = broker
        .issue_with("temporal-checkout-e-charge", &[CREATE], 100.0, json!({}))
        .await
        .token;
    broker.upstream.script([made("pi_unowned3", "o-3", "c-5")]);
    let (status, body) = create(&broker, &unscoped, &of("o-3", "c-5")).await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = record(&broker, &o3, SINCE_EPOCH).await;
    assert_eq!(
        state(&body),
        ((vec!["pi_platform3".to_owned()], false), json!("unowned")),
        "{body}"
    );

    // A create an earlier release forwarded (its row has no records_pairs).
    let db = crate::retention::db::Db::open(&broker, backend).await;
    db.run(
        "INSERT INTO audit (at, key_id, label, vendor, method, path, status, code, reserved_micros, latency_ms, requests, request_id)
         VALUES (?1, NULL, 'temporal-old-release', 'stripe', 'POST', '/v1/payment_intents', 0, 'in_flight', 0, 0, 1, ?2)",
        chrono::Utc::now().timestamp_millis(),
        "req_earlier_release",
    )
    .await;
    let (_, body) = record(&broker, &elsewhere, SINCE_EPOCH).await;
    assert_eq!(
        state(&body),
        (
            (vec!["pi_elsewhere3".to_owned()], false),
            json!("earlier_release")
        ),
        "{body}"
    );
    let later = chrono::Utc::now().timestamp() + 16 * 60;
    let (_, body) = record(
        &broker,
        &o3,
        &format!("object=payment_intent&created_since={later}"),
    )
    .await;
    assert_eq!(
        state(&body),
        whole(&[]),
        "past its time, it counts no more: {body}"
    );
}

/// A create with more metadata keys than Stripe allows is refused before
/// it is forwarded, as Stripe would refuse it.
pub async fn a_create_with_more_metadata_than_stripe_allows_is_refused(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let key = charge_key(&broker, "temporal-checkout-e-charge", "o-5").await;
    let names: Vec<String> = (0..51).map(|n| format!("metadata[k{n}]")).collect();
    let mut form: Vec<(&str, &str)> = names.iter().map(|name| (name.as_str(), "v")).collect();
    form.extend([("amount", "100"), ("currency", "usd")]);
    let (status, body) =
        json_of(broker.stripe_post(&key, "/v1/payment_intents", &form).await).await;
    assert_eq!((status, code(&body)), (400, "invalid_request"), "{body}");
    assert!(broker.upstream.received().is_empty(), "nothing forwarded");
}
