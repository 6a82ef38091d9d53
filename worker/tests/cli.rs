//! The binary's start-up contract: bad config, or Temporal or the broker
//! unreachable, is one clear line on stderr and a non-zero exit.

use std::net::TcpListener;
use std::process::Output;

use tokio::process::Command;

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn worker(args: &[&str], envs: &[(&str, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keylease-worker"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (name, value) in envs {
        command.env(name, value);
    }
    tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
        .await
        .expect("exits in time")
        .unwrap()
}

fn error_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| line.starts_with("keylease-worker:"))
        .map(str::to_owned)
        .collect()
}

/// A broker token the worker (and the broker) accept.
const TOKEN: &str = "cli-test-token-0d5e9a7c41f2b3e8a6";

/// A broker in this process, for the tests that need one reachable.
async fn broker() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = keylease_broker::BrokerConfig::new(
        TOKEN.into(),
        "sk_test_x".into(),
        "http://127.0.0.1:9".parse().unwrap(),
    );
    config.db = keylease_broker::config::DatabaseConfig::new(&format!(
        "sqlite://{}/b.db",
        dir.path().display()
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(keylease_broker::run(
        listener,
        config,
        std::future::pending(),
    ));
    (url, dir)
}

#[tokio::test]
async fn missing_settings_are_named() {
    let output = worker(&["run"], &[]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for flag in ["--broker-url", "--proxy-url", "--broker-token"] {
        assert!(stderr.contains(flag), "{stderr}");
    }
}

#[tokio::test]
async fn an_unreachable_broker_is_one_line_and_a_failure() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let envs = [
        ("KEYLEASE_BROKER_URL", url.clone()),
        ("KEYLEASE_PROXY_URL", format!("{url}/stripe")),
        ("KEYLEASE_BROKER_TOKEN", TOKEN.to_owned()),
    ];
    let output = worker(&["run"], &envs).await;
    assert_eq!(output.status.code(), Some(1));
    let lines = error_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("cannot reach the broker") && lines[0].contains(&url),
        "{}",
        lines[0]
    );
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains(TOKEN),
        "the token is never printed"
    );
}

#[tokio::test]
async fn an_unreachable_temporal_is_one_line_and_a_failure() {
    let (broker, _db) = broker().await;
    let temporal = format!("127.0.0.1:{}", closed_port());
    let envs = [
        ("KEYLEASE_BROKER_URL", broker.clone()),
        ("KEYLEASE_PROXY_URL", format!("{broker}/stripe")),
        ("KEYLEASE_BROKER_TOKEN", TOKEN.to_owned()),
        ("TEMPORAL_ADDRESS", temporal.clone()),
    ];
    let output = worker(&["run"], &envs).await;
    assert_eq!(output.status.code(), Some(1));
    let lines = error_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("cannot reach Temporal") && lines[0].contains(&temporal),
        "{}",
        lines[0]
    );
}

#[tokio::test]
async fn a_bad_temporal_address_is_a_config_error() {
    let output = worker(
        &[
            "checkout",
            "--order-id",
            "o1",
            "--amount",
            "100",
            "--currency",
            "usd",
            "--payment-method",
            "pm_card_visa",
        ],
        &[("TEMPORAL_ADDRESS", "http://[not-an-address".to_owned())],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let lines = error_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("configuration") && lines[0].contains("TEMPORAL_ADDRESS"),
        "{}",
        lines[0]
    );
}
