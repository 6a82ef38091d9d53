//! `keylease-worker checkout` and `fulfil`: start a checkout and signal it.

use clap::Args;
use keylease_workflows::{CheckoutInput, CheckoutOutcome, CheckoutWorkflow, Fulfilment};
use temporalio_client::{WorkflowGetResultOptions, WorkflowSignalOptions, WorkflowStartOptions};

use crate::config::TemporalArgs;
use crate::connect::temporal_client;
use crate::error::WorkerError;
use crate::policy::PolicyArgs;

/// Flags of `keylease-worker checkout`.
#[derive(Debug, Clone, Args)]
pub struct CheckoutArgs {
    /// Temporal connection.
    #[command(flatten)]
    pub temporal: TemporalArgs,
    /// The order being paid.
    #[arg(long)]
    pub order_id: String,
    /// Minor units (cents for usd).
    #[arg(long)]
    pub amount: i64,
    /// ISO 4217, lowercase.
    #[arg(long)]
    pub currency: String,
    /// Stripe PaymentMethod id, e.g. `pm_card_visa`.
    #[arg(long)]
    pub payment_method: String,
    /// Stripe Customer id.
    #[arg(long)]
    pub customer: Option<String>,
    /// The charge key's spend cap in USD (required for currencies other than usd).
    #[arg(long)]
    pub max_spend_usd: Option<f64>,
    /// How long to wait for `fulfil` before refunding (`30m`, `1h`).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub fulfilment_timeout: std::time::Duration,
    /// Workflow id (default `checkout-<order id>`).
    #[arg(long)]
    pub workflow_id: Option<String>,
    /// Wait for the result and print it.
    #[arg(long)]
    pub wait: bool,
    /// The activities' timeouts and retries.
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// Flags of `keylease-worker fulfil`.
#[derive(Debug, Clone, Args)]
pub struct FulfilArgs {
    /// Temporal connection.
    #[command(flatten)]
    pub temporal: TemporalArgs,
    /// The checkout to signal.
    #[arg(long)]
    pub workflow_id: String,
    /// The order was fulfilled.
    #[arg(long, conflicts_with = "failed", required_unless_present = "failed")]
    pub ok: bool,
    /// The order failed: the charge is refunded.
    #[arg(long)]
    pub failed: bool,
    /// Why it failed.
    #[arg(long, requires = "failed")]
    pub reason: Option<String>,
}

/// Starts a checkout; returns its workflow id.
pub async fn checkout(args: CheckoutArgs) -> Result<String, WorkerError> {
    let policy = args.policy.load()?;
    let client = temporal_client(&args.temporal).await?;
    let workflow_id = args
        .workflow_id
        .clone()
        .unwrap_or_else(|| format!("checkout-{}", args.order_id));
    let input = CheckoutInput {
        order_id: args.order_id,
        amount: args.amount,
        currency: args.currency,
        payment_method: args.payment_method,
        customer: args.customer,
        max_spend_usd: args.max_spend_usd,
        policy: Some(policy),
        fulfilment_timeout: args.fulfilment_timeout,
    };
    client
        .start_workflow(
            CheckoutWorkflow::run,
            input,
            WorkflowStartOptions::new(args.temporal.task_queue.clone(), workflow_id.clone())
                .build(),
        )
        .await
        .map_err(|err| WorkerError::Temporal(format!("cannot start {workflow_id}: {err}")))?;
    Ok(workflow_id)
}

/// Waits for a checkout to end; returns its outcome.
pub async fn outcome(
    temporal: &TemporalArgs,
    workflow_id: &str,
) -> Result<CheckoutOutcome, WorkerError> {
    let client = temporal_client(temporal).await?;
    client
        .get_workflow_handle::<CheckoutWorkflow>(workflow_id.to_owned())
        .get_result(WorkflowGetResultOptions::default())
        .await
        .map_err(|err| WorkerError::Temporal(format!("{workflow_id} did not complete: {err}")))
}

/// Sends the `fulfilment` signal.
pub async fn fulfil(args: FulfilArgs) -> Result<(), WorkerError> {
    let client = temporal_client(&args.temporal).await?;
    let handle = client.get_workflow_handle::<CheckoutWorkflow>(args.workflow_id.clone());
    let fulfilment = Fulfilment {
        ok: args.ok,
        reason: args.reason,
    };
    handle
        .signal(
            CheckoutWorkflow::fulfilment,
            fulfilment,
            WorkflowSignalOptions::default(),
        )
        .await
        .map_err(|err| {
            WorkerError::Temporal(format!("cannot signal {}: {err}", args.workflow_id))
        })?;
    Ok(())
}
