//! Connecting to Temporal, with one clear error when it is not there.

use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions};

use crate::config::TemporalArgs;
use crate::error::WorkerError;

/// A client of the namespace in `args`.
pub async fn temporal_client(args: &TemporalArgs) -> Result<Client, WorkerError> {
    let url = args.url().map_err(|err| {
        WorkerError::Config(format!(
            "TEMPORAL_ADDRESS {:?} is not an address: {err}",
            args.temporal_address
        ))
    })?;
    let connection = Connection::connect(
        ConnectionOptions::new(url)
            .identity(format!("keylease-worker@{}", std::process::id()))
            .build(),
    )
    .await
    .map_err(|err| {
        WorkerError::Temporal(format!(
            "cannot reach Temporal at {}: {err}",
            args.temporal_address
        ))
    })?;
    Client::new(
        connection,
        ClientOptions::new(args.namespace.clone()).build(),
    )
    .map_err(|err| WorkerError::Temporal(format!("cannot use namespace {}: {err}", args.namespace)))
}
