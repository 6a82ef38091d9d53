//! Issue 19, findings 2 and 3, and what an attack on their fix found: a run
//! made by `temporal workflow reset` finds the charge an earlier run made,
//! never charges twice, and never completes on refunded money.

use std::time::Duration;

use keylease_testkit::eventually;
use keylease_tests::stack::{Stack, checkout, unique};
use keylease_workflows::{CheckoutOutcome, CheckoutStep, CheckoutWorkflow, FulfilmentRequest};
use temporalio_client::WorkflowExecuteUpdateOptions;

use super::{ending, intents_of};
use crate::checkout::{fulfil, outcome, wait_for_step};

/// `temporal workflow reset --type FirstWorkflowTask` of `workflow_id`: a
/// new run of the same checkout, as an operator makes one.
pub(super) fn reset(stack: &Stack, workflow_id: &str) {
    let (ok, text) = stack.temporal_cli(&[
        "workflow",
        "reset",
        "--workflow-id",
        workflow_id,
        "--type",
        "FirstWorkflowTask",
        "--reason",
        "e2e: rerun the checkout",
    ]);
    assert!(ok, "reset: {text}");
}

/// Finding 2: a reset more than 24 h after the charge (Stripe's idempotency
/// window passed) charged the order a second time. The new run now finds
/// the first run's charge (Stripe's search, confirmed by its list) and
/// adopts it.
#[tokio::test(flavor = "multi_thread")]
async fn a_reset_a_day_after_the_charge_adopts_it_instead_of_charging_again() {
    let stack = Stack::spawn("reset-late").await;
    let wf = unique("reset-late");
    let order = "order-reset-late";
    let handle = stack
        .start(&wf, checkout(order, 2100, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&handle, true, None).await;
    let CheckoutOutcome::Completed { payment_intent_id } = outcome(&handle).await else {
        panic!("the first run completes");
    };
    stack
        .sim_control(
            "/_sim/clock",
            serde_json::json!({"advance_seconds": 25 * 3600}),
        )
        .await;
    // The reset run gets the first run's fulfilment signal again (Temporal
    // reapplies signals after the reset point) and completes by itself.
    reset(&stack, &wf);
    let CheckoutOutcome::Completed {
        payment_intent_id: adopted,
    } = outcome(&handle).await
    else {
        panic!("the reset run completes");
    };
    assert_eq!(
        adopted, payment_intent_id,
        "the first run's charge, adopted"
    );
    let intents = intents_of(&stack, order).await;
    assert_eq!(intents.len(), 1, "charged once: {intents:?}");
    // The lookup's list reaches back to when the checkout began (its first
    // event, which the reset copied), not to the reset run's own first task.
    let history = stack.history_text(&handle).await;
    let began: Vec<i64> = history
        .split("\"checkout_began_ms\":")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect();
    let started = history
        .split("\"event_time\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        .expect("the first event's time")
        .timestamp_millis();
    assert!(
        !began.is_empty(),
        "the lookup carries when the checkout began"
    );
    assert!(
        began.iter().all(|&ms| ms == started),
        "{began:?} vs {started}"
    );
    stack.record_history(&handle, "reset-adopts-charge").await;
    stack.stop().await;
}

/// Finding 3: a reset of a compensated checkout replayed the create (Stripe
/// answered its saved `succeeded`) and completed on a refunded
/// PaymentIntent. The new run now sees the refund and ends compensated.
#[tokio::test(flavor = "multi_thread")]
async fn a_reset_of_a_compensated_checkout_never_completes_unpaid() {
    let stack = Stack::spawn("reset-refunded").await;
    let wf = unique("reset-refunded");
    let order = "order-reset-refunded";
    let handle = stack
        .start(&wf, checkout(order, 2200, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&handle, false, Some("out of stock")).await;
    let CheckoutOutcome::Compensated { refund_id, .. } = outcome(&handle).await else {
        panic!("the first run is compensated");
    };
    reset(&stack, &wf);
    let ended = tokio::time::timeout(Duration::from_secs(60), outcome(&handle))
        .await
        .expect("the reset run ends by itself: there is nothing to fulfil");
    let CheckoutOutcome::Compensated {
        refund_id: found,
        reason,
        ..
    } = ended
    else {
        panic!("never completed on a refunded charge: {ended:?}");
    };
    assert_eq!(found, refund_id);
    assert!(reason.contains("refunded before this run"), "{reason}");
    assert_eq!(intents_of(&stack, order).await.len(), 1, "charged once");
    assert_eq!(stack.sim_held("refunds").await.len(), 1, "refunded once");
    stack.record_history(&handle, "reset-finds-refund").await;
    stack.stop().await;
}

/// Attack on finding 3: the first run's refund was still on its way to
/// Stripe when the reset came; the reset run adopted the charge (not yet
/// refunded) and later completed on a refunded PaymentIntent. A run that
/// adopted a charge now reads it again before it completes.
#[tokio::test(flavor = "multi_thread")]
async fn a_refund_landing_after_a_reset_is_seen_before_completing() {
    let stack = Stack::spawn("reset-refund-in-flight").await;
    let wf = unique("reset-refund-in-flight");
    let handle = stack
        .start(&wf, checkout("order-reset-in-flight", 2600, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    stack
        .fault(serde_json::json!({"method": "POST", "path": "/v1/refunds", "kind": "delay", "delay_ms": 6000}))
        .await;
    fulfil(&handle, false, Some("out of stock")).await;
    eventually(Duration::from_secs(20), "the refund on its way", || async {
        let requests = stack.sim_held("requests").await;
        requests
            .iter()
            .any(|r| r["path"] == "/v1/refunds")
            .then_some(())
    })
    .await;
    let (ok, text) = stack.temporal_cli(&[
        "workflow",
        "reset",
        "--workflow-id",
        &wf,
        "--type",
        "FirstWorkflowTask",
        "--reapply-type",
        "None",
        "--reason",
        "e2e: reset while refunding",
    ]);
    assert!(ok, "reset: {text}");
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    eventually(
        Duration::from_secs(20),
        "the first run's refund landed",
        || async { (!stack.sim_held("refunds").await.is_empty()).then_some(()) },
    )
    .await;
    fulfil(&handle, true, None).await;
    let ended = outcome(&handle).await;
    assert!(
        matches!(ended, CheckoutOutcome::Compensated { .. }),
        "never completed on a refunded charge: {ended:?}"
    );
    assert_eq!(stack.sim_held("refunds").await.len(), 1);
    stack.stop().await;
}

/// Attacks on finding 2: a charge an operator refunded in part is still a
/// charge (the checkout goes on with what it holds), and the `fulfil`
/// Update a reset reapplies before the charge is looked up is held, not
/// refused (a fulfilled order would have been refunded at the timeout).
#[tokio::test(flavor = "multi_thread")]
async fn a_reset_keeps_a_partly_refunded_charge_and_its_reapplied_fulfil() {
    let stack = Stack::spawn("reset-partial").await;
    let wf = unique("reset-partial");
    let order = "order-reset-partial";
    let handle = stack
        .start(&wf, checkout(order, 2700, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    handle
        .execute_update(
            CheckoutWorkflow::fulfil,
            FulfilmentRequest::json(&serde_json::json!({"ok": true})),
            WorkflowExecuteUpdateOptions::default(),
        )
        .await
        .expect("fulfil");
    let CheckoutOutcome::Completed { payment_intent_id } = outcome(&handle).await else {
        panic!("the first run completes");
    };
    let refunded = reqwest::Client::new()
        .post(format!("http://{}/v1/refunds", stack.sim))
        .basic_auth(keylease_tests::stack::STRIPE_SECRET, Some(""))
        .form(&[
            ("payment_intent", payment_intent_id.as_str()),
            ("amount", "500"),
        ])
        .send()
        .await
        .expect("a refund by hand");
    assert!(refunded.status().is_success());
    reset(&stack, &wf);
    let (failed, ended) = ending(&handle).await;
    assert!(
        !failed && ended.contains("Completed") && ended.contains(&payment_intent_id),
        "{ended}"
    );
    assert_eq!(intents_of(&stack, order).await.len(), 1, "charged once");
    stack.stop().await;
}
