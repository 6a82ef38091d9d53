//! Finding 1, at the length the issue names: the broker down for ten
//! minutes while a checkout refunds. The compensation goes round (at most
//! 30 s apart, the shortest cap a policy may set, which the test policy
//! uses) and ends `Compensated`, with one refund, once the broker is back.

use std::time::Duration;

use keylease_testkit::BrokerProcess;
use keylease_tests::process::{WorkerProcess, broker_settings};
use keylease_tests::stack::{Stack, checkout, unique};
use keylease_workflows::{CheckoutOutcome, CheckoutStep, CheckoutWorkflow};
use temporalio_client::{WorkflowGetResultOptions, WorkflowQueryOptions};

use crate::checkout::{fulfil, wait_for_step};

/// How long the broker stays down.
const OUTAGE: Duration = Duration::from_secs(10 * 60);

#[tokio::test(flavor = "multi_thread")]
async fn a_ten_minute_broker_outage_during_compensation_ends_compensated() {
    let stack = Stack::spawn("broker-outage").await;
    let db = tempfile::tempdir().expect("temp dir");
    let mut broker = BrokerProcess::spawn(
        broker_settings(),
        stack.sim,
        &format!("sqlite://{}/broker.db", db.path().display()),
    )
    .await;
    keylease_tests::stack::with_worker_role(&broker.base()).await;
    let queue = unique("broker-outage-queue");
    let broker_url = format!("http://{}", broker.addr);
    let worker = WorkerProcess::spawn_at(
        &stack.temporal.address,
        &queue,
        &broker_url,
        &format!("{broker_url}/stripe"),
        &[],
    );
    let wf = unique("broker-outage");
    stack
        .client
        .start_workflow(
            CheckoutWorkflow::run,
            checkout("order-broker-outage", 2300, "pm_card_visa").into(),
            temporalio_client::WorkflowStartOptions::new(queue.clone(), wf.clone()).build(),
        )
        .await
        .expect("start");
    let handle = stack.client.get_workflow_handle::<CheckoutWorkflow>(&wf);
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;

    broker.kill().await;
    fulfil(&handle, false, Some("out of stock")).await;
    tokio::time::sleep(OUTAGE).await;
    let status = handle
        .query(
            CheckoutWorkflow::status,
            (),
            WorkflowQueryOptions::default(),
        )
        .await
        .expect("status");
    assert_eq!(status.step, CheckoutStep::Refunding, "{status:?}");
    assert!(
        status.refund_rounds >= 10,
        "rounds all along the outage: {status:?}"
    );
    let last_error = status.refund_last_error.unwrap_or_default();
    assert!(last_error.contains("BrokerUnavailable"), "{last_error}");

    broker.restart().await;
    let ended = tokio::time::timeout(
        Duration::from_secs(90),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .expect("compensated within a round of the broker's return")
    .expect("a result");
    let CheckoutOutcome::Compensated { refund_id, .. } = ended else {
        panic!("not compensated: {ended:?}");
    };
    let refunds = stack.sim_held("refunds").await;
    assert_eq!(refunds.len(), 1, "one refund, however many rounds");
    assert_eq!(refunds[0]["id"], refund_id.as_str());
    worker.stop().await;
    stack.stop().await;
}
