//! `keylease-worker run`: poll the task queue until asked to stop.

use std::future::Future;
use std::time::Duration;

use keylease_activities::{BrokerClient, PaymentActivities, StripeClient};
use keylease_workflows::{CheckoutWorkflow, ScheduleToCloseHeader};
use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

use crate::config::WorkerConfig;
use crate::connect::temporal_client;
use crate::error::WorkerError;

/// Timeout of one call to the broker or through its proxy.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Workflow tasks run at once; workflow code is cheap, activities are the bound that matters.
const WORKFLOW_SLOTS: usize = 100;

/// The payment activities of `config`, with their HTTP clients.
pub fn payment_activities(config: &WorkerConfig) -> Result<PaymentActivities, WorkerError> {
    let broker = BrokerClient::new(
        config.broker_url.clone(),
        config.broker_token.clone(),
        HTTP_TIMEOUT,
    )
    .map_err(|err| WorkerError::Config(format!("broker client: {err}")))?;
    let stripe = StripeClient::new(config.proxy_url.clone(), HTTP_TIMEOUT)
        .map_err(|err| WorkerError::Config(format!("proxy client: {err}")))?;
    Ok(PaymentActivities::new(
        broker,
        stripe,
        config.broker_max_ttl,
        config.revoke_budget,
    ))
}

/// Connects to Temporal and the broker, then runs the worker until `shutdown`
/// completes; running activities then get `shutdown_grace` to finish and
/// revoke their keys. Must run inside a `tokio::task::LocalSet`: the SDK's
/// worker is not `Send`.
pub async fn run_worker(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + 'static,
) -> Result<(), WorkerError> {
    let activities = payment_activities(&config)?;
    let probe = BrokerClient::new(
        config.broker_url.clone(),
        config.broker_token.clone(),
        Duration::from_secs(5),
    )
    .map_err(|err| WorkerError::Config(format!("broker client: {err}")))?;
    probe.health().await.map_err(|err| {
        WorkerError::Broker(format!(
            "cannot reach the broker at {}: {err}",
            config.broker_url
        ))
    })?;
    let client = temporal_client(&config.temporal).await?;

    let runtime = Runtime::from_current_tokio(Default::default())
        .map_err(|err| WorkerError::Run(err.to_string()))?;
    let tuner = TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(WORKFLOW_SLOTS))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(config.max_concurrent_activities))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .build();
    let options = WorkerOptions::new(config.temporal.task_queue.clone())
        .register_workflow::<CheckoutWorkflow>()
        .map_err(|err| WorkerError::Run(err.to_string()))?
        .register_activities(activities)
        .workflow_interceptor(ScheduleToCloseHeader::constructor())
        .tuner(tuner)
        .graceful_shutdown_period(config.shutdown_grace)
        .build();
    let mut worker =
        Worker::new(&runtime, client, options).map_err(|err| WorkerError::Run(err.to_string()))?;

    let stop = worker.shutdown_handle();
    tokio::task::spawn_local(async move {
        shutdown.await;
        tracing::info!("stopping: running activities may finish and revoke their keys");
        stop();
    });
    tracing::info!(task_queue = %config.temporal.task_queue, namespace = %config.temporal.namespace, "keylease-worker polling");
    worker
        .run()
        .await
        .map_err(|err| WorkerError::Run(err.to_string()))?;
    tracing::info!("keylease-worker stopped");
    Ok(())
}
