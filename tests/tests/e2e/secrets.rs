//! No vault token, admin token or Stripe secret in workflow history or in any log line.

use keylease_tests::stack::{ADMIN_TOKEN, STRIPE_SECRET, Stack, WORKER_TOKEN, checkout, unique};
use keylease_workflows::{CheckoutOutcome, CheckoutStep};

use crate::checkout::{fulfil, outcome, wait_for_step};

#[tokio::test(flavor = "multi_thread")]
async fn history_and_logs_hold_no_secret() {
    let stack = Stack::spawn("secrets").await;
    let wf = unique("secrets");
    let handle = stack
        .start(&wf, checkout("order-secrets", 2000, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&handle, false, Some("lost in transit")).await;
    assert!(matches!(
        outcome(&handle).await,
        CheckoutOutcome::Compensated { .. }
    ));

    let keys = stack.keys_of(&wf).await;
    assert_eq!(keys.len(), 2, "a charge key and a refund key");
    let history = stack.history_text(&handle).await;
    let logs = keylease_tests::logs::captured();
    for key in &keys {
        let id = key["id"].as_str().expect("key id");
        // The searches below can fail: the same text does hold the keys' ids.
        assert!(history.contains(id), "history names key {id}");
        assert!(logs.contains(id), "logs name key {id}");
    }
    // JSON log lines of an attempt carry who it is for and which key it holds.
    let issued: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| {
            line["fields"]["message"] == "key issued" && line["span"]["workflow_id"] == wf.as_str()
        })
        .collect();
    assert_eq!(issued.len(), 2, "one per key");
    for line in &issued {
        let span = &line["span"];
        assert!(
            ["charge", "refund"].contains(&span["activity_id"].as_str().unwrap_or_default()),
            "{line}"
        );
        assert!(keys.iter().any(|k| k["id"] == span["key_id"]), "{line}");
        assert!(
            span["label"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&format!("temporal-{wf}-")),
            "{line}"
        );
    }
    for (text, name) in [(&history, "history"), (&logs, "logs")] {
        assert!(!text.contains("vk_"), "a vault token is in the {name}");
        assert!(
            !text.contains(ADMIN_TOKEN),
            "the broker's admin token is in the {name}"
        );
        assert!(
            !text.contains(WORKER_TOKEN),
            "the worker's role token is in the {name}"
        );
        assert!(
            !text.contains(STRIPE_SECRET),
            "the Stripe secret is in the {name}"
        );
    }
    stack.stop().await;
}
