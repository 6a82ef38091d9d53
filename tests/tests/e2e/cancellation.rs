//! Cancelling a checkout while its charge waits on Stripe revokes the charge's key.

use std::time::Duration;

use keylease_tests::stack::{Stack, checkout, eventually, unique};
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::{WorkflowCancelOptions, WorkflowGetResultOptions};

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_during_the_charge_revokes_its_key() {
    let stack = Stack::spawn("cancel").await;
    stack.fault(serde_json::json!({"method": "POST", "path": "/v1/payment_intents", "kind": "delay", "delay_ms": 30_000})).await;
    let wf = unique("cancel");
    let handle = stack
        .start(&wf, checkout("order-cancel", 1200, "pm_card_visa"))
        .await;

    let key_id = eventually(Duration::from_secs(20), "a live charge key", || async {
        let keys = stack.keys_of(&wf).await;
        keys.iter()
            .find(|k| k["status"] == "active")
            .and_then(|k| k["id"].as_str().map(str::to_owned))
    })
    .await;
    // The charge is now held by the delay: nothing has reached Stripe's commit.
    handle
        .cancel(WorkflowCancelOptions::default())
        .await
        .expect("cancel");

    // Well inside start_to_close (15 s): only cancellation, not a timeout, can revoke it in time.
    eventually(
        Duration::from_secs(10),
        "the charge key revoked",
        || async {
            let key = stack.broker_get(&format!("/v1/keys/{key_id}")).await;
            (key["status"] == "revoked").then_some(())
        },
    )
    .await;
    let result = handle.get_result(WorkflowGetResultOptions::default()).await;
    assert!(
        matches!(result, Err(WorkflowGetResultError::Cancelled { .. })),
        "{result:?}"
    );
    stack.stop().await;
}
