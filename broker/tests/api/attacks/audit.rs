//! Attacks on the record: a client that vanishes mid-request, traffic
//! without a key, and an answer whose audit row cannot be written.

use std::time::Duration;

use keylease_testkit::eventually;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestBroker, code, json_of};

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
    // The row is written before forwarding (status 0) and completed with the answer.
    eventually(
        Duration::from_secs(5),
        "the completed audit record",
        || async {
            let (_, body) = broker.admin(Method::GET, &path, None).await;
            body["records"]
                .as_array()
                .is_some_and(|r| r.len() == 1 && r[0]["status"] != 0)
                .then_some(())
        },
    )
    .await;
    let (_, body) = broker.admin(Method::GET, &path, None).await;
    assert_eq!(body["records"][0]["status"], 200);
    assert_eq!(body["records"][0]["reserved_usd"], 10.0);
    assert_eq!(broker.upstream.received().len(), 1);
    assert_eq!(broker.key(&key.id).await["spent_usd"], 10.0);
}

/// Requests without a key cannot grow the metrics or the audit log.
///
/// Issue 20: 3,000 requests with random tokens in 10 s wrote 3,000 fsync'd
/// audit rows. Such requests are now counted, and written as one summary
/// row per kind per interval, whatever their number or their text.
pub async fn unauthenticated_traffic_cannot_grow_state(backend: Backend) {
    let broker = TestBroker::spawn_with(backend, |config| {
        config.unauthenticated_audit_interval = Duration::from_millis(200);
    })
    .await;
    let started = std::time::Instant::now();
    // Long, but within the header limit: each reaches the proxy's checks.
    let long_segment = "a".repeat(10_000);
    for vendor in ["junk1", "junk2", long_segment.as_str()] {
        let response = broker
            .http
            .get(broker.url(&format!("/{vendor}/v1/x")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
    }
    let strangers = (0..200).map(|i| {
        let broker = &broker;
        let path = format!("/v1/{long_segment}{i}");
        async move {
            let (status, _) =
                json_of(broker.stripe_get(&format!("vk_random_{i}"), &path).await).await;
            status
        }
    });
    for status in futures::future::join_all(strangers).await {
        assert_eq!(status, 401);
    }
    let metrics = broker.metrics().await;
    assert!(
        !metrics.contains("junk"),
        "vendor labels come only from configuration"
    );
    assert!(metrics.contains("vendor=\"unknown\""));
    assert!(
        metrics.contains("keylease_broker_unauthenticated_requests_total 203"),
        "{metrics}"
    );
    let records =
        keylease_testkit::eventually(Duration::from_secs(10), "the summary rows", || async {
            let (_, audit) = broker.admin(Method::GET, "/v1/audit?limit=10", None).await;
            let records = audit["records"].as_array().unwrap().clone();
            let counted: i64 = records
                .iter()
                .map(|r| r["requests"].as_i64().unwrap())
                .sum();
            (counted == 203).then_some(records)
        })
        .await;
    // One row per kind per 200 ms interval, however many requests.
    let intervals = started.elapsed().as_millis() / 200 + 2;
    assert!(
        records.len() as u128 <= 2 * intervals,
        "{} rows for 203 requests over {intervals} intervals",
        records.len()
    );
    let mut counted = std::collections::BTreeMap::new();
    for record in &records {
        assert!(
            record["key_id"].is_null() && record["path"] == "",
            "{record}"
        );
        let kind = (
            record["vendor"].as_str().unwrap().to_owned(),
            record["status"].as_u64().unwrap(),
            record["code"].as_str().unwrap().to_owned(),
        );
        *counted.entry(kind).or_insert(0) += record["requests"].as_i64().unwrap();
    }
    let expected = std::collections::BTreeMap::from([
        (("stripe".to_owned(), 401, "invalid_key".to_owned()), 200),
        (("unknown".to_owned(), 404, "not_found".to_owned()), 3),
    ]);
    assert_eq!(counted, expected);
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

/// Issue 20: a $25 charge in flight when the broker died had been executed
/// at Stripe, and after the restart it had no audit row. A request that
/// moves money is now on record before it is forwarded, in the commit of
/// its reservation: after `kill -9` with the charge at Stripe, the row is
/// there, `in_flight`, holding the $25.
pub async fn a_money_request_is_on_record_before_it_is_forwarded(backend: Backend) {
    let upstream = crate::helpers::TestUpstream::spawn().await;
    let database = crate::helpers::TestDatabase::create(backend).await;
    let mut broker = keylease_testkit::BrokerProcess::spawn(
        crate::helpers::broker_settings(),
        upstream.addr,
        &database.url,
    )
    .await;
    let base = broker.base();
    let http = reqwest::Client::new();
    let (status, issued) = json_of(
        http.post(format!("{base}/v1/keys"))
            .bearer_auth(crate::helpers::ADMIN_TOKEN)
            .json(
                &json!({"label": "temporal-crash-charge", "vendor": "stripe", "daily_usd_cap": 30,
                          "allowed_endpoints": ["POST /v1/payment_intents"], "expires_in": 600}),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    let key_id = issued["id"].as_str().unwrap().to_owned();
    // Stripe takes the charge and is slow to answer: the broker dies first.
    upstream.script([crate::helpers::Reply {
        delay: Duration::from_secs(60),
        ..crate::helpers::Reply::status(200)
    }]);
    let charge = http
        .post(format!("{base}/stripe/v1/payment_intents"))
        .bearer_auth(issued["token"].as_str().unwrap())
        .form(&[("amount", "2500"), ("currency", "usd")])
        .send();
    let in_flight = tokio::spawn(charge);
    eventually(Duration::from_secs(10), "the charge at Stripe", || async {
        (upstream.received().len() == 1).then_some(())
    })
    .await;
    broker.kill().await;
    assert!(
        in_flight.await.unwrap().is_err(),
        "the client got no answer"
    );

    broker.restart().await;
    let (status, audit) = json_of(
        http.get(format!("{base}/v1/audit?key_id={key_id}"))
            .bearer_auth(crate::helpers::ADMIN_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{audit}");
    let records = audit["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{audit}");
    assert_eq!(records[0]["path"], "/v1/payment_intents");
    assert_eq!(records[0]["status"], 0);
    assert_eq!(records[0]["code"], "in_flight");
    assert_eq!(records[0]["reserved_usd"], 25.0);
}

/// Issue 20: admin calls (issue, revoke, bulk revoke, list) were not
/// audited. Each is now a row of `kind=admin` naming the admin token by its
/// id (`admin-` and 12 hex digits of its SHA-256), never the token; an issue
/// or a revocation commits its row with its own write. Proxied requests
/// stay the default listing.
pub async fn admin_calls_are_audited_with_the_tokens_id_never_the_token(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue(
            "temporal-adm-charge",
            &["POST /v1/payment_intents"],
            5.0,
            json!(60),
        )
        .await;
    let (status, _) = broker
        .admin(Method::DELETE, &format!("/v1/keys/{}", key.id), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = broker
        .admin(
            Method::DELETE,
            "/v1/keys/key_0000000000000000000000000000dead",
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = broker
        .admin(
            Method::POST,
            "/v1/keys/revoke",
            Some(json!({"label_prefix": "temporal-adm-"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = broker.admin(Method::GET, "/v1/keys?limit=5", None).await;
    assert_eq!(status, 200);
    let (status, _) = broker.issue_raw(json!({"label": ""})).await;
    assert_eq!(status, 422);

    let (_, audit) = broker
        .admin(Method::GET, "/v1/audit?kind=admin&limit=20", None)
        .await;
    let text = audit.to_string();
    assert!(
        !text.contains(crate::helpers::ADMIN_TOKEN),
        "never the token"
    );
    let records = audit["records"].as_array().unwrap();
    let actor = records[0]["actor"].as_str().unwrap().to_owned();
    assert!(actor.starts_with("admin-") && actor.len() == 18, "{actor}");
    assert!(
        records
            .iter()
            .all(|r| r["actor"] == actor.as_str() && r["vendor"] == "admin")
    );
    let seen: Vec<(String, String, u64)> = records
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_owned(),
                r["path"].as_str().unwrap().to_owned(),
                r["status"].as_u64().unwrap(),
            )
        })
        .rev()
        .collect();
    let revoke_path = format!("/v1/keys/{}", key.id);
    let expected = [
        ("POST", "/v1/keys", 201),
        ("DELETE", revoke_path.as_str(), 204),
        (
            "DELETE",
            "/v1/keys/key_0000000000000000000000000000dead",
            404,
        ),
        ("POST", "/v1/keys/revoke", 200),
        ("GET", "/v1/keys", 200),
        ("POST", "/v1/keys", 422),
    ];
    let expected: Vec<(String, String, u64)> = expected
        .iter()
        .map(|(m, p, s)| ((*m).to_owned(), (*p).to_owned(), *s))
        .collect();
    assert_eq!(seen, expected);
    let issued = &records[records.len() - 1];
    assert_eq!(issued["key_id"], key.id.as_str());
    assert_eq!(issued["label"], "temporal-adm-charge");

    let (_, proxied) = broker.admin(Method::GET, "/v1/audit?limit=20", None).await;
    assert!(
        proxied["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["vendor"] != "admin"),
        "the default listing holds proxied requests: {proxied}"
    );
}

/// Found by the second attack round: each request with a revoked or
/// expired key's token still cost one durable audit row and one log line.
/// They are counted in the summary rows too, one per key per interval,
/// still naming the key.
pub async fn a_revoked_keys_requests_are_summarised_by_key(backend: Backend) {
    let broker = TestBroker::spawn_with(backend, |config| {
        config.unauthenticated_audit_interval = Duration::from_millis(200);
    })
    .await;
    let key = broker
        .issue("temporal-dead-charge", &["GET /v1/balance"], 0.0, json!(60))
        .await;
    let (status, _) = broker
        .admin(Method::DELETE, &format!("/v1/keys/{}", key.id), None)
        .await;
    assert_eq!(status, 204);
    let started = std::time::Instant::now();
    for _ in 0..50 {
        let (status, body) = json_of(broker.stripe_get(&key.token, "/v1/balance").await).await;
        assert_eq!((status, code(&body)), (401, "key_revoked"));
    }
    let path = format!("/v1/audit?key_id={}&limit=100", key.id);
    let records = eventually(
        Duration::from_secs(10),
        "the revoked key's summary",
        || async {
            let (_, audit) = broker.admin(Method::GET, &path, None).await;
            let records = audit["records"].as_array().unwrap().clone();
            let counted: i64 = records
                .iter()
                .map(|r| r["requests"].as_i64().unwrap())
                .sum();
            (counted == 50).then_some(records)
        },
    )
    .await;
    let intervals = started.elapsed().as_millis() / 200 + 2;
    assert!(records.len() as u128 <= intervals, "{} rows", records.len());
    for record in &records {
        assert_eq!(record["label"], "temporal-dead-charge");
        assert_eq!(record["code"], "key_revoked");
    }
    assert!(
        broker
            .metrics()
            .await
            .contains("keylease_broker_unauthenticated_requests_total 50")
    );
}
