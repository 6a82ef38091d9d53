//! `make demo`, run non-interactively: it starts the whole stack, runs its two
//! checkouts, prints what happened, and stops everything it started.

use std::path::PathBuf;

use keylease_testkit::bins::bin_dir;
use keylease_testkit::ports::free_port;

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_runs_both_checkouts_and_cleans_up() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let state = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let output = tokio::process::Command::new(root.join("scripts/demo.sh"))
        .env("KEYLEASE_DEMO_ONCE", "1")
        .env("KEYLEASE_DEMO_NO_BUILD", "1")
        .env("KEYLEASE_DEMO_BIN_DIR", bin_dir())
        .env("KEYLEASE_DEMO_STATE", state.path())
        .env("KEYLEASE_DEMO_TEMPORAL_PORT", ports[0].to_string())
        .env("KEYLEASE_DEMO_UI_PORT", ports[1].to_string())
        .env("KEYLEASE_DEMO_BROKER_PORT", ports[2].to_string())
        .env("KEYLEASE_DEMO_SIM_PORT", ports[3].to_string())
        .env_remove("STRIPE_SECRET_KEY")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), output)
        .await
        .expect("demo in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");

    let completed = stdout
        .lines()
        .find(|l| l.starts_with("demo-fulfilled-"))
        .expect("the fulfilled checkout");
    assert!(completed.ends_with(": Completed"), "{completed}");
    let compensated = stdout
        .lines()
        .find(|l| l.starts_with("demo-failed-"))
        .expect("the failed checkout");
    assert!(compensated.ends_with(": Compensated"), "{compensated}");
    // The worker runs on a role token; the admin token stays with the script.
    assert!(stdout.contains("Broker role demo-worker"), "{stdout}");
    let worker_log = std::fs::read_to_string(state.path().join("worker.log")).unwrap_or_default();
    assert!(
        worker_log.contains("broker token is a role token"),
        "{worker_log}"
    );
    assert_eq!(
        stdout.matches("  payment_intent_id: pi_").count(),
        2,
        "{stdout}"
    );
    assert_eq!(stdout.matches("  refund_id: re_").count(), 1, "{stdout}");
    assert!(stdout.contains("  reason: out of stock"));
    // Three keys: a charge key per checkout and the refund's, each with its label, TTL, scope and revocation.
    let keys: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("key key_"))
        .collect();
    assert_eq!(keys.len(), 3, "{stdout}");
    assert!(
        keys.iter()
            .all(|k| k.contains(": TTL 360s") && k.contains(", revoked ")),
        "{keys:#?}"
    );
    assert_eq!(
        keys.iter()
            .filter(|k| k.contains("-refund: TTL 360s, POST /v1/refunds,"))
            .count(),
        1
    );
    let ui = format!(
        "http://127.0.0.1:{}/namespaces/default/workflows/demo-",
        ports[1]
    );
    assert_eq!(stdout.matches(&ui).count(), 2, "{stdout}");
    assert!(stdout.trim_end().ends_with("demo: stopped"));
    for port in ports {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still open after the demo"
        );
    }
}
