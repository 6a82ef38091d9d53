//! Workers tell apart in Temporal: by default `keylease-worker:<pid>@<host name>`
//! (every container's worker is pid 1, so the pid alone said `@1` three times),
//! and `TEMPORAL_WORKER_IDENTITY` names one outright.

use std::collections::BTreeSet;
use std::time::Duration;

use keylease_testkit::eventually;
use keylease_tests::process::WorkerProcess;
use keylease_tests::stack::{Stack, unique};
use temporalio_common::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeTaskQueueRequest;

/// `keylease-worker run` on `queue`, named `identity` or by default (its
/// environment is cleared, so no inherited identity leaks in).
fn worker(stack: &Stack, queue: &str, identity: Option<&str>) -> WorkerProcess {
    let broker = format!("http://{}", stack.broker);
    let env: Vec<(&str, &str)> = identity
        .map(|identity| ("TEMPORAL_WORKER_IDENTITY", identity))
        .into_iter()
        .collect();
    WorkerProcess::spawn(stack, queue, &broker, &env)
}

/// Identities of the workers polling `queue` for workflow tasks.
async fn pollers(stack: &Stack, queue: &str) -> BTreeSet<String> {
    let request = DescribeTaskQueueRequest {
        namespace: "default".to_owned(),
        task_queue: Some(TaskQueue {
            name: queue.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let response = stack
        .client
        .connection()
        .workflow_service()
        .describe_task_queue(tonic::Request::new(request))
        .await
        .expect("describe the task queue");
    response
        .into_inner()
        .pollers
        .into_iter()
        .map(|p| p.identity)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_show_their_host_and_pid_or_the_identity_they_are_given() {
    let stack = Stack::spawn("identity").await;
    let queue = unique("identity-queue");
    let named = unique("e2e-named-worker");
    let by_default = worker(&stack, &queue, None);
    let _named = worker(&stack, &queue, Some(&named));

    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let expected: BTreeSet<String> = [
        format!(
            "keylease-worker:{}@{host}",
            by_default.pid().expect("a pid")
        ),
        named,
    ]
    .into();
    let seen = eventually(Duration::from_secs(30), "both workers polling", || async {
        let seen = pollers(&stack, &queue).await;
        (seen.len() >= 2).then_some(seen)
    })
    .await;
    assert_eq!(seen, expected);
    stack.stop().await;
}
