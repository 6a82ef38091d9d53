//! The Keylease worker: runs [`keylease_workflows::CheckoutWorkflow`] and the
//! payment activities on a task queue, and starts and signals checkouts.
//!
//! Modules:
//! - [`cli`]: the command line.
//! - [`config`]: flags and environment variables.
//! - [`run`]: the worker itself, [`run::run_worker`].
//! - [`start`]: the `checkout` and `fulfil` commands.
//! - [`policy`]: the policy file and `policy explain`.
//! - [`observe`]: `/metrics` and `/healthz` on `--metrics-addr`.
//! - [`sweep`]: `keys sweep`, for keys a crashed worker never revoked.
//! - [`connect`]: the Temporal client.
//! - [`error`]: [`WorkerError`], one line a person can act on.

pub mod cli;
pub mod config;
pub mod connect;
pub mod error;
pub mod namespace;
pub mod observe;
pub mod policy;
pub mod role;
pub mod run;
pub mod start;
pub mod sweep;

pub use config::{DEFAULT_LOG_FILTER, LogFormat, TemporalArgs, WorkerConfig, log_filter};
pub use error::WorkerError;
pub use run::run_worker;
