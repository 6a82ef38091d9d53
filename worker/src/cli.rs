//! The command line: `run`, `checkout`, `fulfil`.

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, WorkerConfig};
use crate::start::{CheckoutArgs, FulfilArgs};

/// Keylease: per-attempt scoped Stripe keys for payment activities on Temporal.
#[derive(Debug, Parser)]
#[command(name = "keylease-worker", version, about)]
pub struct Cli {
    /// Log line format.
    #[arg(long, env = "KEYLEASE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the worker until SIGTERM or Ctrl-C.
    Run(Box<WorkerConfig>),
    /// Start a checkout workflow and print its id.
    Checkout(CheckoutArgs),
    /// Tell a checkout whether its order was fulfilled.
    Fulfil(FulfilArgs),
}
