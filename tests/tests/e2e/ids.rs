//! Ids as callers write them: non-ASCII, with a tab. Idempotency keys and
//! labels stay printable ASCII, and every checkout can be found by `OrderId`.

use std::time::Duration;

use keylease_testkit::eventually;
use keylease_tests::stack::{Stack, checkout, unique};
use keylease_workflows::{CheckoutOutcome, CheckoutStep};
use temporalio_client::WorkflowCountOptions;

use crate::checkout::{fulfil, outcome, wait_for_step};

#[tokio::test(flavor = "multi_thread")]
async fn non_ascii_and_tabbed_ids_charge_with_printable_keys() {
    let stack = Stack::spawn("ids").await;
    let cases = [
        (unique("ordé-wf"), "ordé-1"),
        (unique("订单\twf"), "订单-7"),
    ];
    for (wf, order) in &cases {
        let handle = stack.start(wf, checkout(order, 1000, "pm_card_visa")).await;
        wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
        fulfil(&handle, true, None).await;
        assert!(
            matches!(outcome(&handle).await, CheckoutOutcome::Completed { .. }),
            "{wf:?}"
        );
    }
    let requests = stack.sim_writes().await;
    assert_eq!(requests.len(), cases.len(), "one create each, no retries");
    for request in &requests {
        let key = request["headers"]["idempotency-key"]
            .as_str()
            .expect("an idempotency key");
        assert!(key.bytes().all(|b| b.is_ascii_graphic()), "{key:?}");
    }
    let intents = stack.sim_held("payment_intents").await;
    let orders: Vec<&str> = intents
        .iter()
        .map(|pi| pi["metadata"]["order_id"].as_str().unwrap_or_default())
        .collect();
    for (_, order) in &cases {
        assert!(
            orders.contains(order),
            "metadata keeps {order} as it is: {orders:?}"
        );
    }
    // An order id no search query can quote is found by its digest: a
    // second checkout of it is refused.
    assert!(
        intents.iter().all(|pi| pi["metadata"]["order_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("sha256-"))),
        "{intents:?}"
    );
    let again = stack
        .start(
            &unique("ordé-again"),
            checkout("ordé-1", 1000, "pm_card_visa"),
        )
        .await;
    match outcome(&again).await {
        CheckoutOutcome::Failed { error_type, .. } => assert_eq!(error_type, "DuplicateOrder"),
        other => panic!("a paid order is not charged again: {other:?}"),
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkout_is_found_by_its_order_id() {
    let stack = Stack::spawn("orderid").await;
    let order = unique("o");
    let handle = stack
        .start(&unique("orderid"), checkout(&order, 600, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    let query = format!("OrderId=\"{order}\"");
    eventually(
        Duration::from_secs(20),
        "the checkout by OrderId",
        || async {
            let count = stack
                .client
                .count_workflows(query.clone(), WorkflowCountOptions::default())
                .await
                .ok()?;
            (count.count() == 1).then_some(())
        },
    )
    .await;
    let (listed, text) = stack.temporal_cli(&["workflow", "list", "--query", &query]);
    assert!(listed && text.contains("checkout"), "{text}");
    fulfil(&handle, true, None).await;
    outcome(&handle).await;
    stack.stop().await;
}
