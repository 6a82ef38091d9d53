//! Checkouts through the whole stack: charge, fulfilment, refund, and the ways a charge fails.

use std::time::Duration;

use keylease_testkit::eventually;
use keylease_tests::stack::{
    STRIPE_SECRET, Stack, checkout, signal_fulfilment, test_policy, unique,
};
use keylease_workflows::{CheckoutOutcome, CheckoutStep, CheckoutWorkflow};
use serde_json::Value;
use temporalio_client::{WorkflowGetResultOptions, WorkflowQueryOptions};

pub(crate) async fn wait_for_step(
    handle: &keylease_tests::stack::CheckoutHandle,
    step: CheckoutStep,
) {
    eventually(Duration::from_secs(30), "checkout step", || async {
        let status = handle
            .query(
                CheckoutWorkflow::status,
                (),
                WorkflowQueryOptions::default(),
            )
            .await
            .ok()?;
        (status.step == step).then_some(())
    })
    .await;
}

pub(crate) async fn fulfil(
    handle: &keylease_tests::stack::CheckoutHandle,
    ok: bool,
    reason: Option<&str>,
) {
    signal_fulfilment(handle, ok, reason).await.expect("signal");
}

pub(crate) async fn outcome(handle: &keylease_tests::stack::CheckoutHandle) -> CheckoutOutcome {
    handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("checkout result")
}

