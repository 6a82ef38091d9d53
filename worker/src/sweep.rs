//! `keylease-worker keys sweep`: find (and with `--apply`, revoke) active
//! `temporal-*` keys whose attempt is over — keys a crashed worker never
//! revoked, still live until their TTL: the key of a closed run, and in a
//! running one the key of an activity no attempt of which is running any
//! more, or of an attempt a later one superseded (Temporal starts attempt N
//! only once N−1 has ended or timed out).
//!
//! It judges only keys whose metadata names the namespace it runs against:
//! a workflow of another namespace is "not found" in this one, and its live
//! keys must not be revoked for that. Keys without a namespace (issued before
//! the activities recorded it) are left to their TTL.

use std::time::Duration;

use clap::Args;
use keylease_activities::BrokerClient;
use keylease_activities::broker_client::KeySummary;
use secrecy::SecretString;
use temporalio_client::errors::WorkflowInteractionError;
use temporalio_client::{
    Client, WorkflowDescribeOptions, WorkflowExecutionDescription, WorkflowExecutionInfo,
    WorkflowExecutionStatus,
};
use url::Url;

use crate::config::TemporalArgs;
use crate::connect::temporal_client;
use crate::error::WorkerError;

/// Flags of `keylease-worker keys sweep`.
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// Temporal connection.
    #[command(flatten)]
    pub temporal: TemporalArgs,
    /// The broker's key API.
    #[arg(long, env = "KEYLEASE_BROKER_URL", value_parser = crate::config::http_url)]
    pub broker_url: Url,
    /// Bearer token of the broker's key API: at least 32 characters, not an example
    /// value. Never logged.
    #[arg(long, env = "KEYLEASE_BROKER_TOKEN", hide_env_values = true)]
    pub broker_token: SecretString,
    /// How the broker is reached.
    #[command(flatten)]
    pub transport: crate::config::BrokerTransport,
    /// Revoke the orphaned keys; without it, only list them.
    #[arg(long)]
    pub apply: bool,
}

/// A key whose attempt is over: its run closed or gone, or the attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// `key_…`.
    pub key_id: String,
    /// Its label.
    pub label: String,
    /// Why it is an orphan: the run's status, `not found`, or why its attempt is over.
    pub reason: String,
}

/// Whether the attempt `key` was issued for is over, in a run that is
/// still open: its activity has no attempt running (it ended; or a later
/// round under the same id has not begun), or a later attempt was
/// scheduled. `Some(reason)` if so. A key of a running attempt, or one
/// without an attempt number, is left alone.
fn superseded(description: &WorkflowExecutionDescription, key: &KeySummary) -> Option<String> {
    let activity_id = key.metadata.get("activity_id")?;
    let attempt: i32 = key.metadata.get("attempt")?.parse().ok()?;
    let pending = description
        .raw_description
        .pending_activities
        .iter()
        .find(|pending| &pending.activity_id == activity_id);
    match pending {
        None => Some(format!("its activity {activity_id} is no longer running")),
        Some(pending) if pending.attempt > attempt => Some(format!(
            "attempt {attempt} of {activity_id} superseded by attempt {}",
            pending.attempt
        )),
        Some(_) => None,
    }
}

/// Whether the attempt a key was issued for is over: `Some(reason)` if so.
async fn closed(
    client: &Client,
    namespace: &str,
    key: &KeySummary,
) -> Result<Option<String>, WorkerError> {
    let Some(workflow_id) = key.metadata.get("workflow_id") else {
        // Not issued by Keylease's activities (or an id too long to record): leave it to its TTL.
        return Ok(None);
    };
    if key.metadata.get("namespace").map(String::as_str) != Some(namespace) {
        // Another namespace's (or of unknown namespace): not this sweep's to judge.
        return Ok(None);
    }
    let run_id = key
        .metadata
        .get("run_id")
        .filter(|r| !r.is_empty())
        .cloned();
    let handle = WorkflowExecutionInfo::builder()
        .namespace(namespace.to_owned())
        .workflow_id(workflow_id.clone())
        .maybe_run_id(run_id)
        .build()
        .bind_untyped(client.clone());
    match handle.describe(WorkflowDescribeOptions::default()).await {
        Ok(description) => Ok(match description.status() {
            status @ (WorkflowExecutionStatus::Completed
            | WorkflowExecutionStatus::Failed
            | WorkflowExecutionStatus::Canceled
            | WorkflowExecutionStatus::Terminated
            | WorkflowExecutionStatus::ContinuedAsNew
            | WorkflowExecutionStatus::TimedOut) => Some(format!("{status:?}").to_lowercase()),
            _ => superseded(&description, key),
        }),
        Err(WorkflowInteractionError::NotFound(_)) => Ok(Some("not found".to_owned())),
        Err(err) => Err(WorkerError::Temporal(format!(
            "cannot describe workflow {workflow_id}: {err}"
        ))),
    }
}

/// Lists the orphaned keys and, with `apply`, revokes them; returns them.
pub async fn sweep(args: &SweepArgs) -> Result<Vec<Orphan>, WorkerError> {
    crate::config::check_broker_token(&args.broker_token)?;
    (args.transport).check("KEYLEASE_BROKER_URL", &args.broker_url)?;
    let broker = BrokerClient::new(
        args.broker_url.clone(),
        args.broker_token.clone(),
        Duration::from_secs(30),
        &args.transport.roots()?,
    )
    .map_err(|err| WorkerError::Config(format!("broker client: {err}")))?;
    let keys = broker
        .list_keys("temporal-", "active")
        .await
        .map_err(|err| {
            WorkerError::Broker(format!("cannot list keys at {}: {err}", args.broker_url))
        })?;
    let client = temporal_client(&args.temporal).await?;
    let namespace = client.options().namespace.clone();
    let mut orphans = Vec::new();
    for key in keys {
        if let Some(reason) = closed(&client, &namespace, &key).await? {
            orphans.push(Orphan {
                key_id: key.id,
                label: key.label,
                reason,
            });
        }
    }
    if args.apply {
        for orphan in &orphans {
            broker.revoke(&orphan.key_id).await.map_err(|err| {
                WorkerError::Broker(format!("cannot revoke {}: {err}", orphan.key_id))
            })?;
        }
    }
    Ok(orphans)
}
