//! A workflow that is not ours schedules `charge` by name on our task queue,
//! telling it schedule_to_close by header only, or by input field only.

use std::time::Duration;

use keylease_testkit::eventually;
use keylease_tests::stack::{Stack, unique};
use keylease_workflows::{Charge, ChargeInput, ChargeOutput, ScheduleToCloseHeader};
use serde::{Deserialize, Serialize};
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityCloseTimeouts, ActivityOptions, Runtime, Worker, WorkerOptions, WorkflowContext,
    WorkflowResult,
};

/// Input of the foreign workflow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForeignInput {
    charge: ChargeInput,
    keylease_task_queue: String,
    schedule_to_close_ms: u64,
    start_to_close_ms: u64,
}

/// Another team's workflow: one `charge` on Keylease's task queue.
#[workflow]
#[derive(Default)]
pub struct ForeignCheckout;

// Each `allow(missing_docs)` is copied by the macro onto the constant it generates.
#[workflow_methods]
impl ForeignCheckout {
    /// Charges once, with the given timeouts.
    #[allow(missing_docs)]
    #[run(name = "foreign-checkout")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: ForeignInput,
    ) -> WorkflowResult<ChargeOutput> {
        let options =
            ActivityOptions::with_close_timeouts(ActivityCloseTimeouts::ScheduleAndStartToClose {
                schedule_to_close: Duration::from_millis(input.schedule_to_close_ms),
                start_to_close: Duration::from_millis(input.start_to_close_ms),
            })
            .activity_id("charge".to_owned())
            .task_queue(input.keylease_task_queue)
            .retry_policy(RetryPolicy::builder().maximum_attempts(1).build())
            .build();
        Ok(ctx.execute_activity(Charge, input.charge, options).await?)
    }
}

/// Runs a worker for `ForeignCheckout` on `task_queue` until `stopped`.
fn foreign_worker(
    address: String,
    task_queue: String,
    with_header: bool,
    stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let args = keylease_tests::stack::temporal_args(&address, &task_queue);
        let client = keylease_worker::connect::temporal_client(&args)
            .await
            .expect("client");
        let sdk = Runtime::from_current_tokio(Default::default()).expect("sdk runtime");
        let mut options = WorkerOptions::new(args.task_queue.clone())
            .register_workflow::<ForeignCheckout>()
            .expect("register");
        if with_header {
            options = options.workflow_interceptor(ScheduleToCloseHeader::constructor());
        }
        let mut worker = Worker::new(&sdk, client, options.build()).expect("worker");
        let stop = worker.shutdown_handle();
        tokio::task::spawn_local(async move {
            stopped.await.ok();
            stop();
        });
        worker.run().await.expect("foreign worker");
    });
}

/// Runs one foreign checkout and returns the TTL, in seconds, of the key it got.
async fn ttl_for(
    stack: &Stack,
    with_header: bool,
    input_schedule_to_close_ms: Option<u64>,
    schedule_to_close_ms: u64,
) -> i64 {
    let foreign_queue = unique("foreign-queue");
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let address = stack.temporal.address.clone();
    let queue = foreign_queue.clone();
    let thread = std::thread::spawn(move || foreign_worker(address, queue, with_header, stopped));

    let wf = unique("foreign");
    let input = ForeignInput {
        charge: ChargeInput {
            order_id: format!("order-{wf}"),
            amount: 700,
            currency: "usd".to_owned(),
            payment_method: "pm_card_visa".to_owned(),
            customer: None,
            description: None,
            metadata: Default::default(),
            max_spend_usd: None,
            capture: Default::default(),
            schedule_to_close_ms: input_schedule_to_close_ms,
            checkout_id: None,
            order_paid_since_ms: None,
        },
        keylease_task_queue: stack.task_queue.clone(),
        schedule_to_close_ms,
        start_to_close_ms: 10_000,
    };
    let handle = stack
        .client
        .start_workflow(
            ForeignCheckout::run,
            input,
            WorkflowStartOptions::new(foreign_queue, wf.clone()).build(),
        )
        .await
        .expect("start foreign workflow");
    let charged = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("foreign result");
    let key = eventually(
        Duration::from_secs(10),
        "the foreign charge's key",
        || async {
            stack
                .keys_of(&wf)
                .await
                .into_iter()
                .find(|k| k["id"] == charged.key_id.as_str())
        },
    )
    .await;
    assert_eq!(key["label"], format!("temporal-{wf}-charge"));
    let _ = stop.send(());
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .expect("join")
        .expect("foreign worker thread");
    Stack::key_ttl_seconds(&key) as i64
}

#[tokio::test(flavor = "multi_thread")]
async fn other_workflows_set_the_ttl_by_header_or_by_input() {
    let stack = Stack::spawn("foreign").await;
    // Header only: schedule_to_close 50 s → 60 s.
    assert_eq!(ttl_for(&stack, true, None, 50_000).await, 60);
    // Input only: 45 s → 54 s. Without it the attempt's 10 s deadline would give about 12 s.
    assert_eq!(ttl_for(&stack, false, Some(45_000), 45_000).await, 54);
    stack.stop().await;
}
