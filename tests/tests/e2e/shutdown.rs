//! SIGTERM to the worker binary mid-charge: the attempt finishes, revokes its
//! key, and the worker exits cleanly.

use std::time::Duration;

use keylease_testkit::bins::binary;
use keylease_testkit::eventually;
use keylease_testkit::process::terminate;
use keylease_tests::stack::{Stack, WORKER_TOKEN, checkout, unique};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_the_running_charge_finish_and_revoke() {
    let stack = Stack::spawn("shutdown").await;
    // The stack's in-process worker polls the stack's queue; this binary polls its own.
    let queue = unique("shutdown-queue");
    let mut worker = Command::new(binary("keylease-worker"))
        .args(["run", "--shutdown-grace", "20s"])
        .env("TEMPORAL_ADDRESS", &stack.temporal.address)
        .env("KEYLEASE_TASK_QUEUE", &queue)
        .env("KEYLEASE_BROKER_URL", format!("http://{}", stack.broker))
        .env(
            "KEYLEASE_PROXY_URL",
            format!("http://{}/stripe", stack.broker),
        )
        .env("KEYLEASE_BROKER_TOKEN", WORKER_TOKEN)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    stack.fault(serde_json::json!({"method": "POST", "path": "/v1/payment_intents", "kind": "delay", "delay_ms": 3000})).await;
    let wf = unique("shutdown");
    stack
        .client
        .start_workflow(
            keylease_workflows::CheckoutWorkflow::run,
            checkout("order-shutdown", 1300, "pm_card_visa").into(),
            temporalio_client::WorkflowStartOptions::new(queue, wf.clone()).build(),
        )
        .await
        .unwrap();
    let key_id = eventually(
        Duration::from_secs(30),
        "the charge held by the delay",
        || async {
            let keys = stack.keys_of(&wf).await;
            keys.iter()
                .find(|k| k["status"] == "active")
                .and_then(|k| k["id"].as_str().map(str::to_owned))
        },
    )
    .await;

    let exit = terminate(&mut worker, Duration::from_secs(30))
        .await
        .expect("the worker stops");
    assert!(exit.success(), "a clean stop: {exit:?}");

    let key = stack.broker_get(&format!("/v1/keys/{key_id}")).await;
    assert_eq!(
        key["status"], "revoked",
        "the attempt revoked its key before the worker exited"
    );
    let intents = stack.sim_held("payment_intents").await;
    assert_eq!(intents.len(), 1, "the running charge finished");
    assert_eq!(intents[0]["status"], "succeeded");
    stack.stop().await;
}
