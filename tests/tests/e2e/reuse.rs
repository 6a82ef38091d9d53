//! A workflow id used again: a new checkout is a new charge, never an
//! earlier checkout's PaymentIntent; the CLI refuses to reuse the id of a
//! checkout that took money.

use std::time::Duration;

use keylease_tests::stack::{Stack, checkout, unique};
use keylease_worker::WorkerError;
use keylease_worker::start::{CheckoutArgs, checkout as checkout_command};
use keylease_workflows::{CheckoutOutcome, CheckoutStep};

use crate::checkout::{fulfil, outcome, wait_for_step};

#[tokio::test(flavor = "multi_thread")]
async fn a_new_checkout_under_a_compensated_id_charges_anew() {
    let stack = Stack::spawn("reuse").await;
    let wf = unique("reuse");
    let first = stack
        .start(&wf, checkout("order-reuse", 1700, "pm_card_visa"))
        .await;
    wait_for_step(&first, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&first, false, Some("out of stock")).await;
    let CheckoutOutcome::Compensated {
        payment_intent_id: refunded,
        ..
    } = outcome(&first).await
    else {
        panic!("not compensated");
    };

    // Started directly (the CLI would refuse): the same order, the same workflow id.
    let second = stack
        .start(&wf, checkout("order-reuse", 1700, "pm_card_visa"))
        .await;
    wait_for_step(&second, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&second, true, None).await;
    let CheckoutOutcome::Completed { payment_intent_id } = outcome(&second).await else {
        panic!("not completed");
    };
    assert_ne!(
        payment_intent_id, refunded,
        "the second checkout must not complete on the refunded PaymentIntent"
    );
    let intents = stack.sim_held("payment_intents").await;
    assert_eq!(intents.len(), 2);
    let refunds = stack.sim_held("refunds").await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["payment_intent"], refunded.as_str());

    let refused = checkout_command(CheckoutArgs {
        temporal: keylease_tests::stack::temporal_args(&stack.temporal.address, &stack.task_queue),
        order_id: "order-reuse".to_owned(),
        amount: 1700,
        currency: "usd".to_owned(),
        payment_method: "pm_card_visa".to_owned(),
        customer: None,
        max_spend_usd: None,
        fulfilment_timeout: Duration::from_secs(60),
        workflow_id: Some(wf.clone()),
        wait: false,
        policy: Default::default(),
    })
    .await;
    match refused {
        Err(WorkerError::Refused(why)) => {
            assert!(why.contains(&payment_intent_id), "{why}")
        }
        other => panic!("the CLI must refuse a completed checkout's id: {other:?}"),
    }
    assert_eq!(stack.sim_held("payment_intents").await.len(), 2);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_decline_a_new_card_under_the_same_id_is_charged() {
    let stack = Stack::spawn("redecline").await;
    let wf = unique("redecline");
    let declined = stack
        .start(
            &wf,
            checkout("order-redecline", 800, "pm_card_chargeDeclined"),
        )
        .await;
    assert!(matches!(
        outcome(&declined).await,
        CheckoutOutcome::Failed { .. }
    ));
    let retried = stack
        .start(&wf, checkout("order-redecline", 800, "pm_card_visa"))
        .await;
    wait_for_step(&retried, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&retried, true, None).await;
    let CheckoutOutcome::Completed { payment_intent_id } = outcome(&retried).await else {
        panic!("the new card must be charged, not refused as an idempotency conflict");
    };
    let intents = stack.sim_held("payment_intents").await;
    let charged = intents
        .iter()
        .find(|pi| pi["id"] == payment_intent_id.as_str())
        .expect("the PaymentIntent charged");
    assert_eq!(charged["status"], "succeeded");
    stack.stop().await;
}
