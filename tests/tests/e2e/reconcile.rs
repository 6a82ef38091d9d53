//! A charge whose outcome is unknown is looked up in Stripe by `reconcile`,
//! with a read-only key, and the checkout goes on as charged.

use keylease_tests::stack::{Stack, checkout, unique};
use keylease_workflows::{CheckoutOutcome, CheckoutStep};

use crate::checkout::{fulfil, outcome, wait_for_step};

#[tokio::test(flavor = "multi_thread")]
async fn a_charge_whose_every_answer_was_lost_is_found_and_completes() {
    let stack = Stack::spawn("reconcile").await;
    // Every attempt's answer is lost after Stripe committed; search lags behind.
    stack.fault(serde_json::json!({"method": "POST", "path": "/v1/payment_intents", "kind": "drop_after_commit", "count": 10})).await;
    stack
        .sim_control(
            "/_sim/config",
            serde_json::json!({"search_indexing_delay_ms": 1500}),
        )
        .await;
    let wf = unique("reconcile");
    // One attempt: a retry would find its own lost PaymentIntent itself (the
    // order check); with none, only `reconcile` can.
    let mut input = checkout("order-reconcile", 2600, "pm_card_visa");
    if let Some(policy) = input.policy.as_mut() {
        policy.charge.retry.maximum_attempts = 1;
    }
    let handle = stack.start(&wf, input).await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&handle, true, None).await;
    let CheckoutOutcome::Completed { payment_intent_id } = outcome(&handle).await else {
        panic!("the reconciled charge completes");
    };
    stack.record_history(&handle, "reconciled").await;

    let intents = stack.sim_held("payment_intents").await;
    assert_eq!(intents.len(), 1, "exactly one PaymentIntent");
    assert_eq!(intents[0]["id"], payment_intent_id.as_str());
    assert_eq!(intents[0]["status"], "succeeded");
    let keys = stack.keys_of(&wf).await;
    let reconcile_keys: Vec<_> = keys
        .iter()
        .filter(|k| k["label"] == format!("temporal-{wf}-reconcile"))
        .collect();
    assert!(!reconcile_keys.is_empty(), "a key of its own");
    for key in reconcile_keys {
        assert_eq!(
            key["allowed_endpoints"],
            serde_json::json!([
                "GET /v1/payment_intents/search",
                "GET /v1/payment_intents",
                "GET /v1/payment_intents/*"
            ]),
            "read-only: the search, the list that confirms an empty one, the read of a refund"
        );
        assert_eq!(key["daily_usd_cap"], 0.0);
        assert_eq!(key["status"], "revoked");
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_final_failure_after_an_ambiguous_attempt_is_not_taken_for_nothing_charged() {
    let stack = Stack::spawn("ambiguous-final").await;
    // The only attempt's answer is lost after commit, and the policy gives up on it at once.
    stack.fault(serde_json::json!({"method": "POST", "path": "/v1/payment_intents", "kind": "drop_after_commit"})).await;
    let wf = unique("ambiguous-final");
    let mut input = checkout("order-ambiguous-final", 1900, "pm_card_visa");
    let policy = input.policy.as_mut().expect("the test policy");
    policy
        .charge
        .retry
        .non_retryable_error_types
        .push("StripeUnavailable".to_owned());
    let handle = stack.start(&wf, input).await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&handle, true, None).await;
    let CheckoutOutcome::Completed { payment_intent_id } = outcome(&handle).await else {
        panic!("the money moved: the checkout must go on as charged, not Failed");
    };
    let intents = stack.sim_held("payment_intents").await;
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0]["id"], payment_intent_id.as_str());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_before_anything_was_sent_fails_without_reconciling() {
    let stack = Stack::spawn("not-sent").await;
    let wf = unique("not-sent");
    let mut input = checkout("order-not-sent", 5000, "pm_card_visa");
    input.max_spend_usd = Some(10.0);
    let handle = stack.start(&wf, input).await;
    let CheckoutOutcome::Failed { error_type, .. } = outcome(&handle).await else {
        panic!("not failed");
    };
    assert_eq!(error_type, "SpendCapExceeded");
    let keys = stack.keys_of(&wf).await;
    assert!(
        !keys.is_empty()
            && keys
                .iter()
                .all(|k| k["label"] == format!("temporal-{wf}-charge")),
        "the first attempt sent nothing: no reconcile"
    );
    stack.stop().await;
}
