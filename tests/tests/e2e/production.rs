//! Issue 19: paths production takes and the earlier tests did not. Each
//! test names its finding; each failed on the code before the
//! `checked-input-fulfil-once-charged-unbounded-refund` patch.

use std::time::Duration;

use keylease_testkit::eventually;
use keylease_tests::process::WorkerProcess;
use keylease_tests::stack::{Stack, checkout, signal_fulfilment, unique};
use keylease_workflows::{CheckoutOutcome, CheckoutStep, CheckoutWorkflow, FulfilmentRequest};
use temporalio_client::errors::WorkflowUpdateError;
use temporalio_client::{
    WorkflowCancelOptions, WorkflowExecuteUpdateOptions, WorkflowGetResultOptions,
    WorkflowQueryOptions, WorkflowStartOptions,
};

use crate::checkout::{fulfil, outcome, wait_for_step};

/// The `fulfil` Update's refusal, or a panic if it was taken.
async fn refused_fulfil(
    handle: &keylease_tests::stack::CheckoutHandle,
    value: serde_json::Value,
) -> String {
    let answer = handle
        .execute_update(
            CheckoutWorkflow::fulfil,
            FulfilmentRequest::json(&value),
            WorkflowExecuteUpdateOptions::default(),
        )
        .await;
    match answer {
        Err(WorkflowUpdateError::Failed(failure)) => failure.message,
        other => panic!("fulfil {value} must be refused: {other:?}"),
    }
}

/// How the checkout under `handle` ended, as text (its failure, for one
/// that failed), within a minute: it must end, not wedge.
async fn ending(handle: &keylease_tests::stack::CheckoutHandle) -> (bool, String) {
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("the checkout ends within a minute instead of wedging");
    (result.is_err(), format!("{result:?}"))
}

/// Every answer to the charge's create is lost after Stripe committed it.
async fn drop_every_create_answer(stack: &Stack) {
    stack.fault(serde_json::json!({"method": "POST", "path": "/v1/payment_intents", "kind": "drop_after_commit", "count": 10})).await;
}

/// The PaymentIntents stripe-sim holds for `order_id`.
async fn intents_of(stack: &Stack, order_id: &str) -> Vec<serde_json::Value> {
    let intents = stack.sim_held("payment_intents").await;
    intents
        .into_iter()
        .filter(|pi| pi["metadata"]["order_id"] == order_id)
        .collect()
}

