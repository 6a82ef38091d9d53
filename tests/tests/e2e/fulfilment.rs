//! Fulfilment: a malformed `fulfilment` signal cannot wedge a checkout, and
//! the `fulfil` Update refuses what the checkout cannot take, saying why.

use std::time::Duration;

use keylease_tests::stack::{Stack, checkout, unique};
use keylease_worker::WorkerError;
use keylease_worker::start::{FulfilArgs, fulfil};
use keylease_workflows::{CheckoutOutcome, CheckoutStep, CheckoutWorkflow, FulfilmentRequest};
use temporalio_client::WorkflowExecuteUpdateOptions;
use temporalio_client::errors::WorkflowUpdateError;

use crate::checkout::{outcome, wait_for_step};

fn fulfil_args(stack: &Stack, workflow_id: &str, ok: bool, reason: Option<&str>) -> FulfilArgs {
    FulfilArgs {
        temporal: keylease_tests::stack::temporal_args(&stack.temporal.address, &stack.task_queue),
        workflow_id: workflow_id.to_owned(),
        ok,
        failed: !ok,
        reason: reason.map(str::to_owned),
        wait: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_fulfilment_signal_is_ignored_and_the_next_one_counts() {
    let stack = Stack::spawn("badsignal").await;
    let wf = unique("badsignal");
    let handle = stack
        .start(&wf, checkout("order-badsignal", 2100, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    // As any caller can send them, through the Temporal CLI: no `ok`, a wrong type, no argument.
    for input in [
        Some(r#"{"reason":"x"}"#),
        Some(r#"{"ok":"yes"}"#),
        Some("[true]"),
        None,
    ] {
        signal_via_cli(&stack, &wf, input);
    }
    signal_via_cli(&stack, &wf, Some(r#"{"ok":false,"reason":"damaged"}"#));
    let CheckoutOutcome::Compensated { reason, .. } = outcome(&handle).await else {
        panic!("the valid signal after the malformed ones refunds");
    };
    assert_eq!(reason, "damaged");
    assert_eq!(stack.sim_held("refunds").await.len(), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fulfil_update_refuses_a_malformed_or_second_fulfilment() {
    let stack = Stack::spawn("update").await;
    // The refund waits, so the checkout is still open for the second fulfilment.
    stack.fault(serde_json::json!({"method": "POST", "path": "/v1/refunds", "kind": "delay", "delay_ms": 4000})).await;
    let wf = unique("update");
    let handle = stack
        .start(&wf, checkout("order-update", 2200, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;

    let malformed = handle
        .execute_update(
            CheckoutWorkflow::fulfil,
            FulfilmentRequest::json(&serde_json::json!({"ok": 1})),
            WorkflowExecuteUpdateOptions::default(),
        )
        .await;
    match malformed {
        Err(WorkflowUpdateError::Failed(failure)) => {
            assert!(failure.message.contains("expected"), "{}", failure.message)
        }
        other => panic!("a malformed fulfil must be refused: {other:?}"),
    }

    let receipt = fulfil(fulfil_args(&stack, &wf, false, Some("out of stock")))
        .await
        .expect("the first fulfilment is taken");
    assert!(receipt.contains("refunded"), "{receipt}");
    let second = fulfil(fulfil_args(&stack, &wf, true, None)).await;
    match second {
        Err(WorkerError::Refused(why)) => assert!(why.contains("already received"), "{why}"),
        other => panic!("a second fulfilment must be refused: {other:?}"),
    }
    let CheckoutOutcome::Compensated { reason, .. } = outcome(&handle).await else {
        panic!("not compensated");
    };
    assert_eq!(reason, "out of stock", "the first fulfilment decided");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_fulfil_is_refused_with_the_refund_id() {
    let stack = Stack::spawn("late").await;
    let wf = unique("late");
    let mut input = checkout("order-late", 2300, "pm_card_visa");
    input.fulfilment_timeout = Duration::from_secs(1);
    let handle = stack.start(&wf, input).await;
    let CheckoutOutcome::Compensated {
        refund_id, reason, ..
    } = outcome(&handle).await
    else {
        panic!("not compensated");
    };
    assert_eq!(reason, "fulfilment timed out");
    stack.record_history(&handle, "fulfilment-timed-out").await;

    match fulfil(fulfil_args(&stack, &wf, true, None)).await {
        Err(WorkerError::Refused(why)) => {
            assert!(
                why.contains(&refund_id),
                "the refusal names the refund: {why}"
            )
        }
        other => panic!("a late fulfil must be refused: {other:?}"),
    }
    stack.stop().await;
}

/// Sends the `fulfilment` signal through the Temporal CLI, as any caller can, with `input` as its JSON.
fn signal_via_cli(stack: &Stack, wf: &str, input: Option<&str>) {
    let mut args = vec![
        "workflow",
        "signal",
        "--workflow-id",
        wf,
        "--name",
        "fulfilment",
    ];
    if let Some(input) = input {
        args.extend(["--input", input]);
    }
    let (sent, text) = stack.temporal_cli(&args);
    assert!(sent, "{text}");
}
