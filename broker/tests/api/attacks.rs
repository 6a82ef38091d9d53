//! What a holder of one key tried against the broker (issue 8), each now refused.
//!
//! Money tests use stripe-sim as the upstream, and its own record of what
//! succeeded as the judge; the rest use the recording upstream.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use keylease_testkit::eventually;

use crate::helpers::{Backend, TestBroker, code, json_of};

/// A Stripe API version before 2023-08-16: confirming a card needs no `return_url`.
pub const OLD_STRIPE_VERSION: &str = "2022-11-15";

/// stripe-sim on a port of its own.
pub async fn spawn_stripe_sim() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(stripe_sim::run(listener, std::future::pending()));
    format!("http://{addr}")
}

/// A broker in front of stripe-sim.
pub async fn broker_on_sim(backend: Backend) -> (TestBroker, String) {
    let sim = spawn_stripe_sim().await;
    let base = sim.clone();
    let broker =
        TestBroker::spawn_with(backend, move |c| c.stripe_api_base = base.parse().unwrap()).await;
    (broker, sim)
}

/// Every PaymentIntent stripe-sim holds.
pub async fn sim_payment_intents(sim: &str) -> Vec<Value> {
    let body: Value = reqwest::get(format!("{sim}/_sim/payment_intents"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = body
        .get("payment_intents")
        .or_else(|| body.get("data"))
        .unwrap_or(&body);
    list.as_array().cloned().unwrap_or_default()
}

/// The sum of stripe-sim's succeeded PaymentIntents, in cents.
pub async fn succeeded_cents(sim: &str) -> i64 {
    sim_payment_intents(sim)
        .await
        .iter()
        .filter(|pi| pi["status"] == "succeeded")
        .map(|pi| pi["amount"].as_i64().unwrap())
        .sum()
}

/// A form POST through the broker on the old API version, as raw form text.
pub async fn post_form(broker: &TestBroker, token: &str, path: &str, form: &str) -> (u16, Value) {
    json_of(
        broker
            .http
            .post(broker.url(&format!("/stripe{path}")))
            .bearer_auth(token)
            .header("Stripe-Version", OLD_STRIPE_VERSION)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.to_owned())
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The allowlist of a key that charges and confirms.
const CHARGE_AND_CONFIRM: [&str; 2] = [
    "POST /v1/payment_intents",
    "POST /v1/payment_intents/*/confirm",
];

/// Creates a $`cents` PaymentIntent with a declining card; its id, or `None` at the cap.
async fn declined(broker: &TestBroker, token: &str, cents: u32) -> Option<String> {
    let form =
        format!("amount={cents}&currency=usd&confirm=true&payment_method=pm_card_chargeDeclined");
    let (status, body) = post_form(broker, token, "/v1/payment_intents", &form).await;
    if status == 429 {
        return None;
    }
    assert_eq!(status, 402, "{body}");
    Some(
        body["error"]["payment_intent"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

/// Confirms PaymentIntent `id` with a good card.
async fn confirm(broker: &TestBroker, token: &str, id: &str) -> (u16, Value) {
    let path = format!("/v1/payment_intents/{id}/confirm");
    post_form(broker, token, &path, "payment_method=pm_card_visa").await
}

/// The published attack: the query says one cent, a bracketed body name says
/// $99,999.99. Refused, and nothing reaches Stripe.
pub async fn cap_is_not_bypassed_by_parameter_spelling(backend: Backend) {
    let (broker, sim) = broker_on_sim(backend).await;
    let key = broker
        .issue(
            "temporal-spell-charge",
            &["POST /v1/payment_intents"],
            5.0,
            json!(60),
        )
        .await;
    let attack = "%5Bamount%5D=9999999&currency=usd&confirm=true&payment_method=pm_card_visa";
    for (path, form) in [
        ("/v1/payment_intents?amount=1", attack),
        ("/v1/payment_intents", attack),
        (
            "/v1/payment_intents",
            "amount=1&%5Bamount%5D=9999999&currency=usd&confirm=true&payment_method=pm_card_visa",
        ),
        (
            "/v1/payment_intents",
            "amount=1&amount%5Bx%5D=9&currency=usd",
        ),
        (
            "/v1/payment_intents",
            "amount=1;amount=9999999&currency=usd",
        ),
        ("/v1/payment_intents?currency=usd", "amount=100"),
    ] {
        let (status, body) = post_form(&broker, &key.token, path, form).await;
        assert_eq!(
            (status, code(&body)),
            (400, "invalid_request"),
            "{path} {form}: {body}"
        );
    }
    let (status, body) = json_of(
        broker
            .http
            .post(broker.url("/stripe/v1/payment_intents"))
            .bearer_auth(&key.token)
            .json(&json!({"amount": 9_999_999, "currency": "usd"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code(&body)), (415, "unsupported_media_type"));
    assert!(
        sim_payment_intents(&sim).await.is_empty(),
        "nothing reached Stripe"
    );
    assert_eq!(broker.key(&key.id).await["spent_usd"], 0.0);
}

/// The published attack: create with a declining card (the reservation is
/// released), then confirm the PaymentIntent with a good card. The confirm
/// is valued at the PaymentIntent's amount, so the cap holds.
pub async fn declined_create_then_confirm_is_counted(backend: Backend) {
    let (broker, sim) = broker_on_sim(backend).await;
    let key = broker
        .issue("temporal-decl-charge", &CHARGE_AND_CONFIRM, 5.0, json!(60))
        .await;
    let mut confirmed = 0;
    for _ in 0..4 {
        let Some(id) = declined(&broker, &key.token, 500).await else {
            break;
        };
        match confirm(&broker, &key.token, &id).await {
            (200, _) => confirmed += 1,
            (429, body) => assert_eq!(code(&body), "cap_exhausted"),
            (other, body) => panic!("confirm answered {other}: {body}"),
        }
    }
    assert_eq!(confirmed, 1, "one $5 confirm fits a $5 cap");
    assert_eq!(
        succeeded_cents(&sim).await,
        500,
        "stripe-sim moved $5 and no more"
    );
    assert_eq!(broker.key(&key.id).await["spent_usd"], 5.0);
}

/// 50 concurrent create/decline/confirm sequences on one key: stripe-sim's
/// own record of succeeded amounts never passes the cap.
pub async fn fifty_concurrent_sequences_never_pass_the_cap(backend: Backend) {
    let (broker, sim) = broker_on_sim(backend).await;
    let key = broker
        .issue("temporal-race-seq", &CHARGE_AND_CONFIRM, 23.0, json!(60))
        .await;
    let sequences = (0..50).map(|n| {
        let (broker, token) = (&broker, key.token.clone());
        async move {
            if n % 2 == 1 {
                let form = "amount=300&currency=usd&confirm=true&payment_method=pm_card_visa";
                post_form(broker, &token, "/v1/payment_intents", form).await;
            } else if let Some(id) = declined(broker, &token, 300).await {
                confirm(broker, &token, &id).await;
            }
        }
    });
    futures::future::join_all(sequences).await;
    let moved = succeeded_cents(&sim).await;
    assert!(moved <= 2300, "stripe-sim moved {moved} cents on a $23 cap");
    assert!(moved >= 300, "some charges went through: {moved}");
    assert_eq!(moved % 300, 0);
}

/// A key reads only objects created under its label, or issued for it;
/// lists and searches only when its allowlist names them exactly.
pub async fn a_key_reaches_only_its_own_objects(backend: Backend) {
    let (broker, _sim) = broker_on_sim(backend).await;
    let endpoints = ["POST /v1/payment_intents", "GET /v1/payment_intents/*"];
    let owner = broker
        .issue("temporal-own-charge", &endpoints, 10.0, json!(60))
        .await;
    let (status, created) = post_form(
        &broker,
        &owner.token,
        "/v1/payment_intents",
        "amount=100&currency=usd",
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let pi = created["id"].as_str().unwrap();
    let read = |token: String, path: String| {
        let broker = &broker;
        async move { json_of(broker.stripe_get(&token, &path).await).await }
    };
    let own_path = format!("/v1/payment_intents/{pi}");
    assert_eq!(read(owner.token.clone(), own_path.clone()).await.0, 200);
    let retry = broker
        .issue("temporal-own-charge", &endpoints, 10.0, json!(60))
        .await;
    assert_eq!(
        read(retry.token.clone(), own_path.clone()).await.0,
        200,
        "the next attempt of the same activity reads what the first created"
    );
    let stranger = broker
        .issue("temporal-other-charge", &endpoints, 10.0, json!(60))
        .await;
    let (status, body) = read(stranger.token.clone(), own_path.clone()).await;
    assert_eq!((status, code(&body)), (403, "object_not_allowed"));
    for listing in [
        "/v1/payment_intents/search?query=status%3A%27succeeded%27",
        "/v1/payment_intents",
    ] {
        let (status, body) = read(stranger.token.clone(), listing.to_owned()).await;
        assert_eq!(
            (status, code(&body)),
            (403, "endpoint_not_allowed"),
            "{listing}"
        );
    }
    let issued_for = broker
        .issue_with(
            "temporal-own-refund",
            &["POST /v1/refunds"],
            0.0,
            json!({"allowed_objects": [pi]}),
        )
        .await;
    let other = broker
        .issue_with(
            "temporal-other-refund",
            &["POST /v1/refunds"],
            0.0,
            json!({"allowed_objects": ["pi_somebody_else"]}),
        )
        .await;
    let (status, body) = post_form(
        &broker,
        &other.token,
        "/v1/refunds",
        &format!("payment_intent={pi}"),
    )
    .await;
    assert_eq!((status, code(&body)), (403, "object_not_allowed"));
    let (status, body) = post_form(
        &broker,
        &issued_for.token,
        "/v1/refunds",
        &format!("payment_intent={pi}"),
    )
    .await;
    // The PaymentIntent was never confirmed: stripe-sim refuses the refund itself.
    assert_ne!(code(&body), "object_not_allowed", "{status} {body}");
}

/// Idempotency keys live in the key label's namespace: another key cannot
/// take or replay a charge's key.
pub async fn idempotency_keys_cannot_be_taken_by_another_key(backend: Backend) {
    let (broker, sim) = broker_on_sim(backend).await;
    let endpoints = ["POST /v1/payment_intents"];
    // Room for the retry: a replay through the same key is reserved again.
    let victim = broker
        .issue("temporal-victim-charge", &endpoints, 20.0, json!(60))
        .await;
    let thief = broker
        .issue("temporal-thief-charge", &endpoints, 10.0, json!(60))
        .await;
    let charge = |token: String, amount: u32| {
        let broker = &broker;
        async move {
            json_of(
                broker
                    .http
                    .post(broker.url("/stripe/v1/payment_intents"))
                    .bearer_auth(token)
                    .header("Idempotency-Key", "keylease:charge:wf:charge:o1")
                    .header("Stripe-Version", OLD_STRIPE_VERSION)
                    .form(&[
                        ("amount", amount.to_string()),
                        ("currency", "usd".to_owned()),
                    ])
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    // The thief goes first with the victim's predictable key and other parameters.
    let (status, stolen) = charge(thief.token.clone(), 1).await;
    assert_eq!(status, 200, "{stolen}");
    let (status, own) = charge(victim.token.clone(), 700).await;
    assert_eq!(status, 200, "the victim's charge is not blocked: {own}");
    assert_eq!(own["amount"], 700);
    assert_ne!(own["id"], stolen["id"]);
    let (_, replay) = charge(victim.token.clone(), 700).await;
    assert_eq!(
        replay["id"], own["id"],
        "the victim's retry still replays its own charge: {replay}"
    );
    assert_eq!(sim_payment_intents(&sim).await.len(), 2);
}

/// `Stripe-Account` goes upstream only for a key issued for that account.
pub async fn stripe_account_is_bound_to_the_key(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let plain = broker
        .issue("temporal-acct-a", &["GET /v1/balance"], 0.0, json!(60))
        .await;
    let bound = broker
        .issue_with(
            "temporal-acct-b",
            &["GET /v1/balance"],
            0.0,
            json!({"stripe_account": "acct_1"}),
        )
        .await;
    let get = |token: String, account: Option<&'static str>| {
        let broker = &broker;
        async move {
            let mut request = broker
                .http
                .get(broker.url("/stripe/v1/balance"))
                .bearer_auth(token);
            if let Some(account) = account {
                request = request.header("Stripe-Account", account);
            }
            json_of(request.send().await.unwrap()).await
        }
    };
    let (status, body) = get(plain.token.clone(), Some("acct_1")).await;
    assert_eq!((status, code(&body)), (403, "account_not_allowed"));
    let (status, body) = get(bound.token.clone(), Some("acct_2")).await;
    assert_eq!((status, code(&body)), (403, "account_not_allowed"));
    assert!(broker.upstream.received().is_empty());
    assert_eq!(get(bound.token.clone(), None).await.0, 200);
    assert_eq!(get(plain.token.clone(), None).await.0, 200);
    let received = broker.upstream.received();
    assert_eq!(
        received[0].headers["stripe-account"], "acct_1",
        "a bound key always acts as its account"
    );
    assert!(received[1].headers.get("stripe-account").is_none());
}

/// Endpoints that move money the broker cannot value are out of reach.
pub async fn unvalued_money_endpoints_are_out_of_reach(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    for endpoints in [
        json!(["POST /v1/*"]),
        json!(["/v1/*"]),
        json!(["POST /v1/transfers"]),
    ] {
        let (status, body) = broker
            .issue_raw(json!({
                "label": "temporal-wide-charge",
                "vendor": "stripe",
                "daily_usd_cap": 5,
                "allowed_endpoints": endpoints,
                "expires_in": 60,
            }))
            .await;
        assert_eq!(
            (status, code(&body)),
            (422, "invalid_request"),
            "{endpoints}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("/v1/transfers")
                || endpoints != json!(["POST /v1/transfers"])
        );
    }
    let key = broker
        .issue_with(
            "temporal-pay-invoice",
            &["POST /v1/invoices/in_1Real/pay"],
            5.0,
            json!({"allowed_objects": ["in_1Real"]}),
        )
        .await;
    let (status, body) = json_of(
        broker
            .stripe_post(&key.token, "/v1/invoices/in_1Real/pay", &[])
            .await,
    )
    .await;
    assert_eq!((status, code(&body)), (403, "endpoint_not_allowed"));
    assert!(broker.upstream.received().is_empty());
}

/// Paths that could be spelled two ways, sent byte for byte: refused before
/// matching or valuation, never forwarded. Methods other than GET, POST and DELETE: 405.
pub async fn encoded_paths_and_odd_methods_are_refused(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue_with(
            "temporal-enc-charge",
            &["POST /v1/payment_intents", "GET /v1/payment_intents/*"],
            5.0,
            json!({"allowed_objects": ["pi_1"]}),
        )
        .await;
    for path in [
        "/stripe/v1/payment%5Fintents",
        "/stripe/v1/%70ayment_intents",
        "/stripe/v1/payment_intents;x",
        "/stripe/v1/payment_intents/pi_1%00",
        "/stripe/v1/payment_intents/pi%5F1",
    ] {
        let status = crate::helpers::raw_status(broker.addr, "POST", path, &key.token).await;
        assert_eq!(status, 400, "{path}");
    }
    for method in ["PUT", "PATCH", "OPTIONS", "post"] {
        let status = crate::helpers::raw_status(
            broker.addr,
            method,
            "/stripe/v1/payment_intents",
            &key.token,
        )
        .await;
        assert_eq!(status, 405, "{method}");
    }
    assert!(broker.upstream.received().is_empty());
}

/// Opens a connection and sends `head` (request line and headers, no body yet).
async fn send_head(addr: std::net::SocketAddr, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

async fn read_status(stream: &mut TcpStream) -> Option<u16> {
    let mut response = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    assert!(read.is_ok(), "the broker answered or closed within 10 s");
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok())
}

/// Reads the interim `100 Continue` answer, within 10 s.
async fn await_continue(stream: &mut TcpStream) {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.unwrap();
            seen.push(byte[0]);
        }
    })
    .await;
    assert!(read.is_ok(), "no 100 Continue within 10 s");
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 100"), "{text}");
}

/// Headers arrive before a revocation, the body after it: the key's state is
/// checked again once the body is in, and nothing is forwarded.
pub async fn a_key_revoked_while_its_body_arrives_forwards_nothing(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue(
            "temporal-slow-charge",
            &["POST /v1/payment_intents"],
            50.0,
            json!(60),
        )
        .await;
    let body = "amount=1000&currency=usd";
    let mut stream = send_head(
        broker.addr,
        &format!(
            "POST /stripe/v1/payment_intents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            key.token,
            body.len()
        ),
    )
    .await;
    // `100 Continue` comes when the broker starts reading the body: the key
    // has passed its first check and the request waits for its body.
    await_continue(&mut stream).await;
    broker
        .admin(Method::DELETE, &format!("/v1/keys/{}", key.id), None)
        .await;
    stream.write_all(body.as_bytes()).await.unwrap();
    assert_eq!(read_status(&mut stream).await, Some(401));
    assert!(broker.upstream.received().is_empty());
    assert_eq!(broker.key(&key.id).await["spent_usd"], 0.0);
}

/// A body that never comes is answered 408; headers that never end close the connection.
#[tokio::test]
async fn slow_clients_are_cut_off() {
    let broker = TestBroker::spawn_with(Backend::Sqlite, |c| {
        c.body_timeout = Duration::from_millis(300);
        c.header_timeout = Duration::from_millis(300);
    })
    .await;
    let key = broker
        .issue(
            "temporal-dribble-charge",
            &["POST /v1/payment_intents"],
            50.0,
            json!(60),
        )
        .await;
    let mut stream = send_head(
        broker.addr,
        &format!(
            "POST /stripe/v1/payment_intents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 24\r\nConnection: close\r\n\r\namount=1",
            key.token
        ),
    )
    .await;
    assert_eq!(read_status(&mut stream).await, Some(408));

    let mut dribble = send_head(
        broker.addr,
        "POST /stripe/v1/payment_intents HTTP/1.1\r\nHost: x\r\n",
    )
    .await;
    let started = std::time::Instant::now();
    let mut buffer = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(10), dribble.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "the connection is closed, not held");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(broker.upstream.received().is_empty());
}

/// A client that leaves mid-request: the upstream call completes, and it is
/// audited and its reservation kept as the answer says.
pub async fn a_vanished_client_still_leaves_a_record(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue(
            "temporal-gone-charge",
            &["POST /v1/payment_intents"],
            50.0,
            json!(60),
        )
        .await;
    broker.upstream.script([crate::helpers::Reply {
        delay: Duration::from_millis(700),
        body: json!({"id": "pi_gone", "object": "payment_intent", "amount": 1000, "currency": "usd"}),
        ..crate::helpers::Reply::status(200)
    }]);
    let request = broker
        .http
        .post(broker.url("/stripe/v1/payment_intents"))
        .bearer_auth(&key.token)
        .form(&[("amount", "1000"), ("currency", "usd")])
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(request.is_err(), "the client gave up first");
    let path = format!("/v1/audit?key_id={}", key.id);
    eventually(Duration::from_secs(5), "the audit record", || async {
        let (_, body) = broker.admin(Method::GET, &path, None).await;
        body["records"]
            .as_array()
            .is_some_and(|r| r.len() == 1)
            .then_some(())
    })
    .await;
    let (_, body) = broker.admin(Method::GET, &path, None).await;
    assert_eq!(body["records"][0]["status"], 200);
    assert_eq!(body["records"][0]["reserved_usd"], 10.0);
    assert_eq!(broker.upstream.received().len(), 1);
    assert_eq!(broker.key(&key.id).await["spent_usd"], 10.0);
}

/// Requests without a key cannot grow the metrics or the audit log.
pub async fn unauthenticated_traffic_cannot_grow_state(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let long_segment = "a".repeat(20_000);
    for vendor in ["junk1", "junk2", long_segment.as_str()] {
        let response = broker
            .http
            .get(broker.url(&format!("/{vendor}/v1/x")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
    }
    let (status, _) = json_of(
        broker
            .stripe_get("vk_unknown", &format!("/v1/{long_segment}"))
            .await,
    )
    .await;
    assert_eq!(status, 401);
    let metrics = broker
        .http
        .get(broker.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("junk"),
        "vendor labels come only from configuration"
    );
    assert!(metrics.contains("vendor=\"unknown\""));
    let (_, audit) = broker.admin(Method::GET, "/v1/audit?limit=10", None).await;
    let records = audit["records"].as_array().unwrap();
    assert_eq!(records.len(), 4, "refused requests are audited");
    for record in &records[1..] {
        assert_eq!(record["vendor"], "unknown");
    }
    assert_eq!(records[0]["vendor"], "stripe");
    for record in records {
        assert!(record["path"].as_str().unwrap().len() <= 256, "{record}");
    }
}

/// Review finding: `metadata[5]=x` is a hash key to one parser and a list
/// index to another (stripe-sim dropped the whole update), so an update
/// valued at one cent left a $5 PaymentIntent to confirm for free.
pub async fn index_keys_parsers_read_differently_are_refused(backend: Backend) {
    let (broker, sim) = broker_on_sim(backend).await;
    let label = "temporal-index-charge";
    let key = broker
        .issue(label, &CHARGE_AND_CONFIRM, 5.0, json!(60))
        .await;
    for _ in 0..3 {
        let Some(id) = declined(&broker, &key.token, 500).await else {
            break;
        };
        let update = format!("/v1/payment_intents/{id}");
        let updater = broker
            .issue(label, &[&format!("POST {update}")], 5.0, json!(60))
            .await;
        for form in [
            "amount=1&metadata[5]=x",
            "amount=1&metadata[0]=x&metadata[2]=y",
        ] {
            let (status, body) = post_form(&broker, &updater.token, &update, form).await;
            assert_eq!(
                (status, code(&body)),
                (400, "invalid_request"),
                "{form}: {body}"
            );
        }
        confirm(&broker, &key.token, &id).await;
    }
    assert_eq!(
        succeeded_cents(&sim).await,
        500,
        "stripe-sim moved $5 and no more"
    );
}

/// Review finding: a create whose answer carries a caller-chosen id (a
/// product's) must not make the label the owner of that id, nor turn a
/// route word into an "object".
pub async fn a_created_object_of_another_kind_claims_nothing(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue(
            "temporal-claim-charge",
            &["POST /v1/products", "GET /v1/*", "POST /v1/refunds"],
            0.0,
            json!(60),
        )
        .await;
    for claimed in ["pi_Victim1", "history"] {
        broker.upstream.script([crate::helpers::Reply {
            body: json!({"id": claimed, "object": "product"}),
            ..crate::helpers::Reply::status(200)
        }]);
        let (status, _) = json_of(
            broker
                .stripe_post(&key.token, "/v1/products", &[("name", "x")])
                .await,
        )
        .await;
        assert_eq!(status, 200, "the answer names {claimed}: it claims nothing");
    }
    let (status, body) = json_of(
        broker
            .stripe_post(
                &key.token,
                "/v1/products",
                &[("name", "x"), ("id", "pi_Victim1")],
            )
            .await,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (403, "object_not_allowed"),
        "an id-shaped value is an object the key must own"
    );
    let (status, body) = json_of(
        broker
            .stripe_get(&key.token, "/v1/payment_intents/pi_Victim1")
            .await,
    )
    .await;
    assert_eq!((status, code(&body)), (403, "object_not_allowed"));
    let (status, body) = json_of(
        broker
            .stripe_post(
                &key.token,
                "/v1/refunds",
                &[("payment_intent", "pi_Victim1")],
            )
            .await,
    )
    .await;
    assert_eq!((status, code(&body)), (403, "object_not_allowed"));
    let (status, body) = json_of(broker.stripe_get(&key.token, "/v1/balance/history").await).await;
    assert_eq!(
        (status, code(&body)),
        (403, "endpoint_not_allowed"),
        "a list stays a list"
    );
    assert_eq!(
        broker.upstream.received().len(),
        2,
        "only the two creates were forwarded"
    );
}

/// Review finding: what a charge pays with, and where its money goes, are
/// objects too: another label's payment method, or any connected account
/// the key was not issued for, is refused.
pub async fn objects_named_in_any_money_parameter_are_checked(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let owner = broker
        .issue(
            "temporal-pm-owner",
            &["POST /v1/payment_methods"],
            0.0,
            json!(60),
        )
        .await;
    broker.upstream.script([crate::helpers::Reply {
        body: json!({"id": "pm_1OwnedByA", "object": "payment_method"}),
        ..crate::helpers::Reply::status(200)
    }]);
    let (status, _) = json_of(
        broker
            .stripe_post(&owner.token, "/v1/payment_methods", &[("type", "card")])
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let key = broker
        .issue(
            "temporal-pm-thief",
            &["POST /v1/payment_intents"],
            50.0,
            json!(60),
        )
        .await;
    for extra in [
        ("payment_method", "pm_1OwnedByA"),
        ("transfer_data[destination]", "acct_1Elsewhere"),
        ("on_behalf_of", "acct_1Elsewhere"),
        ("source", "src_1Other"),
        ("confirmation_token", "ctoken_1VictimOfA"),
        ("customer_account", "acct_1VictimOfA"),
        (
            "payment_method_options[card][mandate_options][reference]",
            "pm_1OwnedByA",
        ),
    ] {
        let (status, body) = json_of(
            broker
                .stripe_post(
                    &key.token,
                    "/v1/payment_intents",
                    &[("amount", "100"), ("currency", "usd"), extra],
                )
                .await,
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (403, "object_not_allowed"),
            "{extra:?}"
        );
    }
    let (status, _) = json_of(
        broker
            .stripe_post(
                &key.token,
                "/v1/payment_intents",
                &[
                    ("amount", "100"),
                    ("currency", "usd"),
                    ("payment_method", "pm_card_visa"),
                ],
            )
            .await,
    )
    .await;
    assert_eq!(
        status, 200,
        "Stripe's test payment methods are nobody's objects"
    );
    let sub = broker
        .issue_with(
            "temporal-sub-cancel",
            &["DELETE /v1/subscriptions/*"],
            0.0,
            json!({"allowed_objects": ["sub_1Owned"]}),
        )
        .await;
    let (status, body) = json_of(
        broker
            .http
            .delete(broker.url("/stripe/v1/subscriptions/sub_1Owned?invoice_now=true"))
            .bearer_auth(&sub.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (403, "endpoint_not_allowed"),
        "a DELETE can charge"
    );
    assert_eq!(broker.upstream.received().len(), 2);
}

/// Review finding: a declined PaymentIntent's `client_secret` (its hold
/// released) could be confirmed straight at Stripe with the publishable key,
/// moving money no cap counts; an ephemeral key would give the same reach.
pub async fn client_secrets_never_leave_the_broker(backend: Backend) {
    let (broker, _sim) = broker_on_sim(backend).await;
    let key = broker
        .issue(
            "temporal-secret-charge",
            &CHARGE_AND_CONFIRM,
            50.0,
            json!(60),
        )
        .await;
    let form = "amount=500&currency=usd&confirm=true&payment_method=pm_card_chargeDeclined";
    let (status, declined) = post_form(&broker, &key.token, "/v1/payment_intents", form).await;
    assert_eq!(status, 402, "{declined}");
    let intent = &declined["error"]["payment_intent"];
    assert!(intent["id"].is_string(), "{declined}");
    assert_eq!(intent["client_secret"], Value::Null, "{declined}");
    let form = "amount=500&currency=usd&metadata[ref]=pi_1NotAnObjectHere&description=order_7";
    let (status, created) = post_form(&broker, &key.token, "/v1/payment_intents", form).await;
    assert_eq!(
        status, 200,
        "metadata and free text are not objects: {created}"
    );
    assert!(created.get("client_secret").is_some() && created["client_secret"].is_null());
    let (status, body) = broker
        .issue_raw(
            json!({"label": "temporal-ek", "vendor": "stripe", "daily_usd_cap": 0,
            "allowed_endpoints": ["POST /v1/ephemeral_keys"], "expires_in": 60}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap();
    let (status, body) = post_form(&broker, token, "/v1/ephemeral_keys", "customer=cus_1X").await;
    assert_eq!((status, code(&body)), (403, "endpoint_not_allowed"));
}

/// Review finding: when the audit row could not be written, the answer went
/// out anyway. Now it is withheld (503) and the client retries.
#[tokio::test]
async fn an_answer_whose_audit_row_cannot_be_written_is_withheld() {
    use sqlx::Connection;
    let broker = TestBroker::spawn(Backend::Sqlite).await;
    let key = broker
        .issue_with(
            "temporal-audit-charge",
            &["GET /v1/payment_intents/*"],
            0.0,
            json!({"allowed_objects": ["pi_1Poison", "pi_1Fine"]}),
        )
        .await;
    let mut db = sqlx::SqliteConnection::connect(&broker.database_url)
        .await
        .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON audit WHEN NEW.path LIKE '%Poison%'
         BEGIN SELECT RAISE(ABORT, 'audit refused'); END",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let (status, body) = json_of(
        broker
            .stripe_get(&key.token, "/v1/payment_intents/pi_1Poison")
            .await,
    )
    .await;
    assert_eq!((status, code(&body)), (503, "audit_unavailable"), "{body}");
    let (status, _) = json_of(
        broker
            .stripe_get(&key.token, "/v1/payment_intents/pi_1Fine")
            .await,
    )
    .await;
    assert_eq!(status, 200, "a recorded request is answered");
    let (_, audit) = broker
        .admin(Method::GET, &format!("/v1/audit?key_id={}", key.id), None)
        .await;
    assert_eq!(audit["records"].as_array().unwrap().len(), 1, "{audit}");
}

/// Review finding: an object's hold outlived the day it was reserved in. A
/// key with a daily cap (it lives over 24 h) created a $5 PaymentIntent
/// without confirming it (the day's $5 reserved), and the next day confirmed
/// it for $0, since the object "already held" $5, leaving the new day's
/// whole cap for more: $10 moved in one day on a $5 daily cap. A hold now
/// counts only in the period it was reserved in.
pub async fn a_hold_from_an_earlier_day_pays_for_nothing_today(backend: Backend) {
    let sim = spawn_stripe_sim().await;
    let base = sim.clone();
    let broker = TestBroker::spawn_with(backend, move |c| {
        c.stripe_api_base = base.parse().unwrap();
        c.max_ttl = Duration::from_secs(3 * 86_400);
    })
    .await;
    let key = broker
        .issue(
            "temporal-days-charge",
            &CHARGE_AND_CONFIRM,
            5.0,
            json!(172_800),
        )
        .await;
    let (status, created) = post_form(
        &broker,
        &key.token,
        "/v1/payment_intents",
        "amount=500&currency=usd&payment_method=pm_card_visa",
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    // Yesterday, as far as the store can tell: the day's spend and the hold
    // both move to the day before.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&broker.database_url).await.unwrap();
    let held_for = format!("{}/{yesterday}", key.id);
    for (sql, value, id) in [
        (
            "UPDATE spend SET day = $1 WHERE key_id = $2",
            &yesterday,
            &key.id,
        ),
        (
            "UPDATE objects SET held_for = $1 WHERE object_id = $2",
            &held_for,
            &id,
        ),
    ] {
        let sql = if backend == Backend::Sqlite {
            sql.replace('$', "?")
        } else {
            sql.to_owned()
        };
        let moved = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .bind(id)
            .execute(&db)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(moved, 1);
    }

    let (status, body) = confirm(&broker, &key.token, &id).await;
    assert_eq!(status, 200, "today's cap pays for today's confirm: {body}");
    let (status, body) = post_form(
        &broker,
        &key.token,
        "/v1/payment_intents",
        "amount=500&currency=usd&confirm=true&payment_method=pm_card_visa",
    )
    .await;
    assert_eq!((status, code(&body)), (429, "cap_exhausted"), "{body}");
    assert_eq!(
        succeeded_cents(&sim).await,
        500,
        "$5 moved today, on a $5 daily cap"
    );
}

/// Adversarial finding: a hold paid for any key of its label. Key A created
/// a PaymentIntent (A's cap held its amount); key B, a later attempt with
/// the same label, confirmed it reserving nothing, and still had its whole
/// cap for a charge of its own: $8 moved with B's token on a $5 cap. A hold
/// now pays only for the key that reserved it.
pub async fn a_hold_pays_only_for_the_key_that_reserved_it(backend: Backend) {
    let (broker, sim) = broker_on_sim(backend).await;
    let label = "temporal-twice-charge";
    let first = broker
        .issue(label, &CHARGE_AND_CONFIRM, 5.0, json!(60))
        .await;
    let (status, created) = post_form(
        &broker,
        &first.token,
        "/v1/payment_intents",
        "amount=300&currency=usd&payment_method=pm_card_visa",
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    let second = broker
        .issue(label, &CHARGE_AND_CONFIRM, 5.0, json!(60))
        .await;
    let (status, body) = confirm(&broker, &second.token, &id).await;
    assert_eq!(
        status, 200,
        "the label's object is the second key's to confirm: {body}"
    );
    assert_eq!(broker.key(&second.id).await["spent_usd"], 3.0);
    let (status, body) = post_form(
        &broker,
        &second.token,
        "/v1/payment_intents",
        "amount=500&currency=usd&confirm=true&payment_method=pm_card_visa",
    )
    .await;
    assert_eq!((status, code(&body)), (429, "cap_exhausted"), "{body}");
    assert_eq!(
        succeeded_cents(&sim).await,
        300,
        "the second key moved $3 of its $5"
    );
}