/// Finding 1: a refund outage longer than the refund's own retry policy
/// (4 attempts in about 2.5 s here) used to end `CompensationFailed` with
/// the money kept. The compensation now goes round until Stripe answers,
/// and `status` shows the rounds and the last error meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn a_refund_outage_longer_than_the_refund_policy_ends_compensated() {
    let stack = Stack::spawn("refund-outage").await;
    let wf = unique("refund-outage");
    let handle = stack
        .start(&wf, checkout("order-refund-outage", 1300, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    stack
        .fault(serde_json::json!({"method": "POST", "path": "/v1/refunds", "kind": "status", "status": 503, "duration_ms": 15000}))
        .await;
    fulfil(&handle, false, Some("out of stock")).await;
    let status = eventually(Duration::from_secs(30), "a second refund round", || async {
        let status = handle
            .query(
                CheckoutWorkflow::status,
                (),
                WorkflowQueryOptions::default(),
            )
            .await
            .ok()?;
        (status.refund_rounds >= 2).then_some(status)
    })
    .await;
    assert_eq!(status.step, CheckoutStep::Refunding);
    let last_error = status.refund_last_error.unwrap_or_default();
    assert!(last_error.contains("StripeUnavailable"), "{last_error}");
    let CheckoutOutcome::Compensated { refund_id, .. } = outcome(&handle).await else {
        panic!("the refund outlasts the outage");
    };
    stack
        .record_history(&handle, "compensated-after-rounds")
        .await;
    let refunds = stack.sim_held("refunds").await;
    assert_eq!(refunds.len(), 1, "one refund, however many rounds");
    assert_eq!(refunds[0]["id"], refund_id.as_str());
    stack.stop().await;
}

/// Finding 6: `fulfil` during the charge answered "recorded" (goods could
/// ship) and the charge could still decline. Now the Update is refused
/// until the checkout is charged; a `fulfilment` signal then (which tells
/// its sender nothing) is held and counts only once the charge succeeded.
/// Finding 11: a fulfilment with an unknown field is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_fulfilment_before_the_charge_settles_is_refused_or_held() {
    let stack = Stack::spawn("fulfil-early").await;
    stack.fault(serde_json::json!({"method": "POST", "path": "/v1/payment_intents", "kind": "delay", "delay_ms": 3000})).await;
    let wf = unique("fulfil-early");
    let handle = stack
        .start(&wf, checkout("order-fulfil-early", 1400, "pm_card_visa"))
        .await;
    eventually(Duration::from_secs(20), "a live charge key", || async {
        let keys = stack.keys_of(&wf).await;
        keys.iter().any(|k| k["status"] == "active").then_some(())
    })
    .await;
    let why = refused_fulfil(&handle, serde_json::json!({"ok": true})).await;
    assert!(why.contains("not charged yet"), "{why}");
    let why = refused_fulfil(&handle, serde_json::json!({"ok": true, "reasn": "typo"})).await;
    assert!(why.contains("unknown field"), "{why}");
    let status = handle
        .query(
            CheckoutWorkflow::status,
            (),
            WorkflowQueryOptions::default(),
        )
        .await
        .expect("status");
    assert_eq!(
        status.step,
        CheckoutStep::Charging,
        "the refusals took nothing"
    );
    signal_fulfilment(&handle, true, None)
        .await
        .expect("signal");
    let CheckoutOutcome::Completed { payment_intent_id } = outcome(&handle).await else {
        panic!("the held signal counts once the charge succeeded");
    };
    stack
        .record_history(&handle, "fulfilled-by-a-held-signal")
        .await;
    let intents = intents_of(&stack, "order-fulfil-early").await;
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0]["id"], payment_intent_id.as_str());
    assert_eq!(intents[0]["status"], "succeeded");
    stack.stop().await;
}

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
            checkout(order, 1500, "pm_card_visa"),
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

/// Finding 9: a policy Temporal cannot schedule, or a fulfilment timeout no
/// timer can hold, used to charge and then fail every workflow task: the
/// refund could never run. Now the checkout fails at once, naming the
/// field, before any key or charge.
#[tokio::test(flavor = "multi_thread")]
async fn inputs_that_would_wedge_a_checkout_fail_it_before_any_charge() {
    let stack = Stack::spawn("wedge").await;
    let mut shrinking = checkout("order-wedge-backoff", 1600, "pm_card_visa");
    if let Some(policy) = shrinking.policy.as_mut() {
        policy.refund.retry.backoff_coefficient = 0.5;
    }
    let mut endless = checkout("order-wedge-timeout", 1600, "pm_card_visa");
    endless.fulfilment_timeout = Duration::from_secs(300_000_000_000 * 31_557_600);
    // No Stripe call fits in a millisecond: it would charge and never see the answer.
    let mut hasty = checkout("order-wedge-hasty", 1600, "pm_card_visa");
    if let Some(policy) = hasty.policy.as_mut() {
        policy.charge.start_to_close = Duration::from_millis(1);
    }
    for (input, field) in [
        (shrinking, "policy.refund.retry.backoff_coefficient"),
        (endless, "fulfilment_timeout"),
        (hasty, "policy.charge.start_to_close"),
    ] {
        let order = input.order_id.clone();
        let wf = unique("wedge");
        let handle = stack.start(&wf, input).await;
        let (_, error) = ending(&handle).await;
        assert!(
            error.contains("InvalidInput") && error.contains(field),
            "{error}"
        );
        if field == "fulfilment_timeout" {
            stack.record_history(&handle, "input-refused").await;
        }
        assert!(
            intents_of(&stack, &order).await.is_empty(),
            "{order}: nothing charged"
        );
        assert!(
            stack.keys_of(&wf).await.is_empty(),
            "{order}: no key issued"
        );
    }
    stack.stop().await;
}

