//! What each PaymentIntent status means for a checkout: 3-D Secure charges
//! nothing and cancels the PaymentIntent; `processing` waits until it settles.

use std::time::Duration;

use keylease_testkit::eventually;
use keylease_tests::stack::{Stack, checkout, unique};
use keylease_workflows::{CheckoutOutcome, CheckoutStep, CheckoutWorkflow};
use temporalio_client::WorkflowQueryOptions;

use crate::checkout::{fulfil, outcome, wait_for_step};

#[tokio::test(flavor = "multi_thread")]
async fn a_3d_secure_card_fails_with_its_payment_intent_cancelled() {
    let stack = Stack::spawn("3ds").await;
    let wf = unique("3ds");
    let handle = stack
        .start(
            &wf,
            checkout("order-3ds", 1400, "pm_card_threeDSecure2Required"),
        )
        .await;
    let CheckoutOutcome::Failed {
        error_type,
        message,
    } = outcome(&handle).await
    else {
        panic!("an agent cannot complete 3-D Secure: the checkout fails");
    };
    assert_eq!(error_type, "AuthenticationRequired", "{message}");
    let intents = stack.sim_held("payment_intents").await;
    assert_eq!(intents.len(), 1);
    assert_eq!(
        intents[0]["status"], "canceled",
        "nothing left to authorize"
    );
    assert!(
        stack.sim_held("refunds").await.is_empty(),
        "nothing charged"
    );
    let keys = stack.keys_of(&wf).await;
    assert_eq!(keys.len(), 1, "not retried");
    assert_eq!(keys[0]["status"], "revoked");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_processing_payment_is_awaited_until_it_settles() {
    let stack = Stack::spawn("processing").await;
    let wf = unique("processing");
    let handle = stack
        .start(
            &wf,
            checkout("order-processing", 2700, "pm_usBankAccount_success"),
        )
        .await;
    let id = eventually(
        Duration::from_secs(20),
        "a processing PaymentIntent",
        || async {
            let intents = stack.sim_held("payment_intents").await;
            intents
                .iter()
                .find(|pi| pi["status"] == "processing")
                .and_then(|pi| pi["id"].as_str().map(str::to_owned))
        },
    )
    .await;
    let status = handle
        .query(
            CheckoutWorkflow::status,
            (),
            WorkflowQueryOptions::default(),
        )
        .await
        .expect("query");
    assert_eq!(
        status.step,
        CheckoutStep::Charging,
        "an unsettled debit is not a charge"
    );
    stack
        .sim_control(
            &format!("/_sim/payment_intents/{id}/settle"),
            serde_json::json!({}),
        )
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&handle, true, None).await;
    let CheckoutOutcome::Completed { payment_intent_id } = outcome(&handle).await else {
        panic!("not completed");
    };
    assert_eq!(payment_intent_id, id);
    stack.stop().await;
}
