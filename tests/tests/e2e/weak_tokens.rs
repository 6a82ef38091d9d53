//! The broker and the worker binaries refuse `.env.example`'s placeholder token and
//! short tokens at start: one line naming the setting and how to make one, never the
//! token, and nothing started.

use std::process::Output;

use keylease_testkit::bins::binary;
use keylease_testkit::ports::free_port;
use keylease_testkit::process::run_refusing;
use keylease_tests::compose::env_example;
use tokio::process::Command;

/// The weak tokens: the one `cp .env.example .env` gives, and a short one.
fn weak_tokens() -> [(String, &'static str); 2] {
    [
        (
            env_example("KEYLEASE_BROKER_ADMIN_TOKEN"),
            "is a placeholder from the examples",
        ),
        (
            "short-but-random-9f3k2".to_owned(),
            "is shorter than 32 characters",
        ),
    ]
}

fn assert_refused(output: &Output, token: &str, variable: &str, why: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let lines: Vec<_> = stderr.lines().filter(|l| l.contains(variable)).collect();
    assert_eq!(lines.len(), 1, "one line names {variable}: {stderr}");
    assert!(
        lines[0].contains(why) && lines[0].contains("openssl rand -hex 32"),
        "{}",
        lines[0]
    );
    assert!(
        !stderr.contains(token),
        "the token is never printed: {stderr}"
    );
}

#[tokio::test]
async fn the_broker_refuses_weak_admin_tokens() {
    for (token, why) in weak_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("broker.db");
        let mut broker = Command::new(binary("keylease-broker"));
        broker
            .env_clear()
            .env("KEYLEASE_BROKER_ADMIN_TOKEN", &token)
            .env("KEYLEASE_STRIPE_SECRET_KEY", "sk_test_weak_tokens")
            .env(
                "KEYLEASE_BROKER_LISTEN",
                format!("127.0.0.1:{}", free_port()),
            )
            .env(
                "KEYLEASE_BROKER_DATABASE_URL",
                format!("sqlite://{}", db.display()),
            );
        let output = run_refusing(&mut broker).await;
        assert_refused(&output, &token, "KEYLEASE_BROKER_ADMIN_TOKEN", why);
        assert!(!db.exists(), "refused before opening the database");
    }
}

#[tokio::test]
async fn the_worker_refuses_weak_broker_tokens() {
    // A broker that is not there: a worker that got past the token check would
    // fail on it instead, with another line.
    let broker = format!("http://127.0.0.1:{}", free_port());
    for (token, why) in weak_tokens() {
        for args in [&["run"][..], &["keys", "sweep"]] {
            let mut worker = Command::new(binary("keylease-worker"));
            worker
                .args(args)
                .env_clear()
                .env("KEYLEASE_BROKER_URL", &broker)
                .env("KEYLEASE_PROXY_URL", format!("{broker}/stripe"))
                .env("KEYLEASE_BROKER_TOKEN", &token)
                .env("TEMPORAL_ADDRESS", format!("127.0.0.1:{}", free_port()));
            let output = run_refusing(&mut worker).await;
            assert_refused(&output, &token, "KEYLEASE_BROKER_TOKEN", why);
        }
    }
}