/// Finding 4: with the create's answers lost and Stripe's search lagging
/// past the reconcile window, the checkout used to end `Failed` ("Stripe
/// holds no charge") while its PaymentIntent was `succeeded`. An empty
/// search is now confirmed by Stripe's list, which does not lag.
#[tokio::test(flavor = "multi_thread")]
async fn a_search_lagging_past_its_window_never_reads_as_not_charged() {
    let stack = Stack::spawn("search-lag").await;
    drop_every_create_answer(&stack).await;
    // Ten minutes behind: far past the test policy's 3 s search window.
    stack
        .sim_control(
            "/_sim/config",
            serde_json::json!({"search_indexing_delay_ms": 600_000}),
        )
        .await;
    let wf = unique("search-lag");
    let order = "order-search-lag";
    let handle = stack
        .start(&wf, checkout(order, 1700, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&handle, true, None).await;
    let CheckoutOutcome::Completed { payment_intent_id } = outcome(&handle).await else {
        panic!("the charge the list finds completes");
    };
    let intents = intents_of(&stack, order).await;
    assert_eq!(intents.len(), 1, "one PaymentIntent: {intents:?}");
    assert_eq!(intents[0]["id"], payment_intent_id.as_str());
    stack.stop().await;
}

/// Finding 11: after a `ChargeOutcomeUnknown` failure, `status` still said
/// `reconciling`. It now says `outcome_unknown`.
#[tokio::test(flavor = "multi_thread")]
async fn a_charge_nobody_can_settle_shows_outcome_unknown() {
    let stack = Stack::spawn("outcome-unknown").await;
    drop_every_create_answer(&stack).await;
    stack.fault(serde_json::json!({"method": "GET", "path": "/v1/payment_intents*", "kind": "status", "status": 500, "duration_ms": 60_000})).await;
    let wf = unique("outcome-unknown");
    let mut input = checkout("order-outcome-unknown", 1800, "pm_card_visa");
    if let Some(policy) = input.policy.as_mut() {
        policy.reconcile.schedule_to_close = Duration::from_secs(4);
    }
    let handle = stack.start(&wf, input).await;
    let (_, error) = ending(&handle).await;
    assert!(error.contains("ChargeOutcomeUnknown"), "{error}");
    let status = handle
        .query(
            CheckoutWorkflow::status,
            (),
            WorkflowQueryOptions::default(),
        )
        .await
        .expect("status of the closed checkout");
    assert_eq!(status.step, CheckoutStep::OutcomeUnknown);
    stack.stop().await;
}

/// `temporal workflow reset --type FirstWorkflowTask` of `workflow_id`: a
/// new run of the same checkout, as an operator makes one.
fn reset(stack: &Stack, workflow_id: &str) {
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

/// An attack on the compensation: a 401 (a Stripe key being rotated at the
/// broker), 403 or 404 is not Stripe refusing the refund, yet it ended
/// `CompensationFailed` with the money kept. It is now one more round.
#[tokio::test(flavor = "multi_thread")]
async fn a_refund_answer_that_is_not_stripes_refusal_is_retried() {
    let stack = Stack::spawn("refund-401").await;
    let wf = unique("refund-401");
    let handle = stack
        .start(&wf, checkout("order-refund-401", 1900, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    for status in [401, 403, 404] {
        stack
            .fault(serde_json::json!({"method": "POST", "path": "/v1/refunds", "kind": "status", "status": status}))
            .await;
    }
    fulfil(&handle, false, Some("out of stock")).await;
    let ended = outcome(&handle).await;
    assert!(
        matches!(ended, CheckoutOutcome::Compensated { .. }),
        "{ended:?}"
    );
    assert_eq!(stack.sim_held("refunds").await.len(), 1);
    stack.stop().await;
}

/// An attack on the compensation: a refund that committed but whose
/// answers were lost, retried after Stripe's 24 h idempotency window, got
/// "already been refunded" and ended `CompensationFailed` although the
/// money went back. The refund is now looked up and the checkout ends
/// `Compensated` with it.
#[tokio::test(flavor = "multi_thread")]
async fn a_refund_found_already_made_a_day_later_ends_compensated() {
    let stack = Stack::spawn("refund-late").await;
    let wf = unique("refund-late");
    let handle = stack
        .start(&wf, checkout("order-refund-late", 2300, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    stack
        .fault(serde_json::json!({"method": "POST", "path": "/v1/refunds", "kind": "drop_after_commit", "duration_ms": 6000}))
        .await;
    fulfil(&handle, false, Some("out of stock")).await;
    let refund_id = eventually(Duration::from_secs(20), "the refund made", || async {
        let refunds = stack.sim_held("refunds").await;
        refunds
            .first()
            .and_then(|r| r["id"].as_str().map(str::to_owned))
    })
    .await;
    stack
        .sim_control(
            "/_sim/clock",
            serde_json::json!({"advance_seconds": 25 * 3600}),
        )
        .await;
    let CheckoutOutcome::Compensated {
        refund_id: found, ..
    } = outcome(&handle).await
    else {
        panic!("the refund made is found");
    };
    assert_eq!(found, refund_id);
    stack
        .record_history(&handle, "compensated-refund-found")
        .await;
    assert_eq!(stack.sim_held("refunds").await.len(), 1, "refunded once");
    stack.stop().await;
}

/// An attack on finding 6: a `fulfil` Update sent with the start
/// (update-with-start) was taken before the run knew its rules, and
/// answered "recorded". It is refused like any Update before the charge.
#[tokio::test(flavor = "multi_thread")]
async fn a_fulfil_sent_with_the_start_is_refused() {
    let stack = Stack::spawn("update-with-start").await;
    let wf = unique("update-with-start");
    let input = serde_json::to_string(&checkout("order-uws", 2400, "pm_card_visa")).unwrap();
    let (ok, text) = stack.temporal_cli(&[
        "workflow",
        "execute-update-with-start",
        "--workflow-id",
        &wf,
        "--type",
        "checkout",
        "--task-queue",
        &stack.task_queue,
        "--id-conflict-policy",
        "UseExisting",
        "--input",
        &input,
        "--update-name",
        "fulfil",
        "--update-input",
        r#"{"ok": true}"#,
    ]);
    assert!(!ok && text.contains("not charged yet"), "{text}");
    let handle = stack.client.get_workflow_handle::<CheckoutWorkflow>(&wf);
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    stack.stop().await;
}

/// An attack on the worker's upgrade: a role made before reconcile read
/// Stripe's list does not allow it, and every reconcile key was refused
/// (`ChargeOutcomeUnknown` with the customer charged). The worker now says
/// so at start and reconciles on search alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_role_made_before_the_list_read_still_reconciles() {
    let stack = Stack::spawn("old-role").await;
    let mut endpoints = keylease_activities::needs::endpoints();
    endpoints.retain(|entry| *entry != keylease_activities::reconcile::LIST_ENDPOINT);
    let http = reqwest::Client::new();
    let broker = format!("http://{}", stack.broker);
    let role = serde_json::json!({
        "name": "before-the-list", "vendor": "stripe", "label_prefix": "temporal-",
        "allowed_endpoints": endpoints, "max_key_usd_cap": 1000.0, "daily_usd_cap": 100000.0,
        "max_expires_in": 86400, "allow_allowed_objects": true, "allow_allowed_metadata": true,
    });
    let token = "rt_old_role_7d2f9a1c4e8b3f6a0d5c2e9b";
    for (path, body) in [
        ("/v1/roles".to_owned(), role),
        (
            "/v1/roles/before-the-list/tokens".to_owned(),
            serde_json::json!({"token": token}),
        ),
    ] {
        let answer = http
            .post(format!("{broker}{path}"))
            .bearer_auth(keylease_tests::stack::ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "{path}: {}",
            answer.text().await.unwrap()
        );
    }
    let queue = unique("old-role-queue");
    let worker = WorkerProcess::spawn(&stack, &queue, &broker, &[("KEYLEASE_BROKER_TOKEN", token)]);
    drop_every_create_answer(&stack).await;
    let wf = unique("old-role");
    stack
        .client
        .start_workflow(
            CheckoutWorkflow::run,
            checkout("order-old-role", 2500, "pm_card_visa"),
            WorkflowStartOptions::new(queue.clone(), wf.clone()).build(),
        )
        .await
        .expect("start");
    let handle = stack.client.get_workflow_handle::<CheckoutWorkflow>(&wf);
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&handle, true, None).await;
    assert!(matches!(
        outcome(&handle).await,
        CheckoutOutcome::Completed { .. }
    ));
    assert_eq!(intents_of(&stack, "order-old-role").await.len(), 1);
    assert!(
        worker
            .log_text()
            .contains("does not allow an endpoint the activities ask for"),
        "{}",
        worker.log_text()
    );
    worker.stop().await;
    stack.stop().await;
}
