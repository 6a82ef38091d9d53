//! Finding 5: the reuse guard lived only in `keylease-worker checkout`, so
//! any other starter (`temporal workflow start`, a client retrying its
//! start) charged a paid order a second time. Now the checkout itself
//! refuses, `DuplicateOrder`, before it creates anything.

use keylease_tests::stack::{CheckoutHandle, Stack, checkout, unique};
use keylease_workflows::{CheckoutInput, CheckoutOutcome, CheckoutStep, CheckoutWorkflow};

use super::intents_of;
use crate::checkout::{fulfil, outcome};

mod busy;

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
    // An order id holding the word OR: a value in the search, not an operator.
    let order = "order-duplicate OR-1001";
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
    // One naming a customer: the order is paid whoever pays for it.
    let mut with_customer = checkout(order, 3100, "pm_card_visa");
    with_customer.customer = Some("cus_duplicate".to_owned());
    refused_as_duplicate(
        checked_out(
            &stack,
            &unique("duplicate-order-customer"),
            with_customer,
            true,
        )
        .await,
    );

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

/// Issue 24: the order check reads Stripe's list unexpanded. A payment of
/// the order that only the list shows (search ten minutes behind) and that
/// was refunded in full must still be read with its refunds, or the next
/// checkout of the order would be refused as already paid.
#[tokio::test(flavor = "multi_thread")]
async fn an_order_refunded_before_that_only_the_list_shows_is_checked_out_again() {
    let stack = Stack::spawn("order-again-listed").await;
    stack
        .sim_control(
            "/_sim/config",
            serde_json::json!({"search_indexing_delay_ms": 600_000}),
        )
        .await;
    let order = "order-again-listed";
    let ended = checked_out(
        &stack,
        &unique("order-again-listed-1"),
        checkout(order, 1400, "pm_card_visa"),
        false,
    )
    .await;
    assert!(
        matches!(ended, CheckoutOutcome::Compensated { .. }),
        "{ended:?}"
    );
    let ended = checked_out(
        &stack,
        &unique("order-again-listed-2"),
        checkout(order, 1400, "pm_card_visa"),
        true,
    )
    .await;
    assert!(
        matches!(ended, CheckoutOutcome::Completed { .. }),
        "a refunded payment holds no money: {ended:?}"
    );
    // Paid now, and still only in the list: refused.
    refused_as_duplicate(
        checked_out(
            &stack,
            &unique("order-again-listed-3"),
            checkout(order, 1400, "pm_card_visa"),
            true,
        )
        .await,
    );
    stack.stop().await;
}

/// What an attack on the order check found: a retry of the charge whose
/// first answer was lost must take its own PaymentIntent, not refuse the
/// order as paid nor create a second one — even when a read fails once with
/// Stripe's 4xx, or the retry comes after Stripe's 24 h idempotency window.
#[tokio::test(flavor = "multi_thread")]
async fn a_retry_takes_its_own_lost_payment_and_never_makes_a_second() {
    let stack = Stack::spawn("own-payment").await;
    for (order, between) in [
        ("order-own-404", "search-404"),
        ("order-own-late", "a day later"),
    ] {
        stack
            .fault(serde_json::json!({"method": "POST", "path": "/v1/payment_intents", "kind": "drop_after_commit", "count": 1}))
            .await;
        let wf = unique("own-payment");
        let mut input = checkout(order, 1900, "pm_card_visa");
        if let Some(policy) = input.policy.as_mut() {
            policy.charge.retry.initial_interval = std::time::Duration::from_secs(4);
            policy.charge.retry.maximum_interval = std::time::Duration::from_secs(4);
        }
        let handle = stack.start(&wf, input).await;
        // The first attempt is over (its key revoked); the charge waits to retry.
        keylease_testkit::eventually(
            std::time::Duration::from_secs(20),
            "the first attempt over",
            || async {
                stack
                    .keys_of(&wf)
                    .await
                    .iter()
                    .any(|k| k["status"] == "revoked")
                    .then_some(())
            },
        )
        .await;
        if between == "search-404" {
            stack
                .fault(serde_json::json!({"method": "GET", "path": "/v1/payment_intents/search", "kind": "status", "status": 404, "count": 1}))
                .await;
        } else {
            stack
                .sim_control(
                    "/_sim/clock",
                    serde_json::json!({"advance_seconds": 25 * 3600}),
                )
                .await;
        }
        assert_eq!(
            wait_or_end(&handle).await,
            CheckoutStep::AwaitingFulfilment,
            "{between}"
        );
        fulfil(&handle, true, None).await;
        let CheckoutOutcome::Completed { payment_intent_id } = outcome(&handle).await else {
            panic!("{between}: not completed");
        };
        let intents = intents_of(&stack, order).await;
        assert_eq!(
            intents.len(),
            1,
            "{between}: one PaymentIntent: {intents:?}"
        );
        assert_eq!(intents[0]["id"], payment_intent_id.as_str());
    }
    stack.stop().await;
}
