//! The worker's `/metrics` (Keylease's and the Temporal SDK's) and `/healthz`.

use std::time::Duration;

use keylease_testkit::eventually;
use keylease_tests::stack::{Stack, checkout, unique};
use keylease_workflows::CheckoutOutcome;

use crate::checkout::{fulfil, outcome};

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_reports_keys_outcomes_sdk_metrics_and_health() {
    let stack = Stack::spawn("observe").await;
    let base = format!("http://{}", stack.worker_metrics);
    let health: serde_json::Value =
        eventually(Duration::from_secs(20), "the worker's /healthz", || async {
            stack
                .http
                .get(format!("{base}/healthz"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()
        })
        .await;
    assert_eq!(
        health,
        serde_json::json!({"status": "ok", "temporal": "connected"})
    );

    let wf = unique("observe");
    let handle = stack
        .start(
            &wf,
            checkout("order-observe", 800, "pm_card_chargeDeclined"),
        )
        .await;
    assert!(matches!(
        outcome(&handle).await,
        CheckoutOutcome::Failed { .. }
    ));
    let ok = stack
        .start(
            &unique("observe-ok"),
            checkout("order-observe-2", 900, "pm_card_visa"),
        )
        .await;
    fulfil(&ok, true, None).await;
    outcome(&ok).await;

    let text = stack
        .http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "keylease_keys_issued_total 2",
        "keylease_keys_revoked_total 2",
        "keylease_key_revocation_failures_total 0",
        "keylease_key_issue_seconds_count 2",
        "keylease_key_lease_seconds_count 2",
        r#"keylease_activity_outcomes_total{activity="charge",outcome="CardDeclined"} 1"#,
        r#"keylease_activity_outcomes_total{activity="charge",outcome="succeeded"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("temporal_") && !l.starts_with('#')),
        "the SDK's own metrics are there too"
    );
    stack.stop().await;
}
