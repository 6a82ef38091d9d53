//! Connecting to Temporal, with one clear error when it is not there.

use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions};

use crate::config::TemporalArgs;
use crate::error::WorkerError;

/// `keylease-worker:<pid>@<host name>`. In containers every worker is pid 1, so the
/// host name (the container id under compose) is what tells them apart.
pub fn default_identity() -> String {
    let host = gethostname::gethostname();
    format!(
        "keylease-worker:{}@{}",
        std::process::id(),
        host.to_string_lossy()
    )
}

/// A client of the namespace in `args`, as [`default_identity`].
pub async fn temporal_client(args: &TemporalArgs) -> Result<Client, WorkerError> {
    temporal_client_as(args, default_identity()).await
}

/// A client of the namespace in `args` that gives Temporal `identity`.
pub async fn temporal_client_as(
    args: &TemporalArgs,
    identity: String,
) -> Result<Client, WorkerError> {
    let url = args.url().map_err(|err| {
        WorkerError::Config(format!(
            "TEMPORAL_ADDRESS {:?} is not an address: {err}",
            args.temporal_address
        ))
    })?;
    let connection = Connection::connect(ConnectionOptions::new(url).identity(identity).build())
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
