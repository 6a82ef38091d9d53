//! `keylease-worker checkout` and `fulfil`, driving a checkout on the real stack.

use std::time::Duration;

use keylease_tests::stack::{Stack, unique};
use keylease_worker::start::{CheckoutArgs, FulfilArgs, checkout, fulfil};
use keylease_workflows::{CheckoutOutcome, CheckoutStep, CheckoutWorkflow};
use temporalio_client::WorkflowGetResultOptions;

use crate::checkout::wait_for_step;

#[tokio::test(flavor = "multi_thread")]
async fn checkout_then_fulfil_completes_with_the_default_policy() {
    let stack = Stack::spawn("commands").await;
    let wf = unique("commands");
    let temporal = keylease_tests::stack::temporal_args(&stack.temporal.address, &stack.task_queue);
    checkout(CheckoutArgs {
        temporal: temporal.clone(),
        order_id: "order-commands".to_owned(),
        amount: 1800,
        currency: "usd".to_owned(),
        payment_method: "pm_card_visa".to_owned(),
        customer: None,
        max_spend_usd: None,
        fulfilment_timeout: Duration::from_secs(60),
        workflow_id: Some(wf.clone()),
        wait: false,
        policy: Default::default(),
    })
    .await
    .expect("checkout command");
    let handle = stack
        .client
        .get_workflow_handle::<CheckoutWorkflow>(wf.clone());
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    fulfil(FulfilArgs {
        temporal,
        workflow_id: wf.clone(),
        ok: true,
        failed: false,
        reason: None,
        wait: None,
    })
    .await
    .expect("fulfil command");
    let outcome: CheckoutOutcome = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("result");
    assert!(
        matches!(outcome, CheckoutOutcome::Completed { .. }),
        "{outcome:?}"
    );
    // The default policy: schedule_to_close 5 min, so a 360 s key.
    let keys = stack.keys_of(&wf).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(Stack::key_ttl_seconds(&keys[0]), 360.0);
    stack.stop().await;
}
