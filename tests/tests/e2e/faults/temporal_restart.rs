//! The Temporal server stopped while charges are inside Stripe calls, then
//! started again on its database file: every workflow completes, on the
//! same worker process, which reconnects by itself.

use keylease_tests::stack::{Stack, unique};
use keylease_tests::temporal::DedicatedDevServer;
use serde_json::json;

use super::{
    active_keys, assert_money, assert_no_tokens, charges_held, client_at, histories,
    patient_policy, settle, start_checkouts, sweep_apply, worker_at,
};

#[tokio::test(flavor = "multi_thread")]
async fn the_temporal_server_restarted_on_its_database_mid_load_loses_no_checkout() {
    const N: usize = 10;
    // Its own server: stopping the shared one would disturb every other test.
    let mut temporal = tokio::task::spawn_blocking(DedicatedDevServer::spawn)
        .await
        .expect("start a dedicated dev server");
    let stack = Stack::spawn("temporal-restart").await;
    let queue = unique("temporal-restart-queue");
    let client = client_at(&temporal.address, &queue).await;
    // Every first create waits 3 s inside stripe-sim: the charges finish
    // while the server is away, and their results wait for it.
    stack
        .fault(json!({"method": "POST", "path": "/v1/payment_intents", "kind": "delay", "delay_ms": 3000, "count": N}))
        .await;
    let worker = worker_at(&stack, &temporal.address, &queue);
    let prefix = unique("temporal-restart");
    let checkouts = start_checkouts(&client, &queue, &prefix, N, &patient_policy()).await;
    charges_held(&stack, N).await;

    let temporal = tokio::task::spawn_blocking(move || {
        temporal.stop();
        assert!(
            std::net::TcpStream::connect(&temporal.address).is_err(),
            "the dev server is down"
        );
        temporal.start();
        temporal
    })
    .await
    .expect("restart the dev server");

    let outcomes = settle(&checkouts).await;
    assert_money(&stack, &prefix, &outcomes).await;
    let left = active_keys(&stack, stack.broker, &prefix).await;
    assert_eq!(
        sweep_apply(&temporal.address, stack.broker, &queue).await,
        left,
        "the sweep revokes exactly the keys left active"
    );
    assert_eq!(active_keys(&stack, stack.broker, &prefix).await, 0);

    let mut texts = histories(&stack, &checkouts).await;
    texts.push(worker.log_text());
    worker.stop().await;
    assert_no_tokens(&texts);
    stack.stop().await;
    tokio::task::spawn_blocking(move || drop(temporal))
        .await
        .expect("stop the dedicated dev server");
}
