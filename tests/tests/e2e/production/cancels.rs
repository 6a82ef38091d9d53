//! Finding 7: a cancel before the charge charged anyway, then refunded.
//! Now a cancel before the charge is scheduled, or while no attempt of it
//! runs, charges nothing.

use std::time::Duration;

use keylease_testkit::eventually;
use keylease_tests::process::WorkerProcess;
use keylease_tests::stack::{Stack, checkout, unique};
use keylease_workflows::{CheckoutStep, CheckoutWorkflow};

use temporalio_client::{WorkflowCancelOptions, WorkflowStartOptions};

use super::{ending, intents_of, status_of};

/// Finding 7: a cancel that arrived before the charge started still
/// charged, then refunded (fees for nothing). Now nothing is charged.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_before_the_charge_charges_nothing() {
    let stack = Stack::spawn("cancel-early").await;
    // A queue no worker polls yet: the checkout and its cancel wait together.
    let queue = unique("cancel-early-queue");
    let wf = unique("cancel-early");
    let order = "order-cancel-early";
    stack
        .client
        .start_workflow(
            CheckoutWorkflow::run,
            checkout(order, 1500, "pm_card_visa").into(),
            WorkflowStartOptions::new(queue.clone(), wf.clone()).build(),
        )
        .await
        .expect("start");
    let handle = stack.client.get_workflow_handle::<CheckoutWorkflow>(&wf);
    handle
        .cancel(WorkflowCancelOptions::default())
        .await
        .expect("cancel");
    let broker = format!("http://{}", stack.broker);
    let worker = WorkerProcess::spawn(&stack, &queue, &broker, &[]);
    let (failed, error) = ending(&handle).await;
    assert!(failed && error.contains("ancel"), "{error}");
    stack
        .record_history(&handle, "cancelled-before-charge")
        .await;
    assert!(
        intents_of(&stack, order).await.is_empty(),
        "nothing charged"
    );
    assert!(stack.keys_of(&wf).await.is_empty(), "no key issued");
    worker.stop().await;
    stack.stop().await;
}

/// Finding 7, its rest: a cancel that came once the charge was scheduled,
/// while no attempt of it ran (here waiting 20 s to retry a Stripe 503),
/// still charged on the next attempt, then refunded. Now Temporal cancels
/// the charge there and then, and `reconcile` tells what earlier attempts
/// did: nothing charged ends cancelled; a charge whose answer was lost is
/// refunded, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_while_the_charge_waits_to_retry_charges_nothing_more() {
    let stack = Stack::spawn("cancel-retry").await;
    for (order, fault) in [
        (
            "order-cancel-retry-503",
            serde_json::json!({"kind": "status", "status": 503}),
        ),
        (
            "order-cancel-retry-lost",
            serde_json::json!({"kind": "drop_after_commit"}),
        ),
    ] {
        let mut fault = fault;
        fault["method"] = "POST".into();
        fault["path"] = "/v1/payment_intents".into();
        fault["count"] = 1.into();
        stack.fault(fault).await;
        let wf = unique("cancel-retry");
        let mut input = checkout(order, 1600, "pm_card_visa");
        if let Some(policy) = input.policy.as_mut() {
            policy.charge.retry.initial_interval = Duration::from_secs(20);
            policy.charge.retry.maximum_interval = Duration::from_secs(20);
        }
        let handle = stack.start(&wf, input).await;
        // The first attempt has ended (its key revoked): the charge waits to retry.
        eventually(
            Duration::from_secs(20),
            "the first attempt over",
            || async {
                let keys = stack.keys_of(&wf).await;
                keys.iter().any(|k| k["status"] == "revoked").then_some(())
            },
        )
        .await;
        handle
            .cancel(WorkflowCancelOptions::default())
            .await
            .expect("cancel");
        let (failed, ended) = ending(&handle).await;
        let intents = intents_of(&stack, order).await;
        if order.ends_with("503") {
            assert!(failed && ended.contains("ancel"), "{ended}");
            assert!(intents.is_empty(), "nothing charged: {intents:?}");
            let status = status_of(&handle).await;
            assert_eq!(status.step, CheckoutStep::Cancelled);
            stack
                .record_history(&handle, "cancelled-waiting-to-retry")
                .await;
        } else {
            assert!(!failed && ended.contains("Compensated"), "{ended}");
            assert_eq!(
                intents.len(),
                1,
                "the lost answer's charge only: {intents:?}"
            );
            let refunds = stack.sim_held("refunds").await;
            assert_eq!(refunds.len(), 1, "refunded once: {refunds:?}");
        }
        let keys = stack.keys_of(&wf).await;
        assert!(keys.iter().all(|k| k["status"] == "revoked"), "{keys:?}");
        assert!(
            keys.iter()
                .filter(|k| k["label"].as_str().is_some_and(|l| l.ends_with("-charge")))
                .count()
                == 1,
            "no second charge attempt: {keys:?}"
        );
    }
    stack.stop().await;
}

