//! Cancelling a checkout while its charge waits on Stripe: the charge runs to
//! its outcome (the workflow's cancellation cannot reach it), then the money
//! is refunded.

use std::time::Duration;

use keylease_testkit::eventually;
use keylease_tests::stack::{Stack, checkout, unique};
use keylease_workflows::CheckoutOutcome;
use temporalio_client::WorkflowCancelOptions;

use crate::checkout::outcome;

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_during_the_charge_refunds_what_it_charged() {
    let stack = Stack::spawn("cancel").await;
    stack.fault(serde_json::json!({"method": "POST", "path": "/v1/payment_intents", "kind": "delay", "delay_ms": 3000})).await;
    let wf = unique("cancel");
    let handle = stack
        .start(&wf, checkout("order-cancel", 1200, "pm_card_visa"))
        .await;

    eventually(Duration::from_secs(20), "a live charge key", || async {
        let keys = stack.keys_of(&wf).await;
        keys.iter().any(|k| k["status"] == "active").then_some(())
    })
    .await;
    // The charge is now held by the delay, on its way to Stripe.
    handle
        .cancel(WorkflowCancelOptions::default())
        .await
        .expect("cancel");

    let CheckoutOutcome::Compensated {
        payment_intent_id,
        refund_id,
        reason,
    } = outcome(&handle).await
    else {
        panic!("a cancel during the charge must refund it");
    };
    assert_eq!(reason, "workflow cancelled");
    stack
        .record_history(&handle, "cancelled-during-charge")
        .await;

    let intents = stack.sim_held("payment_intents").await;
    assert_eq!(intents.len(), 1, "the charge ran once, to its end");
    assert_eq!(intents[0]["id"], payment_intent_id.as_str());
    assert_eq!(intents[0]["status"], "succeeded");
    let refunds = stack.sim_held("refunds").await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["id"], refund_id.as_str());
    assert_eq!(refunds[0]["amount"], 1200, "all of it back");
    let keys = stack.keys_of(&wf).await;
    assert!(keys.iter().all(|k| k["status"] == "revoked"), "{keys:?}");
    stack.stop().await;
}
