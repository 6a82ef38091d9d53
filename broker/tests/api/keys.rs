//! The admin API: issuing, reading, listing and revoking keys, and its auth.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, Backend, TestBroker, code, json_of};

fn request(label: &str) -> serde_json::Value {
    json!({
        "label": label,
        "vendor": "stripe",
        "daily_usd_cap": 25.5,
        "allowed_endpoints": ["POST /v1/payment_intents", "GET /v1/payment_intents/*"],
        "expires_in": "5m",
        "metadata": {"attempt": "1", "run_id": "r1"}
    })
}

pub async fn issue_returns_the_token_once_and_show_hides_it(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let (status, issued) = broker.issue_raw(request("temporal-wf1-charge")).await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().unwrap();
    assert!(token.starts_with("vk_"), "{token}");
    assert_eq!(issued["label"], "temporal-wf1-charge");
    assert_eq!(issued["vendor"], "stripe");
    assert_eq!(issued["daily_usd_cap"], 25.5);
    assert_eq!(
        issued["allowed_endpoints"],
        json!(["POST /v1/payment_intents", "GET /v1/payment_intents/*"])
    );
    assert_eq!(issued["metadata"], json!({"attempt": "1", "run_id": "r1"}));
    let created =
        chrono::DateTime::parse_from_rfc3339(issued["created_at"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(issued["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_seconds(), 300);

    let shown = broker.key(issued["id"].as_str().unwrap()).await;
    assert!(shown.get("token").is_none(), "{shown}");
    assert!(!shown.to_string().contains(token));
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["spent_usd"], 0.0);
    assert_eq!(shown["revoked_at"], json!(null));
}

pub async fn admin_endpoints_need_the_admin_token(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let issued = broker
        .issue("temporal-auth-charge", &["GET /v1/balance"], 1.0, json!(60))
        .await;
    for token in [
        None,
        Some("wrong"),
        Some(issued.token.as_str()),
        Some(&ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]),
    ] {
        let mut call = broker.http.get(broker.url("/v1/keys"));
        if let Some(token) = token {
            call = call.bearer_auth(token);
        }
        let (status, body) = json_of(call.send().await.unwrap()).await;
        assert_eq!(
            (status, code(&body)),
            (401, "unauthorized"),
            "token {token:?}"
        );
    }
    let (status, body) = json_of(
        broker
            .http
            .post(broker.url("/v1/keys"))
            .json(&request("x"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code(&body)), (401, "unauthorized"));
    // Health needs no token.
    let (status, _) = json_of(
        broker
            .http
            .get(broker.url("/healthz"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
}

pub async fn invalid_requests_are_422_naming_the_field(backend: Backend) {
    let broker = TestBroker::spawn_with(backend, |c| {
        c.max_ttl = std::time::Duration::from_secs(3600)
    })
    .await;
    let cases = [
        ("label", json!("two words")),
        ("vendor", json!("paypal")),
        ("daily_usd_cap", json!(-0.01)),
        ("allowed_endpoints", json!([])),
        ("expires_in", json!("2h")),
        ("expires_in", json!(0)),
        ("metadata", json!({"n": 5})),
    ];
    for (field, value) in cases {
        let mut body = request("temporal-bad-charge");
        body[field] = value.clone();
        let (status, answer) = broker.issue_raw(body).await;
        assert_eq!(
            (status, code(&answer)),
            (422, "invalid_request"),
            "{field}={value}: {answer}"
        );
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(field),
            "{answer}"
        );
    }
    let (status, answer) = json_of(
        broker
            .http
            .post(broker.url("/v1/keys"))
            .bearer_auth(ADMIN_TOKEN)
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code(&answer)), (422, "invalid_request"));
    // Nothing was written by any of them.
    let (_, listed) = broker.admin(Method::GET, "/v1/keys", None).await;
    assert_eq!(listed["keys"], json!([]));
}

pub async fn list_filters_by_label_prefix_status_and_limit(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let a = broker
        .issue("temporal-wfA-charge", &["GET /v1/balance"], 1.0, json!(60))
        .await;
    broker
        .issue("temporal-wfA-refund", &["GET /v1/balance"], 1.0, json!(60))
        .await;
    broker
        .issue("temporal-wfB-charge", &["GET /v1/balance"], 1.0, json!(60))
        .await;
    let (status, _) = broker
        .admin(Method::DELETE, &format!("/v1/keys/{}", a.id), None)
        .await;
    assert_eq!(status, 204);

    let labels = |body: serde_json::Value| -> Vec<String> {
        body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["label"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, wf_a) = broker
        .admin(Method::GET, "/v1/keys?label_prefix=temporal-wfA-", None)
        .await;
    let mut wf_a = labels(wf_a);
    wf_a.sort();
    assert_eq!(wf_a, ["temporal-wfA-charge", "temporal-wfA-refund"]);
    let (_, active) = broker
        .admin(
            Method::GET,
            "/v1/keys?label_prefix=temporal-wfA-&status=active",
            None,
        )
        .await;
    assert_eq!(labels(active), ["temporal-wfA-refund"]);
    let (_, revoked) = broker
        .admin(Method::GET, "/v1/keys?status=revoked", None)
        .await;
    assert_eq!(labels(revoked), ["temporal-wfA-charge"]);
    let (_, limited) = broker.admin(Method::GET, "/v1/keys?limit=2", None).await;
    assert_eq!(limited["keys"].as_array().unwrap().len(), 2);
    let (status, body) = broker
        .admin(Method::GET, "/v1/keys?status=sleepy", None)
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_request"));
    let (status, body) = broker.admin(Method::GET, "/v1/keys?limit=0", None).await;
    assert_eq!((status, code(&body)), (422, "invalid_request"));
}

pub async fn revoke_is_idempotent_and_unknown_ids_are_404(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue("temporal-rv-charge", &["GET /v1/balance"], 1.0, json!(60))
        .await;
    let path = format!("/v1/keys/{}", key.id);
    assert_eq!(broker.admin(Method::DELETE, &path, None).await.0, 204);
    let first = broker.key(&key.id).await["revoked_at"].clone();
    assert!(first.is_string());
    assert_eq!(broker.admin(Method::DELETE, &path, None).await.0, 204);
    assert_eq!(
        broker.key(&key.id).await["revoked_at"],
        first,
        "a second revoke keeps the first time"
    );
    assert_eq!(broker.key(&key.id).await["status"], "revoked");
    let (status, body) = broker
        .admin(Method::DELETE, "/v1/keys/key_nope", None)
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = broker.admin(Method::GET, "/v1/keys/key_nope", None).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
}

pub async fn bulk_revoke_cuts_off_one_workflow_only(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let charge = broker
        .issue("temporal-wf9-charge", &["GET /v1/balance"], 0.0, json!(60))
        .await;
    let refund = broker
        .issue("temporal-wf9-refund", &["GET /v1/balance"], 0.0, json!(60))
        .await;
    let other = broker
        .issue("temporal-wf90-charge", &["GET /v1/balance"], 0.0, json!(60))
        .await;

    let (status, body) = broker
        .admin(
            Method::POST,
            "/v1/keys/revoke",
            Some(json!({"label_prefix": ""})),
        )
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_request"));

    let (status, body) = broker
        .admin(
            Method::POST,
            "/v1/keys/revoke",
            Some(json!({"label_prefix": "temporal-wf9-"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], 2);
    for (key, expected) in [(&charge, 401), (&refund, 401), (&other, 200)] {
        let response = broker.stripe_get(&key.token, "/v1/balance").await;
        assert_eq!(response.status().as_u16(), expected, "{}", key.id);
    }
    let (_, body) = broker
        .admin(
            Method::POST,
            "/v1/keys/revoke",
            Some(json!({"label_prefix": "temporal-wf9-"})),
        )
        .await;
    assert_eq!(
        body["revoked"], 0,
        "already revoked keys are not counted again"
    );
}

#[tokio::test]
async fn metrics_count_keys_proxied_requests_and_cap_refusals() {
    let broker = TestBroker::spawn(Backend::Sqlite).await;
    let key = broker
        .issue(
            "temporal-m-charge",
            &["POST /v1/payment_intents"],
            10.0,
            json!(60),
        )
        .await;
    let form = [("amount", "1000"), ("currency", "usd")];
    assert_eq!(
        broker
            .stripe_post(&key.token, "/v1/payment_intents", &form)
            .await
            .status(),
        200
    );
    assert_eq!(
        broker
            .stripe_post(&key.token, "/v1/payment_intents", &form)
            .await
            .status(),
        429
    );
    let path = format!("/v1/keys/{}", key.id);
    broker.admin(Method::DELETE, &path, None).await;
    broker.admin(Method::DELETE, &path, None).await;

    // No auth: nothing in it is secret.
    let text = broker.metrics().await;
    for line in [
        "keylease_broker_keys_issued_total 1",
        "keylease_broker_keys_revoked_total 1",
        "keylease_broker_cap_exhausted_total 1",
        r#"keylease_broker_proxied_requests_total{vendor="stripe",status="200"} 1"#,
        r#"keylease_broker_proxied_requests_total{vendor="stripe",status="429"} 1"#,
        r#"keylease_broker_proxy_seconds_count{vendor="stripe"} 2"#,
        // Issue 24: the broker's own time of each key call answered.
        r#"keylease_broker_key_call_seconds_count{call="issue"} 1"#,
        r#"keylease_broker_key_call_seconds_count{call="revoke"} 2"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(!text.contains(&key.token) && !text.contains(&key.id) && !text.contains("temporal-m"));
}
