//! The worker on a role token: it says which kind of token it holds, warns
//! on the admin token, refuses one the broker does not know, and
//! `policy explain` shows its role next to what the activities ask for.

use std::time::Duration;

use keylease_testkit::bins::binary;
use keylease_testkit::eventually;
use keylease_tests::process::WorkerProcess;
use keylease_tests::stack::{ADMIN_TOKEN, Stack, WORKER_TOKEN, unique};

/// Waits until the worker's log holds `text`.
async fn logged(worker: &WorkerProcess, text: &str) {
    eventually(Duration::from_secs(30), text, || async {
        worker.log_text().contains(text).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_tells_its_token_apart_and_explains_its_role() {
    let stack = Stack::spawn("roles").await;
    let broker = format!("http://{}", stack.broker);

    let on_role = WorkerProcess::spawn(&stack, &unique("roles-role"), &broker, &[]);
    logged(&on_role, "broker token is a role token").await;
    assert!(
        !on_role.log_text().contains("admin token"),
        "{}",
        on_role.log_text()
    );
    on_role.stop().await;

    let on_admin = WorkerProcess::spawn(
        &stack,
        &unique("roles-admin"),
        &broker,
        &[("KEYLEASE_BROKER_TOKEN", ADMIN_TOKEN)],
    );
    logged(
        &on_admin,
        "running with the broker's admin token: create a role",
    )
    .await;
    on_admin.stop().await;

    // A token the broker does not know: the worker stops at start, saying so.
    let stranger = "rt_0e8d6c4b2a0f9e7d5c3b1a0f8e6d4c2b";
    let output = tokio::process::Command::new(binary("keylease-worker"))
        .arg("run")
        .env_clear()
        .env("TEMPORAL_ADDRESS", &stack.temporal.address)
        .env("KEYLEASE_TASK_QUEUE", unique("roles-stranger"))
        .env("KEYLEASE_BROKER_URL", &broker)
        .env("KEYLEASE_PROXY_URL", format!("{broker}/stripe"))
        .env("KEYLEASE_BROKER_TOKEN", stranger)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the broker refused KEYLEASE_BROKER_TOKEN"),
        "{stderr}"
    );
    assert!(!stderr.contains(stranger), "the token is never printed");

    // `policy explain` with the role token: the role next to the activities' needs.
    let explain = |extra: &[&str]| {
        let mut command = std::process::Command::new(binary("keylease-worker"));
        command
            .args(["policy", "explain", "--broker-url", &broker])
            .args(extra)
            .env_clear();
        command.output().unwrap()
    };
    let output = explain(&["--broker-token", WORKER_TOKEN]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("role keylease-worker"), "{stdout}");
    assert!(stdout.contains("no mismatch"), "{stdout}");
    // A policy whose charge key would outlive the role's TTL is flagged.
    let output = explain(&[
        "--broker-token",
        WORKER_TOKEN,
        "--charge-schedule-to-close",
        "30h",
        "--broker-max-ttl",
        "48h",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("MISMATCH max_expires_in"), "{stdout}");
    stack.stop().await;
}
