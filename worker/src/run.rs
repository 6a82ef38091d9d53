//! `keylease-worker run`: poll the task queue until asked to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keylease_activities::{BrokerClient, PaymentActivities, StripeClient};
use keylease_workflows::{CheckoutWorkflow, ScheduleToCloseHeader};
use prometheus_client::registry::Registry;
use temporalio_client::Client;
use temporalio_common::telemetry::metrics::CoreMeter;
use temporalio_common::telemetry::{
    PrometheusExporterOptions, TelemetryOptions, start_prometheus_metric_exporter,
};
use temporalio_sdk::runtime::RuntimeOptions;
use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};
use tokio::net::TcpListener;

use crate::config::{WorkerConfig, check_broker_token};
use crate::connect::{default_identity, temporal_client_as};
use crate::error::WorkerError;
use crate::observe;

/// Timeout of one call to the broker or through its proxy.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the start-up check waits for the broker.
const BROKER_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Workflow tasks run at once; workflow code is cheap, activities are the bound that matters.
const WORKFLOW_SLOTS: usize = 100;

/// The broker client and payment activities of `config`.
fn payment_activities(
    config: &WorkerConfig,
) -> Result<(BrokerClient, PaymentActivities), WorkerError> {
    let roots = config.transport.roots()?;
    let broker = BrokerClient::new(
        config.broker_url.clone(),
        config.broker_token.clone(),
        HTTP_TIMEOUT,
        &roots,
    )
    .map_err(|err| WorkerError::Config(format!("broker client: {err}")))?;
    let stripe = StripeClient::new(config.proxy_url.clone(), HTTP_TIMEOUT, &roots)
        .map_err(|err| WorkerError::Config(format!("proxy client: {err}")))?;
    let activities = PaymentActivities::new(
        broker.clone(),
        stripe,
        config.broker_max_ttl,
        config.revoke_budget,
    )
    .overdue_after(config.refund_overdue_after);
    Ok((broker, activities))
}

/// Starts the SDK's Prometheus exporter on loopback and serves `/metrics` and
/// `/healthz` on `addr`; returns runtime options that feed the exporter.
async fn observe(
    addr: SocketAddr,
    activities: &PaymentActivities,
    client: &Client,
) -> Result<RuntimeOptions, WorkerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|err| WorkerError::Config(format!("cannot serve metrics on {addr}: {err}")))?;
    let exporter = start_prometheus_metric_exporter(
        PrometheusExporterOptions::builder()
            .socket_addr(SocketAddr::from(([127, 0, 0, 1], 0)))
            .counters_total_suffix(true)
            .use_seconds_for_durations(true)
            .build(),
    )
    .map_err(|err| WorkerError::Run(format!("SDK metrics exporter: {err}")))?;
    let mut registry = Registry::default();
    activities.metrics().register(&mut registry);
    observe::spawn(
        listener,
        observe::Observer {
            registry,
            sdk_metrics: Some(exporter.bound_addr),
            client: client.clone(),
            http: reqwest::Client::new(),
        },
    );
    let meter: Arc<dyn CoreMeter> = exporter.meter;
    let telemetry = TelemetryOptions::builder().metrics(meter).build();
    RuntimeOptions::builder()
        .telemetry_options(telemetry)
        .build()
        .map_err(WorkerError::Run)
}

/// Refuses a weak broker token, connects to Temporal and the broker, then runs the worker until `shutdown`
/// completes; running activities then get `shutdown_grace` to finish and
/// revoke their keys. Must run inside a `tokio::task::LocalSet`: the SDK's
/// worker is not `Send`.
pub async fn run_worker(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + 'static,
) -> Result<(), WorkerError> {
    check_broker_token(&config.broker_token)?;
    (config.transport).check("KEYLEASE_BROKER_URL", &config.broker_url)?;
    (config.transport).check("KEYLEASE_PROXY_URL", &config.proxy_url)?;
    let (broker, activities) = payment_activities(&config)?;
    broker.health(BROKER_PROBE_TIMEOUT).await.map_err(|err| {
        let err = err.to_string();
        let hint = if err.contains("certificate") {
            "; its certificate is not trusted here: give the CA that issued it as KEYLEASE_BROKER_CA (--broker-ca)"
        } else {
            ""
        };
        WorkerError::Broker(format!(
            "cannot reach the broker at {}: {err}{hint}",
            config.broker_url
        ))
    })?;
    let reach = crate::role::check_token(&broker).await?;
    // A role made before reconcile read Stripe's list: reconcile on search alone.
    let activities = if reach.allows(keylease_activities::reconcile::LIST_ENDPOINT) {
        activities
    } else {
        activities.without_list_reads()
    };
    // One made before refunds were followed: a pending refund is taken as it stands.
    let activities = if reach.allows(keylease_activities::payments::REFUND_READ_ENDPOINT) {
        activities
    } else {
        activities.without_refund_reads()
    };
    serve(&config, activities, shutdown).await
}

/// Runs the checkout workflow and `activities` on `config`'s task queue
/// until `shutdown` completes (see [`run_worker`]). Only `config`'s Temporal,
/// identity, slot, grace and metrics settings are read: `activities` carry
/// their own clients. `keylease-bench` serves its keyless baseline with it.
pub async fn serve(
    config: &WorkerConfig,
    activities: PaymentActivities,
    shutdown: impl Future<Output = ()> + 'static,
) -> Result<(), WorkerError> {
    let identity = (config.identity.clone())
        .filter(|identity| !identity.is_empty())
        .unwrap_or_else(default_identity);
    let client = temporal_client_as(&config.temporal, identity).await?;
    // Before anything is served (`/healthz` included): no checkout may wedge
    // for want of the search attribute it sets first.
    let namespace = client.options().namespace.clone();
    crate::namespace::ensure_order_id(&client, &namespace).await?;

    let runtime_options = match config.metrics_addr {
        Some(addr) => observe(addr, &activities, &client).await?,
        None => RuntimeOptions::default(),
    };
    let runtime = Runtime::from_current_tokio(runtime_options)
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
    tracing::info!(task_queue = %config.temporal.task_queue, namespace = %namespace, "keylease-worker polling");
    worker
        .run()
        .await
        .map_err(|err| WorkerError::Run(err.to_string()))?;
    tracing::info!("keylease-worker stopped");
    Ok(())
}
