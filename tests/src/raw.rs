//! A workflow of another team's, as a caller in any SDK would write it: it
//! schedules one of Keylease's activities by name with whatever JSON it was
//! given, once, and returns how that went. The bad-input table sends
//! malformed activity inputs through it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_common::ActivityDefinition;
use temporalio_common::RetryPolicy;
use temporalio_common::error::IncomingError;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityCloseTimeouts, ActivityExecutionError, ActivityOptions, Runtime, Worker, WorkerOptions,
    WorkflowContext, WorkflowResult,
};

use crate::Stack;
use crate::stack::unique;

/// Input of [`RawActivityWorkflow`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawActivityInput {
    /// `charge`, `refund` or `reconcile`.
    pub activity: String,
    /// Its input, as sent.
    pub payload: Value,
    /// Keylease's task queue.
    pub task_queue: String,
}

/// How the activity ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RawOutcome {
    /// It succeeded with this output.
    Succeeded(Value),
    /// It failed: the failure's type (empty when it is not an application failure),
    /// whether it may be retried, and its message.
    Failed {
        /// `ApplicationFailure.type`.
        error_type: String,
        /// `ApplicationFailure.non_retryable`.
        non_retryable: bool,
        /// The failure's message.
        message: String,
    },
}

/// Schedules an activity by name with raw JSON.
struct Named(String);

impl ActivityDefinition for Named {
    type Input = Value;
    type Output = Value;

    fn name(&self) -> &str {
        &self.0
    }
}

/// Schedules the named activity with the raw payload, one attempt, and returns how it ended.
#[workflow]
#[derive(Default)]
pub struct RawActivityWorkflow;

// Each `allow(missing_docs)` is copied by the macro onto the constant it generates.
#[workflow_methods]
impl RawActivityWorkflow {
    /// Runs the activity once.
    #[allow(missing_docs)]
    #[run(name = "raw-activity")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: RawActivityInput,
    ) -> WorkflowResult<RawOutcome> {
        let options =
            ActivityOptions::with_close_timeouts(ActivityCloseTimeouts::ScheduleAndStartToClose {
                schedule_to_close: Duration::from_secs(30),
                start_to_close: Duration::from_secs(15),
            })
            .activity_id(input.activity.clone())
            .task_queue(input.task_queue)
            .retry_policy(RetryPolicy::builder().maximum_attempts(1).build())
            .build();
        let result = ctx
            .execute_activity(Named(input.activity), input.payload, options)
            .await;
        Ok(match result {
            Ok(output) => RawOutcome::Succeeded(output),
            Err(err @ ActivityExecutionError::Failed(_)) => match err.cause() {
                Some(IncomingError::Application(app)) => RawOutcome::Failed {
                    error_type: app.type_name().unwrap_or_default().to_owned(),
                    non_retryable: app.is_non_retryable(),
                    message: app.source_error().to_string(),
                },
                Some(other) => RawOutcome::Failed {
                    error_type: String::new(),
                    non_retryable: false,
                    message: other.to_string(),
                },
                None => RawOutcome::Failed {
                    error_type: String::new(),
                    non_retryable: false,
                    message: err.to_string(),
                },
            },
            Err(other) => RawOutcome::Failed {
                error_type: String::new(),
                non_retryable: false,
                message: other.to_string(),
            },
        })
    }
}

/// A worker for [`RawActivityWorkflow`] on its own queue, on its own thread.
pub struct RawWorker {
    /// The queue it polls.
    pub task_queue: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RawWorker {
    /// Starts one against the stack's dev server.
    pub fn spawn(stack: &Stack) -> Self {
        let task_queue = unique("raw-queue");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let args = crate::stack::temporal_args(&stack.temporal.address, &task_queue);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                let client = keylease_worker::connect::temporal_client(&args)
                    .await
                    .expect("client");
                let sdk = Runtime::from_current_tokio(Default::default()).expect("sdk runtime");
                let options = WorkerOptions::new(args.task_queue.clone())
                    .register_workflow::<RawActivityWorkflow>()
                    .expect("register")
                    .build();
                let mut worker = Worker::new(&sdk, client, options).expect("worker");
                let shutdown = worker.shutdown_handle();
                tokio::task::spawn_local(async move {
                    stopped.await.ok();
                    shutdown();
                });
                worker.run().await.expect("raw worker");
            });
        });
        Self {
            task_queue,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Runs `activity` with `payload` on the stack's queue under `workflow_id`.
    pub async fn run(
        &self,
        stack: &Stack,
        workflow_id: &str,
        activity: &str,
        payload: Value,
    ) -> RawOutcome {
        let input = RawActivityInput {
            activity: activity.to_owned(),
            payload,
            task_queue: stack.task_queue.clone(),
        };
        let handle = stack
            .client
            .start_workflow(
                RawActivityWorkflow::run,
                input,
                WorkflowStartOptions::new(self.task_queue.clone(), workflow_id.to_owned()).build(),
            )
            .await
            .expect("start the raw workflow");
        handle
            .get_result(WorkflowGetResultOptions::default())
            .await
            .expect("the raw workflow's result")
    }

    /// Stops the worker and waits for its thread.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .expect("join")
                .expect("raw worker thread");
        }
    }
}
