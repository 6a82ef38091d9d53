//! Finding 5: the reuse guard lived only in `keylease-worker checkout`, so
//! any other starter (`temporal workflow start`, a client retrying its
//! start) charged a paid order a second time. Now the checkout itself
//! refuses, `DuplicateOrder`, before it creates anything.

use keylease_tests::stack::{CheckoutHandle, Stack, checkout, unique};
use keylease_workflows::{CheckoutInput, CheckoutOutcome, CheckoutStep, CheckoutWorkflow};

use super::intents_of;
use crate::checkout::{fulfil, outcome};

/// Charges `input` under `wf` and has it fulfilled (`ok`); returns how it ended.
async fn checked_out(stack: &Stack, wf: &str, input: CheckoutInput, ok: bool) -> CheckoutOutcome {
    let handle = stack.start(wf, input).await;
    if matches!(wait_or_end(&handle).await, CheckoutStep::AwaitingFulfilment) {
        fulfil(&handle, ok, (!ok).then_some("out of stock")).await;
    }
    outcome(&handle).await
}

/// Waits until the checkout is charged, or has ended without a charge.
async fn wait_or_end(handle: &CheckoutHandle) -> CheckoutStep {
    keylease_testkit::eventually(
        std::time::Duration::from_secs(30),
        "charged or ended",
        || async {
            let step = handle
                .query(
                    CheckoutWorkflow::status,
                    (),
                    temporalio_client::WorkflowQueryOptions::default(),
                )
                .await
                .ok()?
                .step;
            matches!(
                step,
                CheckoutStep::AwaitingFulfilment | CheckoutStep::Failed
            )
            .then_some(step)
        },
    )
    .await
}

/// The `DuplicateOrder` failure's message, or a panic naming what happened instead.
fn refused_as_duplicate(ended: CheckoutOutcome) -> String {
    match ended {
        CheckoutOutcome::Failed {
            error_type,
            message,
        } if error_type == "DuplicateOrder" => message,
        other => panic!("a paid order must be refused, not {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paid_order_is_not_charged_again_whoever_starts_the_checkout() {
    let stack = Stack::spawn("duplicate-order").await;
    // Stripe's search ten minutes behind: only the list can see the first charge.
    stack
        .sim_control(
            "/_sim/config",
            serde_json::json!({"search_indexing_delay_ms": 600_000}),
        )
        .await;
    let order = "order-duplicate";
    let wf = unique("duplicate-order");
    let CheckoutOutcome::Completed { payment_intent_id } =
        checked_out(&stack, &wf, checkout(order, 3100, "pm_card_visa"), true).await
    else {
        panic!("the first checkout completes");
    };

    // Another starter reuses the completed checkout's workflow id (Temporal
    // allows it by default), as a client retrying its start call would.
    let input = serde_json::to_string(&checkout(order, 3100, "pm_card_visa")).expect("json");
    let (ok, text) = stack.temporal_cli(&[
        "workflow",
        "start",
        "--workflow-id",
        &wf,
        "--type",
        "checkout",
        "--task-queue",
        &stack.task_queue,
        "--input",
        &input,
    ]);
    assert!(ok, "start: {text}");
    let again = stack.client.get_workflow_handle::<CheckoutWorkflow>(&wf);
    let message = refused_as_duplicate(outcome(&again).await);
    assert!(
        message.contains(&payment_intent_id) && message.contains(&wf),
        "names the earlier PaymentIntent and workflow: {message}"
    );
    stack.record_history(&again, "duplicate-order").await;

    // A checkout of its own for the same order, with another card.
    let other = unique("duplicate-order-other");
    let message = refused_as_duplicate(
        checked_out(
            &stack,
            &other,
            checkout(order, 3100, "pm_card_mastercard"),
            true,
        )
        .await,
    );
    assert!(message.contains(&payment_intent_id), "{message}");

    let intents = intents_of(&stack, order).await;
    assert_eq!(intents.len(), 1, "charged once: {intents:?}");
    assert!(
        stack
            .keys_of(&other)
            .await
            .iter()
            .all(|k| k["status"] == "revoked"),
        "the refused charge's key revoked"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_refunded_or_declined_before_is_checked_out_again() {
    let stack = Stack::spawn("order-again").await;
    // Refunded: the next checkout of the order charges it.
    let refunded = "order-again-refunded";
    let ended = checked_out(
        &stack,
        &unique("order-again-1"),
        checkout(refunded, 1200, "pm_card_visa"),
        false,
    )
    .await;
    assert!(
        matches!(ended, CheckoutOutcome::Compensated { .. }),
        "{ended:?}"
    );
    let ended = checked_out(
        &stack,
        &unique("order-again-2"),
        checkout(refunded, 1200, "pm_card_visa"),
        true,
    )
    .await;
    assert!(
        matches!(ended, CheckoutOutcome::Completed { .. }),
        "{ended:?}"
    );
    // Declined: nothing held, a new card pays it.
    let declined = "order-again-declined";
    let ended = checked_out(
        &stack,
        &unique("order-again-3"),
        checkout(declined, 1300, "pm_card_chargeDeclined"),
        true,
    )
    .await;
    assert!(matches!(ended, CheckoutOutcome::Failed { .. }), "{ended:?}");
    let ended = checked_out(
        &stack,
        &unique("order-again-4"),
        checkout(declined, 1300, "pm_card_visa"),
        true,
    )
    .await;
    assert!(
        matches!(ended, CheckoutOutcome::Completed { .. }),
        "{ended:?}"
    );
    // Paid now (found by Stripe's search, which is not behind here): refused.
    let ended = checked_out(
        &stack,
        &unique("order-again-5"),
        checkout(declined, 1300, "pm_card_visa"),
        true,
    )
    .await;
    refused_as_duplicate(ended);
    stack.stop().await;
}
