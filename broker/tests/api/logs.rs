//! The binary: JSON logs at trace level hold no secret, and SIGTERM stops it cleanly.

use std::time::Duration;

use keylease_testkit::{BrokerProcess, eventually};
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, STRIPE_SECRET, TestUpstream, broker_settings, json_of};

#[tokio::test]
async fn a_whole_run_logs_no_secret_and_stops_on_sigterm() {
    let upstream = TestUpstream::spawn().await;
    let db_dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}/b.db", db_dir.path().display());
    let mut broker = BrokerProcess::spawn(broker_settings(), upstream.addr, &database_url).await;
    let base = broker.base();
    let http = reqwest::Client::new();

    // Every path that handles a secret: issue, proxy, refusals, revocations.
    let (status, issued) = json_of(
        http.post(format!("{base}/v1/keys"))
            .bearer_auth(ADMIN_TOKEN)
            .json(
                &json!({"label": "temporal-log-charge", "vendor": "stripe", "daily_usd_cap": 5,
                          "allowed_endpoints": ["POST /v1/payment_intents"], "expires_in": 60}),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201);
    let token = issued["token"].as_str().unwrap().to_owned();
    let key_id = issued["id"].as_str().unwrap().to_owned();
    let charge = |amount: &'static str| {
        http.post(format!("{base}/stripe/v1/payment_intents"))
            .bearer_auth(&token)
            .form(&[("amount", amount), ("currency", "usd")])
            .send()
    };
    assert_eq!(charge("300").await.unwrap().status(), 200);
    assert_eq!(charge("300").await.unwrap().status(), 429);
    let wrong_token = "vk_0123456789abcdef_not_a_real_token";
    let denied = http
        .get(format!("{base}/stripe/v1/balance"))
        .bearer_auth(wrong_token)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let wrong_admin = "admin-guess-8d1e";
    let denied = http
        .get(format!("{base}/v1/keys"))
        .bearer_auth(wrong_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let revoked = http
        .delete(format!("{base}/v1/keys/{key_id}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(charge("1").await.unwrap().status(), 401);

    let exit = broker.stop().await;
    assert!(
        exit.is_some_and(|exit| exit.success()),
        "SIGTERM is a clean stop: {exit:?}"
    );

    let log = broker.log_text();
    assert!(log.contains(&key_id), "the log names the key by id");
    assert!(log.contains("proxied request") && log.contains("shutdown requested"));
    for secret in [
        token.as_str(),
        ADMIN_TOKEN,
        STRIPE_SECRET,
        wrong_token,
        wrong_admin,
    ] {
        assert!(!log.contains(secret), "a secret reached the log: {secret}");
    }
    // The token's random part, in case something printed it without its prefix.
    assert!(!log.contains(&token[3..]));
}

/// Review finding: a request still upstream when the broker is stopped was
/// never audited and its object never recorded. The broker now waits for
/// every forwarded request, even after closing its connection.
#[tokio::test]
async fn a_stopping_broker_finishes_and_records_what_it_forwarded() {
    let upstream = TestUpstream::spawn().await;
    let db_dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}/b.db", db_dir.path().display());
    let mut broker = BrokerProcess::spawn(broker_settings(), upstream.addr, &database_url).await;
    let http = reqwest::Client::new();
    let issue = |base: String| {
        let http = http.clone();
        async move {
            let (status, issued) = json_of(
                http.post(format!("{base}/v1/keys"))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({"label": "temporal-stop-charge", "vendor": "stripe",
                        "daily_usd_cap": 5, "expires_in": 60,
                        "allowed_endpoints": ["POST /v1/payment_intents", "GET /v1/payment_intents/*"]}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 201, "{issued}");
            issued
        }
    };
    let key = issue(broker.base()).await;
    upstream.script([crate::helpers::Reply {
        delay: Duration::from_secs(2),
        body: json!({"id": "pi_1Late", "object": "payment_intent", "amount": 300, "currency": "usd"}),
        ..crate::helpers::Reply::status(200)
    }]);
    let gone = http
        .post(format!("{}/stripe/v1/payment_intents", broker.base()))
        .bearer_auth(key["token"].as_str().unwrap())
        .form(&[("amount", "300"), ("currency", "usd")])
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(gone.is_err(), "the client left before the answer");
    eventually(Duration::from_secs(2), "the charge upstream", || async {
        (upstream.received().len() == 1).then_some(())
    })
    .await;
    assert_eq!(upstream.received().len(), 1, "the charge is upstream");
    let exit = broker.stop().await;
    assert!(exit.is_some_and(|exit| exit.success()), "{exit:?}");

    let restarted = BrokerProcess::spawn(broker_settings(), upstream.addr, &database_url).await;
    let (_, audit) = json_of(
        http.get(format!(
            "{}/v1/audit?label_prefix=temporal-stop-",
            restarted.base()
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap(),
    )
    .await;
    let records = audit["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{audit}");
    assert_eq!(
        (
            records[0]["status"].as_u64(),
            records[0]["reserved_usd"].as_f64()
        ),
        (Some(200), Some(3.0))
    );
    let retry = issue(restarted.base()).await;
    let read = http
        .get(format!(
            "{}/stripe/v1/payment_intents/pi_1Late",
            restarted.base()
        ))
        .bearer_auth(retry["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        read.status(),
        200,
        "the next attempt reaches what the stopped broker forwarded"
    );
}
