//! Issue 23: on a dev server started as the Temporal docs start one (no
//! `--search-attribute`), every checkout's first task used to fail for want
//! of `OrderId`, forever. The worker registers it at start and the checkout
//! completes.

use keylease_tests::stack::{Stack, test_policy, unique};
use keylease_tests::temporal::DedicatedDevServer;
use keylease_workflows::CheckoutOutcome;

use super::{client_at, settle, start_checkouts, worker_at};

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_on_a_plain_dev_server_registers_order_id_and_completes_a_checkout() {
    let temporal = tokio::task::spawn_blocking(DedicatedDevServer::spawn_plain)
        .await
        .expect("start a plain dev server");
    let stack = Stack::spawn("plain-namespace").await;
    let queue = unique("plain-namespace-queue");
    let client = client_at(&temporal.address, &queue).await;
    let worker = worker_at(&stack, &temporal.address, &queue);
    let prefix = unique("plain");
    let checkouts = start_checkouts(&client, &queue, &prefix, 1, &test_policy()).await;
    let outcomes = settle(&checkouts).await;
    assert!(
        matches!(outcomes[0], CheckoutOutcome::Completed { .. }),
        "{:?}",
        outcomes[0]
    );
    assert!(
        worker
            .log_text()
            .contains("registered the OrderId search attribute"),
        "{}",
        worker.log_text()
    );
    worker.stop().await;
    stack.stop().await;
}
