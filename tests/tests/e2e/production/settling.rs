//! Finding 8: a payment still `processing` when the charge's budget ends (a
//! bank debit settles in days) ended the checkout `ChargeOutcomeUnknown`,
//! and then settled: money taken for a failed checkout. Now the checkout
//! follows it with durable timers (`settling`) and ends by Stripe's answer.

use std::time::Duration;

use keylease_tests::stack::{CheckoutHandle, Stack, checkout, test_policy, unique};
use keylease_workflows::{CheckoutOutcome, CheckoutStep};
use temporalio_client::WorkflowCancelOptions;

use super::{ending, intents_of, refused_fulfil, status_of};
use crate::checkout::{fulfil, outcome, wait_for_step};

/// A bank debit whose charge gives up on it at once: one 2 s attempt (too
/// short for a poll), and a reconcile of 5 s, so that the charge's budget
/// ends long before the debit settles. Returns the checkout and its
/// PaymentIntent, once the checkout is `settling`.
async fn settling_debit(stack: &Stack, wf: &str, order: &str) -> (CheckoutHandle, String) {
    let mut input = checkout(order, 2700, "pm_usBankAccount_success");
    let mut policy = test_policy();
    policy.charge.start_to_close = Duration::from_secs(2);
    policy.charge.schedule_to_close = Duration::from_secs(4);
    policy.charge.retry.maximum_attempts = 1;
    policy.reconcile.schedule_to_close = Duration::from_secs(5);
    input.policy = Some(policy);
    let handle = stack.start(wf, input).await;
    wait_for_step(&handle, CheckoutStep::Settling).await;
    let intents = intents_of(stack, order).await;
    assert_eq!(intents.len(), 1, "one debit: {intents:?}");
    assert_eq!(intents[0]["status"], "processing");
    let id = intents[0]["id"].as_str().expect("id").to_owned();
    (handle, id)
}

/// Settles, at stripe-sim, `what` (`payment_intents` or `refunds`) `id`:
/// its bank transfer arrives (`succeed`) or fails.
async fn settle_at_sim(stack: &Stack, what: &str, id: &str, succeed: bool) {
    stack
        .sim_control(
            &format!("/_sim/{what}/{id}/settle"),
            serde_json::json!({"succeed": succeed}),
        )
        .await;
}

async fn step(handle: &CheckoutHandle) -> CheckoutStep {
    status_of(handle).await.step
}