/// What a second attack found: a create whose attempt gave up (its
/// deadline passed) may still land at Stripe afterwards, and `reconcile`
/// read "nothing charged" at once — a checkout ended Failed (or cancelled)
/// while its own PaymentIntent then took the money. "Nothing charged" now
/// waits for the search window (which thus also bounds a create in flight).
#[tokio::test(flavor = "multi_thread")]
async fn a_create_landing_after_its_attempt_gave_up_is_found() {
    let stack = Stack::spawn("late-create").await;
    stack
        .fault(serde_json::json!({"method": "POST", "path": "/v1/payment_intents", "kind": "delay", "delay_ms": 6000, "count": 1}))
        .await;
    let wf = unique("late-create");
    let order = "order-late-create";
    let mut input = checkout(order, 1100, "pm_card_visa");
    if let Some(policy) = input.policy.as_mut() {
        policy.charge.start_to_close = Duration::from_secs(2);
        policy.charge.schedule_to_close = Duration::from_secs(3);
        policy.charge.retry.maximum_attempts = 1;
        policy.search_window = Duration::from_secs(12);
    }
    let handle = stack.start(&wf, input).await;
    let step = eventually(Duration::from_secs(40), "charged or ended", || async {
        let step = status_of(&handle).await.step;
        matches!(
            step,
            CheckoutStep::AwaitingFulfilment | CheckoutStep::Failed
        )
        .then_some(step)
    })
    .await;
    assert_eq!(
        step,
        CheckoutStep::AwaitingFulfilment,
        "the late create is this checkout's charge"
    );
    assert_eq!(intents_of(&stack, order).await.len(), 1);
    handle
        .cancel(WorkflowCancelOptions::default())
        .await
        .expect("cancel");
    let (_, ended) = ending(&handle).await;
    assert!(ended.contains("Compensated"), "{ended}");
    stack.stop().await;
}

/// What a second attack found: started on a cron schedule, every run of a
/// checkout was the same checkout — the next run took the last one's
/// charge as its own and refunded a fulfilled order. Now it fails at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_checkout_on_a_cron_schedule_fails_at_once() {
    let stack = Stack::spawn("cron").await;
    let wf = unique("cron");
    let handle = stack
        .client
        .start_workflow(
            CheckoutWorkflow::run,
            checkout("order-cron", 800, "pm_card_visa").into(),
            WorkflowStartOptions::new(stack.task_queue.clone(), wf.clone())
                .cron_schedule("@every 5s".to_owned())
                .build(),
        )
        .await
        .expect("start");
    let run_id = handle.run_id().expect("run id").to_owned();
    let run = temporalio_client::WorkflowExecutionInfo::builder()
        .namespace(stack.client.options().namespace.clone())
        .workflow_id(wf.clone())
        .run_id(run_id)
        .build()
        .bind_untyped(stack.client.clone());
    let failure = eventually(Duration::from_secs(30), "the first run closed", || async {
        let description = run
            .describe(temporalio_client::WorkflowDescribeOptions::default())
            .await
            .ok()?;
        (description.status() != temporalio_client::WorkflowExecutionStatus::Running)
            .then_some(description.status())
    })
    .await;
    assert_eq!(failure, temporalio_client::WorkflowExecutionStatus::Failed);
    assert!(
        intents_of(&stack, "order-cron").await.is_empty(),
        "nothing charged"
    );
    assert!(stack.keys_of(&wf).await.is_empty(), "no key issued");
    handle
        .terminate(temporalio_client::WorkflowTerminateOptions::default())
        .await
        .expect("end the schedule");
    stack.stop().await;
}
