//! The proxy: what upstream receives, and every reason a request is refused.

use std::time::Duration;

use keylease_broker::routes::proxy::namespaced_idempotency_key;
use keylease_testkit::eventually;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, STRIPE_SECRET, TestBroker, code, json_of, raw_status};

pub async fn forwards_with_the_stripe_secret_and_passes_headers_through(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue_with(
            "temporal-fw-charge",
            &["POST /v1/payment_intents"],
            100.0,
            json!({"stripe_account": "acct_1"}),
        )
        .await;
    let response = broker
        .http
        .post(broker.url("/stripe/v1/payment_intents"))
        .bearer_auth(&key.token)
        .header("Idempotency-Key", "order-1-charge")
        .header("Stripe-Version", "2024-06-20")
        .header("Stripe-Account", "acct_1")
        .header("X-Internal", "must-not-pass")
        .form(&[
            ("amount", "1999"),
            ("currency", "usd"),
            ("metadata[order_id]", "o1"),
            ("expand[]", "latest_charge"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["request-id"],
        "req_test",
        "upstream headers come back"
    );
    assert!(
        response
            .headers()
            .get("connection")
            .is_none_or(|v| v != "keep-alive")
    );
    let (_, body) = json_of(response).await;
    assert_eq!(body, json!({"id": "pi_test", "object": "payment_intent"}));

    let received = broker.upstream.received();
    assert_eq!(received.len(), 1);
    let sent = &received[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/payment_intents");
    assert_eq!(sent.query, None);
    assert_eq!(
        sent.body,
        "amount=1999&currency=usd&metadata%5Border_id%5D=o1&expand%5B%5D=latest_charge"
    );
    assert_eq!(
        sent.headers["authorization"],
        format!("Bearer {STRIPE_SECRET}")
    );
    assert_eq!(
        sent.headers["idempotency-key"],
        namespaced_idempotency_key("temporal-fw-charge", "order-1-charge").as_str(),
        "the idempotency key is forwarded in the label's namespace"
    );
    assert_eq!(sent.headers["stripe-version"], "2024-06-20");
    assert_eq!(sent.headers["stripe-account"], "acct_1");
    assert_eq!(
        sent.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert!(sent.headers.get("x-internal").is_none());
    let everything = format!("{:?} {}", sent.headers, sent.body);
    assert!(
        !everything.contains(&key.token),
        "the vault token never reaches upstream"
    );
}

pub async fn unknown_revoked_and_expired_keys_are_401(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let (status, body) = json_of(broker.stripe_get("vk_nope", "/v1/balance").await).await;
    assert_eq!((status, code(&body)), (401, "invalid_key"));
    let (status, body) = json_of(
        broker
            .http
            .get(broker.url("/stripe/v1/balance"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code(&body)), (401, "invalid_key"));

    let revoked = broker
        .issue("temporal-k-charge", &["GET /v1/balance"], 0.0, json!(60))
        .await;
    assert_eq!(
        broker
            .stripe_get(&revoked.token, "/v1/balance")
            .await
            .status(),
        200
    );
    broker
        .admin(Method::DELETE, &format!("/v1/keys/{}", revoked.id), None)
        .await;
    let (status, body) = json_of(broker.stripe_get(&revoked.token, "/v1/balance").await).await;
    assert_eq!((status, code(&body)), (401, "key_revoked"));

    let short = broker
        .issue("temporal-k-short", &["GET /v1/balance"], 0.0, json!("1s"))
        .await;
    assert_eq!(
        broker
            .stripe_get(&short.token, "/v1/balance")
            .await
            .status(),
        200
    );
    eventually(Duration::from_secs(5), "the short key expired", || async {
        let status = broker
            .stripe_get(&short.token, "/v1/balance")
            .await
            .status();
        (status == 401).then_some(())
    })
    .await;
    let forwarded = broker.upstream.received().len();
    let (_, body) = json_of(broker.stripe_get(&short.token, "/v1/balance").await).await;
    assert_eq!(code(&body), "key_expired");
    assert_eq!(broker.key(&short.id).await["status"], "expired");
    assert_eq!(
        broker.upstream.received().len(),
        forwarded,
        "an expired key's request is not forwarded"
    );
}

pub async fn allowlist_limits_methods_and_paths(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue_with(
            "temporal-al-refund",
            &["POST /v1/refunds", "GET /v1/payment_intents/*"],
            0.0,
            json!({"allowed_objects": ["pi_1"]}),
        )
        .await;
    assert_eq!(
        broker
            .stripe_post(&key.token, "/v1/refunds", &[("payment_intent", "pi_1")])
            .await
            .status(),
        200
    );
    assert_eq!(
        broker
            .stripe_get(&key.token, "/v1/payment_intents/pi_1")
            .await
            .status(),
        200
    );
    for (method, path) in [
        (Method::GET, "/v1/refunds"),
        (Method::POST, "/v1/payment_intents"),
        (Method::POST, "/v1/payment_intents/pi_1/confirm"),
        (Method::GET, "/v1/payment_intents"),
        (Method::DELETE, "/v1/refunds"),
    ] {
        let response = broker
            .http
            .request(method.clone(), broker.url(&format!("/stripe{path}")))
            .bearer_auth(&key.token)
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(
            (status, code(&body)),
            (403, "endpoint_not_allowed"),
            "{method} {path}"
        );
    }
    assert_eq!(
        broker.upstream.received().len(),
        2,
        "refused requests never reach upstream"
    );
}

pub async fn path_tricks_are_refused_and_never_forwarded(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue_with(
            "temporal-pt-charge",
            &["GET /v1/payment_intents/*"],
            0.0,
            json!({"allowed_objects": ["pi_1"]}),
        )
        .await;
    for path in [
        "/stripe/v1/payment_intents/../refunds",
        "/stripe/v1/payment_intents/./x",
        "/stripe/v1/payment_intents/%2e%2e/refunds",
        "/stripe/v1/payment_intents/%2E%2e/refunds",
        "/stripe/v1/payment_intents/x%2f..%2frefunds",
        "/stripe/v1/payment_intents//refunds",
        "/stripe//v1/payment_intents/x",
        "/stripe/v1/payment_intents/x%5c..%5crefunds",
    ] {
        assert_eq!(
            raw_status(broker.addr, "POST", path, &key.token).await,
            400,
            "{path}"
        );
    }
    assert_eq!(
        raw_status(
            broker.addr,
            "GET",
            "/stripe/v1/payment_intents/pi_1",
            &key.token
        )
        .await,
        200
    );
    let received = broker.upstream.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/v1/payment_intents/pi_1");
}

pub async fn unknown_vendor_is_404_and_large_bodies_413(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue("temporal-v-charge", &["POST /v1/customers"], 0.0, json!(60))
        .await;
    let (status, body) = json_of(
        broker
            .http
            .get(broker.url("/paypal/v1/payments"))
            .bearer_auth(&key.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let big = "x".repeat(1024 * 1024 + 1);
    let (status, body) = json_of(
        broker
            .http
            .post(broker.url("/stripe/v1/customers"))
            .bearer_auth(&key.token)
            .body(big)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code(&body)), (413, "payload_too_large"));
    assert!(broker.upstream.received().is_empty());
}

pub async fn upstream_timeout_is_504_and_unreachable_is_502(backend: Backend) {
    let broker =
        TestBroker::spawn_with(backend, |c| c.upstream_timeout = Duration::from_millis(300)).await;
    let key = broker
        .issue(
            "temporal-to-charge",
            &["POST /v1/payment_intents"],
            50.0,
            json!(60),
        )
        .await;
    broker.upstream.script([crate::helpers::Reply {
        delay: Duration::from_secs(3),
        ..crate::helpers::Reply::status(200)
    }]);
    let (status, body) = json_of(
        broker
            .stripe_post(
                &key.token,
                "/v1/payment_intents",
                &[("amount", "1000"), ("currency", "usd")],
            )
            .await,
    )
    .await;
    assert_eq!((status, code(&body)), (504, "upstream_timeout"));
    assert_eq!(
        broker.key(&key.id).await["spent_usd"],
        10.0,
        "a timeout is ambiguous: the reservation is kept"
    );

    let unreachable = TestBroker::spawn_with(backend, |c| {
        c.stripe_api_base = "http://127.0.0.1:9".parse().unwrap()
    })
    .await;
    let key = unreachable
        .issue(
            "temporal-un-charge",
            &["POST /v1/payment_intents"],
            50.0,
            json!(60),
        )
        .await;
    let (status, body) = json_of(
        unreachable
            .stripe_post(
                &key.token,
                "/v1/payment_intents",
                &[("amount", "1000"), ("currency", "usd")],
            )
            .await,
    )
    .await;
    assert_eq!((status, code(&body)), (502, "upstream_unavailable"));
    assert_eq!(
        unreachable.key(&key.id).await["spent_usd"],
        0.0,
        "nothing was sent: the reservation is released"
    );
}

pub async fn every_proxied_request_is_audited(backend: Backend) {
    let broker = TestBroker::spawn_with(backend, |config| {
        config.unauthenticated_audit_interval = std::time::Duration::from_millis(200);
    })
    .await;
    let key = broker
        .issue(
            "temporal-au-charge",
            &["POST /v1/payment_intents"],
            20.0,
            json!(60),
        )
        .await;
    broker
        .stripe_post(
            &key.token,
            "/v1/payment_intents",
            &[("amount", "1250"), ("currency", "usd")],
        )
        .await;
    broker.stripe_get(&key.token, "/v1/balance").await;
    broker.stripe_get("vk_unknown", "/v1/balance").await;

    let (status, body) = broker
        .admin(Method::GET, &format!("/v1/audit?key_id={}", key.id), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let records = body["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    let (denied, charged) = (&records[0], &records[1]);
    assert_eq!(charged["label"], "temporal-au-charge");
    assert_eq!(charged["method"], "POST");
    assert_eq!(charged["path"], "/v1/payment_intents");
    assert_eq!(charged["status"], 200);
    assert_eq!(charged["reserved_usd"], 12.5);
    assert!(charged["latency_ms"].is_i64());
    assert!(charged["at"].is_string());
    assert_eq!(denied["path"], "/v1/balance");
    assert_eq!(denied["status"], 403);
    assert_eq!(denied["code"], "endpoint_not_allowed");

    let (_, by_label) = broker
        .admin(Method::GET, "/v1/audit?label_prefix=temporal-au-", None)
        .await;
    assert_eq!(by_label["records"].as_array().unwrap().len(), 2);
    // The unknown-token request is audited too, in the summary row of
    // requests without a valid key.
    let stranger = keylease_testkit::eventually(
        std::time::Duration::from_secs(10),
        "the summary of the unknown-token request",
        || async {
            let (_, all) = broker.admin(Method::GET, "/v1/audit?limit=10", None).await;
            let records = all["records"].as_array().unwrap().clone();
            (records.len() == 3).then(|| records[0].clone())
        },
    )
    .await;
    assert_eq!(stranger["key_id"], serde_json::Value::Null);
    assert_eq!(stranger["status"], 401);
    assert_eq!(stranger["code"], "invalid_key");
    assert_eq!(stranger["requests"], 1);
}

/// Two brokers on one PostgreSQL database: once `DELETE` on one returns, the
/// other forwards nothing more for the key, reads and charges alike, even
/// right after it served the key.
#[tokio::test]
async fn a_revocation_on_one_broker_holds_on_another_before_delete_returns() {
    let broker = TestBroker::spawn(Backend::Postgres).await;
    let other = broker.sibling().await;
    let key = broker
        .issue(
            "temporal-two-brokers-charge",
            &["GET /v1/balance", "POST /v1/payment_intents"],
            100.0,
            json!(60),
        )
        .await;
    let get = || {
        broker
            .http
            .get(format!("http://{other}/stripe/v1/balance"))
            .bearer_auth(&key.token)
            .send()
    };
    let charge = || {
        broker
            .http
            .post(format!("http://{other}/stripe/v1/payment_intents"))
            .bearer_auth(&key.token)
            .form(&[("amount", "100"), ("currency", "usd")])
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);
    assert_eq!(charge().await.unwrap().status(), 200);
    let forwarded = broker.upstream.received().len();

    let (status, _) = broker
        .admin(Method::DELETE, &format!("/v1/keys/{}", key.id), None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = json_of(get().await.unwrap()).await;
    assert_eq!((status, code(&body)), (401, "key_revoked"));
    let (status, body) = json_of(charge().await.unwrap()).await;
    assert_eq!((status, code(&body)), (401, "key_revoked"));
    assert_eq!(broker.upstream.received().len(), forwarded);
}

/// Issue 22: `--stripe-listen` serves Stripe's API at the root of an address
/// of its own, for libraries that take only a host, port and protocol: the
/// same rules and the same audit as `/stripe/...`, and no admin API.
pub async fn the_stripe_root_serves_the_proxy_with_the_same_rules(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue(
            "temporal-root-charge",
            &["POST /v1/payment_intents"],
            100.0,
            json!(60),
        )
        .await;
    let root = |path: &str| format!("http://{}{path}", broker.stripe_root);
    let response = broker
        .http
        .post(root("/v1/payment_intents"))
        .bearer_auth(&key.token)
        .form(&[("amount", "1999"), ("currency", "usd")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let received = broker.upstream.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/v1/payment_intents");

    // The allowlist, the token and the path rules hold as on /stripe/.
    let refused = broker
        .http
        .post(root("/v1/refunds"))
        .bearer_auth(&key.token)
        .form(&[("payment_intent", "pi_1")])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(refused).await;
    assert_eq!(
        (status, code(&body)),
        (403, "endpoint_not_allowed"),
        "{body}"
    );
    for (path, token) in [
        ("/v1/payment%5Fintents", key.token.as_str()),
        ("/v1/payment_intents", "vk_not_a_key"),
        // The admin API is not served here: the admin token is no vault key.
        ("/v1/keys", crate::helpers::ADMIN_TOKEN),
    ] {
        let status = broker
            .http
            .post(root(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert!(status == 400 || status == 401, "{path}: {status}");
    }
    assert_eq!(
        broker.upstream.received().len(),
        1,
        "nothing more forwarded"
    );

    // Audited as any proxied request.
    let (_, audit) = broker
        .admin(
            reqwest::Method::GET,
            &format!("/v1/audit?key_id={}", key.id),
            None,
        )
        .await;
    let paths: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["/v1/refunds", "/v1/payment_intents"], "{audit}");
}

/// Issue 22: every refusal is Stripe-shaped, so Stripe's libraries raise the
/// class an integrator expects: `type` (`invalid_request_error`, or
/// `api_error` for the broker's own failures), the broker's `code`, and the
/// `param` at fault when there is one.
pub async fn refusals_are_stripe_shaped(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue(
            "temporal-shape-charge",
            &["POST /v1/payment_intents"],
            1.0,
            json!(60),
        )
        .await;
    let post = |form: &'static [(&'static str, &'static str)], path: &'static str| {
        let (broker, token) = (&broker, key.token.clone());
        async move {
            json_of(
                broker
                    .http
                    .post(broker.url(path))
                    .bearer_auth(token)
                    .form(form)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let (status, body) = post(&[("currency", "usd")], "/stripe/v1/payment_intents").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (&body["error"]["type"], &body["error"]["param"]),
        (&json!("invalid_request_error"), &json!("amount")),
        "{body}"
    );
    let (status, body) = post(
        &[("amount", "5000"), ("currency", "usd")],
        "/stripe/v1/payment_intents",
    )
    .await;
    assert_eq!(
        (status, code(&body), &body["error"]["type"]),
        (429, "cap_exhausted", &json!("invalid_request_error")),
        "{body}"
    );
    let (status, body) = post(&[("payment_intent", "pi_1")], "/stripe/v1/refunds").await;
    assert_eq!(
        (status, code(&body), &body["error"]["type"]),
        (403, "endpoint_not_allowed", &json!("invalid_request_error")),
        "{body}"
    );
    let response = broker
        .http
        .post(broker.url("/stripe/v1/payment_intents"))
        .bearer_auth("vk_unknown")
        .send()
        .await
        .unwrap();
    // The broker's own refusals say so, where Stripe's answers never do.
    assert_eq!(response.headers()["keylease-error"], "invalid_key");
    let (status, body) = json_of(response).await;
    assert_eq!(
        (status, code(&body), &body["error"]["type"]),
        (401, "invalid_key", &json!("invalid_request_error")),
        "{body}"
    );
}