#[tokio::test(flavor = "multi_thread")]
async fn a_debit_settling_after_the_charge_budget_ends_completed() {
    let stack = Stack::spawn("settle-late").await;
    let wf = unique("settle-late");
    let order = "order-settle-late";
    let (handle, id) = settling_debit(&stack, &wf, order).await;
    let refusal = refused_fulfil(&handle, serde_json::json!({"ok": true})).await;
    assert!(refusal.contains("not charged yet"), "{refusal}");
    // Several reads (every 2 s) find it still processing: the checkout waits.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(step(&handle).await, CheckoutStep::Settling);
    settle_at_sim(&stack, "payment_intents", &id, true).await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&handle, true, None).await;
    let CheckoutOutcome::Completed { payment_intent_id } = outcome(&handle).await else {
        panic!("not completed");
    };
    assert_eq!(
        payment_intent_id, id,
        "the debit that settled, and no other"
    );
    assert_eq!(intents_of(&stack, order).await.len(), 1);
    stack
        .record_history(&handle, "settled-after-processing")
        .await;
    let keys = stack.keys_of(&wf).await;
    assert!(
        keys.iter().all(|k| k["status"] == "revoked"),
        "every read's key revoked: {keys:?}"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_debit_failing_after_the_charge_budget_ends_failed_and_a_cancel_waits_for_it() {
    let stack = Stack::spawn("settle-fail").await;
    // A debit that fails: nothing was charged, nothing to refund.
    let failing = unique("settle-fail");
    let (handle, id) = settling_debit(&stack, &failing, "order-settle-fail").await;
    settle_at_sim(&stack, "payment_intents", &id, false).await;
    let CheckoutOutcome::Failed {
        error_type,
        message,
    } = outcome(&handle).await
    else {
        panic!("not failed");
    };
    assert_eq!(error_type, "PaymentFailed", "{message}");
    assert_eq!(step(&handle).await, CheckoutStep::Failed);

    // A cancel while settling cannot cancel the debit: it waits for it,
    // then refunds what settled.
    let cancelled = unique("settle-cancel");
    let (handle, id) = settling_debit(&stack, &cancelled, "order-settle-cancel").await;
    handle
        .cancel(WorkflowCancelOptions::default())
        .await
        .expect("cancel");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(step(&handle).await, CheckoutStep::Settling);
    settle_at_sim(&stack, "payment_intents", &id, true).await;
    // The debit's refund goes back by a transfer: pending until it arrives.
    let refund = pending_refund_of(&stack, &id).await;
    settle_at_sim(&stack, "refunds", &refund, true).await;
    let (failed, ended) = ending(&handle).await;
    assert!(!failed && ended.contains("Compensated"), "{ended}");
    assert!(ended.contains(&id), "{ended}");
    stack.stop().await;
}

/// The id of the `pending` refund of PaymentIntent `id`, once there is one.
async fn pending_refund_of(stack: &Stack, id: &str) -> String {
    let refund =
        keylease_testkit::eventually(Duration::from_secs(30), "a pending refund", || async {
            let refunds = stack.sim_held("refunds").await;
            refunds
                .into_iter()
                .find(|r| r["payment_intent"] == id && r["status"] == "pending")
        })
        .await;
    refund["id"].as_str().expect("id").to_owned()
}

/// Finding 11, its rest: a refund Stripe answered `pending` (a bank debit's
/// money goes back by a transfer, in days) counted as done, and one that
/// then failed left the money kept with the checkout `Compensated`. Now the
/// compensation follows it: `Compensated` once it succeeds,
/// `CompensationFailed` with its id and reason when it fails.
#[tokio::test(flavor = "multi_thread")]
async fn a_pending_refund_is_followed_until_stripe_settles_it() {
    let stack = Stack::spawn("refund-pending").await;
    for (order, arrives) in [
        ("order-refund-arrives", true),
        ("order-refund-fails", false),
    ] {
        let wf = unique(order);
        let (handle, id) = settling_debit(&stack, &wf, order).await;
        settle_at_sim(&stack, "payment_intents", &id, true).await;
        wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
        fulfil(&handle, false, Some("out of stock")).await;
        let refund_id = pending_refund_of(&stack, &id).await;
        // A refund on its way gives nothing back yet: a second checkout of
        // the order is still refused.
        let again = stack
            .start(
                &unique("refund-pending-again"),
                checkout(order, 2700, "pm_card_visa"),
            )
            .await;
        match outcome(&again).await {
            CheckoutOutcome::Failed { error_type, .. } => assert_eq!(error_type, "DuplicateOrder"),
            other => panic!("an order whose refund is pending is still paid: {other:?}"),
        }
        // Read again every 2 s, and still pending: the checkout waits.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let status = status_of(&handle).await;
        assert_eq!(status.step, CheckoutStep::Refunding, "{status:?}");
        assert_eq!(status.refund_id.as_deref(), Some(refund_id.as_str()));
        settle_at_sim(&stack, "refunds", &refund_id, arrives).await;
        let (failed, ended) = ending(&handle).await;
        if arrives {
            assert!(!failed && ended.contains("Compensated"), "{ended}");
            assert!(ended.contains(&refund_id), "{ended}");
            stack
                .record_history(&handle, "compensated-pending-refund")
                .await;
        } else {
            assert!(failed && ended.contains("CompensationFailed"), "{ended}");
            assert!(ended.contains(&id), "names the PaymentIntent: {ended}");
            let status = status_of(&handle).await;
            assert_eq!(status.step, CheckoutStep::CompensationFailed);
            assert_eq!(status.refund_id.as_deref(), Some(refund_id.as_str()));
            let why = status.refund_last_error.unwrap_or_default();
            assert!(why.contains("failed") && why.contains("declined"), "{why}");
        }
        let refunds: Vec<_> = stack
            .sim_held("refunds")
            .await
            .into_iter()
            .filter(|r| r["payment_intent"] == id.as_str())
            .collect();
        assert_eq!(refunds.len(), 1, "one refund, read again, never made twice");
    }
    stack.stop().await;
}

/// What an attack on the settling found: a reset of a checkout while its
/// debit was settling looked the charge up, found it `processing`, and
/// failed `ChargeOutcomeUnknown` — then the debit settled, money taken. The
/// reset run now follows it too.
#[tokio::test(flavor = "multi_thread")]
async fn a_reset_while_settling_follows_the_debit() {
    let stack = Stack::spawn("settle-reset").await;
    let wf = unique("settle-reset");
    let order = "order-settle-reset";
    let (handle, id) = settling_debit(&stack, &wf, order).await;
    super::resets::reset(&stack, &wf);
    // The reset run looks the charge up, and settles it in its turn.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(step(&handle).await, CheckoutStep::Settling);
    settle_at_sim(&stack, "payment_intents", &id, true).await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&handle, true, None).await;
    let CheckoutOutcome::Completed { payment_intent_id } = outcome(&handle).await else {
        panic!("not completed");
    };
    assert_eq!(payment_intent_id, id);
    assert_eq!(intents_of(&stack, order).await.len(), 1);
    stack.record_history(&handle, "reset-while-settling").await;
    stack.stop().await;
}

/// What an attack on the settling found: on a busy account (more
/// PaymentIntents since the checkout began than the broker scans for a
/// list page) a debit that failed while settling could not be read as "not
/// charged" and stayed `settling` until `settle_within`. The reads now take
/// the PaymentIntent the charge named by its id.
#[tokio::test(flavor = "multi_thread")]
async fn a_debit_failing_on_a_busy_account_ends_failed() {
    let stack = Stack::spawn("settle-busy").await;
    let wf = unique("settle-busy");
    let (handle, id) = settling_debit(&stack, &wf, "order-settle-busy").await;
    super::crowd(&stack, 600).await;
    settle_at_sim(&stack, "payment_intents", &id, false).await;
    let (failed, ended) = ending(&handle).await;
    assert!(!failed && ended.contains("PaymentFailed"), "{ended}");
    stack.stop().await;
}
