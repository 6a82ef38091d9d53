//! `keylease-worker checkout` and `fulfil`: start a checkout, and tell it
//! whether its order was fulfilled.

use clap::Args;
use keylease_workflows::{
    CheckoutInput, CheckoutOutcome, CheckoutStep, CheckoutWorkflow, Fulfilment, FulfilmentRequest,
    charging,
};
use temporalio_client::errors::{WorkflowInteractionError, WorkflowUpdateError};
use temporalio_client::{
    Client, WorkflowDescribeOptions, WorkflowExecuteUpdateOptions, WorkflowExecutionStatus,
    WorkflowGetResultOptions, WorkflowIdConflictPolicy, WorkflowIdReusePolicy,
    WorkflowQueryOptions, WorkflowStartOptions,
};

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
    /// Wait up to this long (`30s`) for the checkout to be charged first: a
    /// fulfilment before the charge settled is refused ("not charged yet").
    #[arg(long, value_parser = humantime::parse_duration)]
    pub wait: Option<std::time::Duration>,
}

/// Waits, up to `within`, until the checkout under `handle` has left the
/// charge (asking its `status` every 200 ms).
async fn until_charged(
    handle: &temporalio_client::WorkflowHandle<Client, CheckoutWorkflow>,
    within: std::time::Duration,
) {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        let status = handle
            .query(
                CheckoutWorkflow::status,
                (),
                WorkflowQueryOptions::default(),
            )
            .await;
        if !matches!(
            status.map(|status| status.step),
            Ok(CheckoutStep::Charging | CheckoutStep::Reconciling | CheckoutStep::Settling)
        ) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// How the latest checkout under `workflow_id` ended, if it has.
async fn ended(
    client: &Client,
    workflow_id: &str,
) -> Result<Option<(WorkflowExecutionStatus, Option<CheckoutOutcome>)>, WorkerError> {
    let handle = client.get_workflow_handle::<CheckoutWorkflow>(workflow_id.to_owned());
    let status = match handle.describe(WorkflowDescribeOptions::default()).await {
        Ok(description) => description.status(),
        Err(WorkflowInteractionError::NotFound(_)) => return Ok(None),
        Err(err) => {
            return Err(WorkerError::Temporal(format!(
                "cannot describe {workflow_id}: {err}"
            )));
        }
    };
    match status {
        WorkflowExecutionStatus::Running | WorkflowExecutionStatus::Unspecified => Ok(None),
        WorkflowExecutionStatus::Completed => {
            let outcome = handle
                .get_result(WorkflowGetResultOptions::default())
                .await
                .map_err(|err| {
                    WorkerError::Temporal(format!(
                        "cannot read the outcome of {workflow_id}: {err}"
                    ))
                })?;
            Ok(Some((status, Some(outcome))))
        }
        _ => Ok(Some((status, None))),
    }
}

/// Refuses a workflow id whose last checkout may have taken money: a new
/// checkout under it would charge the order again. Only a checkout that
/// failed with nothing charged may be tried again under its id (a new card
/// after a decline); anything else needs a new id, on purpose.
async fn refuse_reuse(client: &Client, workflow_id: &str) -> Result<(), WorkerError> {
    let why = match ended(client, workflow_id).await? {
        None | Some((_, Some(CheckoutOutcome::Failed { .. }))) => return Ok(()),
        Some((_, Some(CheckoutOutcome::Completed { payment_intent_id }))) => {
            format!("it completed, charged by {payment_intent_id}")
        }
        Some((
            _,
            Some(CheckoutOutcome::Compensated {
                payment_intent_id,
                refund_id,
                ..
            }),
        )) => format!("it was compensated: {payment_intent_id} refunded by {refund_id}"),
        Some((status, None)) => {
            format!("it ended {status:?} and may have charged; check Stripe for its order first")
        }
    };
    Err(WorkerError::Refused(format!(
        "workflow id {workflow_id} belongs to an earlier checkout ({why}); \
         pass --workflow-id to start a separate checkout"
    )))
}

/// Starts a checkout; returns its workflow id.
pub async fn checkout(args: CheckoutArgs) -> Result<String, WorkerError> {
    let policy = args.policy.load()?;
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
    // The charge would refuse this input anyway; refusing it here starts no workflow.
    keylease_activities::validate::charge(&charging::charge_input(&input, None))
        .map_err(WorkerError::Config)?;
    let client = temporal_client(&args.temporal).await?;
    refuse_reuse(&client, &workflow_id).await?;
    client
        .start_workflow(
            CheckoutWorkflow::run,
            input.into(),
            WorkflowStartOptions::new(args.temporal.task_queue.clone(), workflow_id.clone())
                // Its rule (`refuse_reuse`): a new run only after one that
                // charged nothing, which may have *completed* (a decline), so
                // Temporal must allow a duplicate; a second starter racing
                // past the check meets `conflict: fail` while this one runs,
                // and the checkout's own DuplicateOrder once it has charged.
                .id_reuse_policy(WorkflowIdReusePolicy::AllowDuplicate)
                .id_conflict_policy(WorkflowIdConflictPolicy::Fail)
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

/// Sends the `fulfil` Update; returns the checkout's receipt. A refusal (a
/// malformed or second fulfilment, or one that comes after the outcome was
/// decided) is [`WorkerError::Refused`] with the checkout's reason.
pub async fn fulfil(args: FulfilArgs) -> Result<String, WorkerError> {
    let client = temporal_client(&args.temporal).await?;
    let workflow_id = args.workflow_id.clone();
    let handle = client.get_workflow_handle::<CheckoutWorkflow>(workflow_id.clone());
    let deadline = args.wait.map(|within| tokio::time::Instant::now() + within);
    let request = FulfilmentRequest::from(Fulfilment {
        ok: args.ok,
        reason: args.reason,
    });
    let err = loop {
        if let Some(deadline) = deadline {
            until_charged(
                &handle,
                deadline.saturating_duration_since(tokio::time::Instant::now()),
            )
            .await;
        }
        match handle
            .execute_update(
                CheckoutWorkflow::fulfil,
                request.clone(),
                WorkflowExecuteUpdateOptions::default(),
            )
            .await
        {
            Ok(receipt) => return Ok(receipt),
            // The charge settled in the same workflow task as the Update
            // came: ask again while the wait lasts.
            Err(WorkflowUpdateError::Failed(failure))
                if failure.message.contains("not charged yet")
                    && deadline.is_some_and(|deadline| tokio::time::Instant::now() < deadline) =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(WorkflowUpdateError::Failed(failure)) => {
                return Err(WorkerError::Refused(format!(
                    "{workflow_id}: {}",
                    failure.message
                )));
            }
            Err(err) => break err,
        }
    };
    // A checkout that has ended takes no Update: say how it ended instead.
    match ended(&client, &workflow_id).await {
        Ok(Some((_, Some(outcome)))) => Err(WorkerError::Refused(format!(
            "{workflow_id}: too late, the checkout already ended: {}",
            serde_json::to_string(&outcome).unwrap_or_default()
        ))),
        Ok(Some((status, None))) => Err(WorkerError::Refused(format!(
            "{workflow_id}: too late, the checkout already ended {status:?}"
        ))),
        _ => Err(WorkerError::Temporal(format!(
            "cannot fulfil {workflow_id}: {err}"
        ))),
    }
}