fn labels(keys: &[Value]) -> Vec<&str> {
    keys.iter()
        .map(|k| k["label"].as_str().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fulfilled_checkout_charges_once_with_one_revoked_key() {
    let stack = Stack::spawn("happy").await;
    let wf = unique("happy");
    let handle = stack
        .start(&wf, checkout("order-happy", 4200, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&handle, true, None).await;
    let CheckoutOutcome::Completed { payment_intent_id } = outcome(&handle).await else {
        panic!("not completed");
    };
    stack.record_history(&handle, "completed").await;

    let intents = stack.sim_held("payment_intents").await;
    assert_eq!(intents.len(), 1, "exactly one PaymentIntent");
    assert_eq!(intents[0]["id"], payment_intent_id.as_str());
    assert_eq!(intents[0]["amount"], 4200);
    assert_eq!(intents[0]["status"], "succeeded");
    assert_eq!(intents[0]["metadata"]["workflow_id"], wf.as_str());

    let requests = stack.sim_writes().await;
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0]["headers"]["authorization"],
        format!("Bearer {STRIPE_SECRET}")
    );
    // The broker namespaces the key by its role and label; inside it, the
    // checkout (its first run id).
    let run_id = stack.keys_of(&wf).await[0]["metadata"]["run_id"]
        .as_str()
        .expect("the run the key was issued for")
        .to_owned();
    assert_eq!(
        requests[0]["headers"]["idempotency-key"],
        keylease_broker::routes::proxy::namespaced_idempotency_key(
            &format!("keylease-worker temporal-{wf}-charge"),
            &format!("keylease:charge:c:{run_id}:{wf}:charge:order-happy")
        )
    );
    assert!(
        !requests[0].to_string().contains("vk_"),
        "no vault token reaches Stripe"
    );
    // The charge pins its API version and confirms as Stripe accepts it without a return_url.
    assert_eq!(
        requests[0]["headers"]["stripe-version"],
        keylease_activities::stripe_client::STRIPE_API_VERSION
    );
    let body = requests[0]["body"].as_str().unwrap_or_default();
    assert!(
        body.contains("automatic_payment_methods%5Ballow_redirects%5D=never"),
        "{body}"
    );

    let keys = stack.keys_of(&wf).await;
    assert_eq!(labels(&keys), [format!("temporal-{wf}-charge")]);
    let key = &keys[0];
    assert_eq!(key["status"], "revoked");
    let ttl = Stack::key_ttl_seconds(key);
    let expected = test_policy().charge.schedule_to_close.as_secs_f64() * 1.2;
    assert!(
        (ttl - expected).abs() <= 1.0,
        "ttl {ttl} s, expected {expected} s"
    );
    // The charge's own endpoints, and the reads of the order's
    // PaymentIntents it makes first, which the key sees by their metadata.
    let mut endpoints = keylease_activities::charge::CHARGE_ENDPOINTS.to_vec();
    endpoints.extend([
        keylease_activities::reconcile::SEARCH_ENDPOINT,
        keylease_activities::reconcile::LIST_ENDPOINT,
    ]);
    assert_eq!(key["allowed_endpoints"], serde_json::json!(endpoints));
    assert_eq!(
        key["allowed_metadata"],
        serde_json::json!({"order_id": "order-happy"})
    );
    assert_eq!(
        intents[0]["metadata"]["checkout_id"],
        run_id.as_str(),
        "what reconcile searches by"
    );
    assert_eq!(
        key["daily_usd_cap"], 42.0,
        "a USD charge's key can move this charge and no more"
    );
    assert_eq!(key["metadata"]["attempt"], "1");
    assert_eq!(key["metadata"]["workflow_id"], wf.as_str());
    assert_eq!(key["metadata"]["activity_id"], "charge");
    assert_eq!(key["metadata"]["namespace"], "default");
    assert!(
        key["metadata"]["run_id"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stripe_500_is_retried_with_a_fresh_key_and_charges_once() {
    let stack = Stack::spawn("retry").await;
    stack.fault(serde_json::json!({"method": "POST", "path": "/v1/payment_intents", "kind": "status", "status": 500})).await;
    let wf = unique("retry");
    let handle = stack
        .start(&wf, checkout("order-retry", 1500, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&handle, true, None).await;
    assert!(matches!(
        outcome(&handle).await,
        CheckoutOutcome::Completed { .. }
    ));

    let keys = stack.keys_of(&wf).await;
    let charge_label = format!("temporal-{wf}-charge");
    assert_eq!(
        labels(&keys),
        [charge_label.as_str(), charge_label.as_str()],
        "one key per attempt"
    );
    assert_ne!(keys[0]["id"], keys[1]["id"]);
    assert!(keys.iter().all(|k| k["status"] == "revoked"), "{keys:?}");
    let mut attempts: Vec<&str> = keys
        .iter()
        .map(|k| k["metadata"]["attempt"].as_str().unwrap_or_default())
        .collect();
    attempts.sort_unstable();
    assert_eq!(attempts, ["1", "2"]);
    assert_eq!(stack.sim_held("payment_intents").await.len(), 1);
    let requests = stack.sim_writes().await;
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0]["headers"]["idempotency-key"],
        requests[1]["headers"]["idempotency-key"]
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_lost_after_commit_is_retried_into_the_same_payment_intent() {
    let stack = Stack::spawn("ambiguous").await;
    stack.fault(serde_json::json!({"method": "POST", "path": "/v1/payment_intents", "kind": "drop_after_commit"})).await;
    let wf = unique("ambiguous");
    let handle = stack
        .start(&wf, checkout("order-ambiguous", 2500, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&handle, true, None).await;
    let CheckoutOutcome::Completed { payment_intent_id } = outcome(&handle).await else {
        panic!("not completed")
    };

    let intents = stack.sim_held("payment_intents").await;
    assert_eq!(intents.len(), 1, "exactly one PaymentIntent exists");
    assert_eq!(
        intents[0]["id"],
        payment_intent_id.as_str(),
        "the retry got the committed one back"
    );
    assert_eq!(stack.keys_of(&wf).await.len(), 2);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_fulfilment_refunds_with_a_refund_only_key() {
    let stack = Stack::spawn("compensate").await;
    let wf = unique("compensate");
    let handle = stack
        .start(&wf, checkout("order-comp", 3100, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&handle, false, Some("out of stock")).await;
    let CheckoutOutcome::Compensated {
        payment_intent_id,
        refund_id,
        reason,
    } = outcome(&handle).await
    else {
        panic!("not compensated");
    };
    assert_eq!(reason, "out of stock");
    stack.record_history(&handle, "compensated").await;

    let refunds = stack.sim_held("refunds").await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["id"], refund_id.as_str());
    assert_eq!(refunds[0]["payment_intent"], payment_intent_id.as_str());
    assert_eq!(refunds[0]["amount"], 3100, "a full refund");

    let keys = stack.keys_of(&wf).await;
    let refund_key = keys
        .iter()
        .find(|k| k["label"] == format!("temporal-{wf}-refund"))
        .expect("a refund key");
    assert_eq!(
        refund_key["allowed_endpoints"],
        serde_json::json!(["POST /v1/refunds"])
    );
    assert_eq!(refund_key["daily_usd_cap"], 0.0);
    assert_eq!(
        refund_key["allowed_objects"],
        serde_json::json!([payment_intent_id]),
        "the refund key reaches the one PaymentIntent it refunds"
    );
    assert_eq!(keys.len(), 2, "{:?}", labels(&keys));
    assert!(keys.iter().all(|k| k["status"] == "revoked"));
    let status = handle
        .query(
            CheckoutWorkflow::status,
            (),
            WorkflowQueryOptions::default(),
        )
        .await
        .expect("query");
    assert_eq!(
        (status.step, status.refund_id.as_deref()),
        (CheckoutStep::Compensated, Some(refund_id.as_str()))
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_card_fails_after_one_attempt_with_nothing_to_refund() {
    let stack = Stack::spawn("decline").await;
    let wf = unique("decline");
    let handle = stack
        .start(
            &wf,
            checkout("order-decline", 900, "pm_card_chargeDeclined"),
        )
        .await;
    let CheckoutOutcome::Failed {
        error_type,
        message,
    } = outcome(&handle).await
    else {
        panic!("not failed")
    };
    assert_eq!(error_type, "CardDeclined", "{message}");
    stack.record_history(&handle, "declined").await;

    let keys = stack.keys_of(&wf).await;
    assert_eq!(keys.len(), 1, "not retried");
    assert_eq!(keys[0]["status"], "revoked");
    assert!(stack.sim_held("refunds").await.is_empty());
    let history = stack.history_text(&handle).await;
    assert!(
        history.contains(r#""decline_code":"generic_decline""#),
        "the decline code is in the failure details"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cap_below_the_amount_fails_without_charging() {
    let stack = Stack::spawn("cap").await;
    let wf = unique("cap");
    let mut input = checkout("order-cap", 5000, "pm_card_visa");
    input.max_spend_usd = Some(10.0);
    let handle = stack.start(&wf, input).await;
    let CheckoutOutcome::Failed { error_type, .. } = outcome(&handle).await else {
        panic!("not failed")
    };
    assert_eq!(error_type, "SpendCapExceeded");
    assert!(
        stack.sim_held("payment_intents").await.is_empty(),
        "nothing reached Stripe"
    );
    assert!(
        stack.sim_writes().await.is_empty(),
        "no write reached Stripe"
    );
    let keys = stack.keys_of(&wf).await;
    assert_eq!(keys.len(), 1, "not retried");
    assert_eq!(keys[0]["daily_usd_cap"], 10.0);
    assert_eq!(keys[0]["status"], "revoked");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refund_stripe_refuses_fails_the_checkout_for_an_operator() {
    let stack = Stack::spawn("compfail").await;
    stack.fault(serde_json::json!({"method": "POST", "path": "/v1/refunds", "kind": "status", "status": 400})).await;
    let wf = unique("compfail");
    let handle = stack
        .start(&wf, checkout("order-compfail", 1600, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&handle, false, Some("cancelled by customer")).await;
    let result = handle.get_result(WorkflowGetResultOptions::default()).await;
    let error = format!("{result:?}");
    assert!(
        result.is_err() && error.contains("CompensationFailed"),
        "{error}"
    );
    stack.record_history(&handle, "compensation-refused").await;
    assert!(stack.sim_held("refunds").await.is_empty());
    stack.stop().await;
}
