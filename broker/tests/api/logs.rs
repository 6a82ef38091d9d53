//! The binary: JSON logs at trace level hold no secret, and SIGTERM stops it cleanly.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::oneshot;

use crate::helpers::{ADMIN_TOKEN, STRIPE_SECRET, TestUpstream, json_of};

#[tokio::test]
async fn a_whole_run_logs_no_secret_and_stops_on_sigterm() {
    let upstream = TestUpstream::spawn().await;
    let db_dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keylease-broker"))
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("RUST_LOG", "trace")
        .env("KEYLEASE_BROKER_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("KEYLEASE_STRIPE_SECRET_KEY", STRIPE_SECRET)
        .env(
            "KEYLEASE_STRIPE_API_BASE",
            format!("http://{}", upstream.addr),
        )
        .env(
            "KEYLEASE_BROKER_DATABASE_URL",
            format!("sqlite://{}/b.db", db_dir.path().display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let log = Arc::new(Mutex::new(String::new()));
    let (address_tx, address_rx) = oneshot::channel::<String>();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let collected = log.clone();
    let reader = tokio::spawn(async move {
        let mut address_tx = Some(address_tx);
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Ok(entry) = serde_json::from_str::<Value>(&line)
                && let Some(address) = entry["fields"]["address"].as_str()
                && let Some(tx) = address_tx.take()
            {
                tx.send(address.to_owned()).unwrap();
            }
            collected.lock().unwrap().push_str(&line);
            collected.lock().unwrap().push('\n');
        }
    });
    let address = tokio::time::timeout(Duration::from_secs(30), address_rx)
        .await
        .unwrap()
        .unwrap();
    let base = format!("http://{address}");
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

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "SIGTERM is a clean stop: {exit:?}");
    reader.await.unwrap();

    let log = log.lock().unwrap().clone();
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
