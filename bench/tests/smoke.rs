//! The bench runs end to end on a small load, so it cannot rot unseen:
//! both workers serve their checkouts, and its checks hold.

use std::process::Command;

#[test]
fn a_small_run_measures_both_workers_and_its_checks_hold() {
    let output = Command::new(env!("CARGO_BIN_EXE_keylease-bench"))
        .args(["--workflows", "6", "--concurrency", "3", "--warmup", "2"])
        .output()
        .expect("run keylease-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "keylease-bench failed:\n{stdout}\n{stderr}"
    );
    for line in [
        "keylease: 8 orders: 0 double charges, 0 not charged, 4 refunded once, 0 refunds wrong; 0 keys still active at the broker",
        "baseline: 8 orders: 0 double charges, 0 not charged, 4 refunded once, 0 refunds wrong",
        "checks: all held",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?} in\n{stdout}"
        );
    }
    // Six measured charge attempts and three refund attempts, each with a key.
    assert!(
        stdout.contains("ms (9 attempts)"),
        "the lease histogram counted each attempt of the measured run:\n{stdout}"
    );
}
