//! Issue 19: paths production takes and the earlier tests did not. Each
//! test names its finding; each failed on the code before the
//! `checked-input-fulfil-once-charged-unbounded-refund` patch.

use std::time::Duration;

use keylease_testkit::eventually;
use keylease_tests::stack::{Stack, checkout, signal_fulfilment, unique};
use keylease_workflows::{CheckoutOutcome, CheckoutStep, CheckoutWorkflow, FulfilmentRequest};
use temporalio_client::errors::WorkflowUpdateError;
use temporalio_client::{
    WorkflowExecuteUpdateOptions, WorkflowGetResultOptions, WorkflowQueryOptions,
};

use crate::checkout::{fulfil, outcome, wait_for_step};

mod attacks;
mod cancels;
mod orders;
mod outage;
mod resets;
mod settling;

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

/// The checkout's answer to its `status` query.
async fn status_of(
    handle: &keylease_tests::stack::CheckoutHandle,
) -> keylease_workflows::CheckoutStatus {
    handle
        .query(
            CheckoutWorkflow::status,
            (),
            WorkflowQueryOptions::default(),
        )
        .await
        .expect("status")
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

/// `n` PaymentIntents of other orders (`order-crowd-…`), made just now by
/// someone else straight at stripe-sim: a busy account, more than the
/// broker scans for one page of a list.
async fn crowd(stack: &Stack, n: usize) {
    made_at_sim(stack, n, |i| format!("order-crowd-{i}"), true).await;
}

/// `n` PaymentIntents made straight at stripe-sim (by someone else), 20 at
/// a time, the `i`th of order `order_of(i)`: charged (`paid`) or left
/// unconfirmed, holding no money.
async fn made_at_sim(stack: &Stack, n: usize, order_of: impl Fn(usize) -> String, paid: bool) {
    for batch in 0..n.div_ceil(20) {
        let creates = (batch * 20..n.min(batch * 20 + 20)).map(|i| {
            let order = order_of(i);
            async move {
                let mut form = vec![("metadata[order_id]", order.as_str())];
                form.extend(sim_form(paid));
                stack.sim_create(&form).await;
            }
        });
        futures::future::join_all(creates).await;
    }
}

/// The form of a PaymentIntent of 100 cents made at stripe-sim: charged
/// (`paid`) or left unconfirmed, holding no money.
fn sim_form(paid: bool) -> Vec<(&'static str, &'static str)> {
    let mut form = vec![("amount", "100"), ("currency", "usd")];
    if paid {
        form.extend([
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
            ("automatic_payment_methods[enabled]", "true"),
            ("automatic_payment_methods[allow_redirects]", "never"),
        ]);
    }
    form
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

/// A helper's review of `df49389` (reconcile answers "refunded" only once
/// it has read the whole list): a charge refunded by hand before the
/// compensation, on a busy account, was never answered "refunded", and the
/// checkout ended `CompensationFailed` with nothing held. The compensation
/// now names the PaymentIntent Stripe says is refunded, and reconcile
/// answers from its refund when the list cannot be read to its end.
#[tokio::test(flavor = "multi_thread")]
async fn a_charge_refunded_by_hand_on_a_busy_account_ends_compensated() {
    let stack = Stack::spawn("refunded-by-hand").await;
    let wf = unique("refunded-by-hand");
    let order = "order-refunded-by-hand";
    let handle = stack
        .start(&wf, checkout(order, 1600, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    let intents = intents_of(&stack, order).await;
    let id = intents[0]["id"].as_str().expect("an id").to_owned();
    crowd(&stack, 600).await;
    let refund = stack.sim_refund(&id, None).await;
    fulfil(&handle, false, Some("out of stock")).await;
    let (failed, ended) = ending(&handle).await;
    assert!(!failed && ended.contains("Compensated"), "{ended}");
    assert!(
        ended.contains(refund["id"].as_str().expect("an id")),
        "{ended}"
    );
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
    let status = status_of(&handle).await;
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
    let status = status_of(&handle).await;
    assert_eq!(status.step, CheckoutStep::OutcomeUnknown);
    stack.stop().await;
}

/// What an attack on finding 9 found: an input that does not decode as a
/// checkout's at all (a string for the amount, a field it does not know),
/// started by any client, failed the first workflow task over and over.
/// The checkout now decodes it itself and fails at once, naming what is wrong.
#[tokio::test(flavor = "multi_thread")]
async fn inputs_that_do_not_decode_fail_the_checkout_at_once() {
    let stack = Stack::spawn("undecodable").await;
    for (input, wrong) in [
        (
            r#"{"order_id":"order-undecodable-1","amount":"4200","currency":"usd","payment_method":"pm_card_visa"}"#,
            "invalid type",
        ),
        (
            r#"{"order_id":"order-undecodable-2","amount":4200,"currency":"usd","payment_method":"pm_card_visa","amout":1}"#,
            "unknown field",
        ),
        ("[4200]", "not a JSON object"),
    ] {
        let wf = unique("undecodable");
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
            input,
        ]);
        assert!(ok, "start: {text}");
        let handle = stack.client.get_workflow_handle::<CheckoutWorkflow>(&wf);
        let (failed, error) = ending(&handle).await;
        assert!(
            failed && error.contains("InvalidInput") && error.contains(wrong),
            "{input}: {error}"
        );
        if wrong == "invalid type" {
            stack.record_history(&handle, "input-undecodable").await;
        }
    }
    assert!(
        stack.sim_held("payment_intents").await.is_empty(),
        "nothing charged"
    );
    stack.stop().await;
}
