//! The command line: `run`, `checkout`, `fulfil`, `policy`, `keys`, `role`.

use clap::{Parser, Subcommand};

use std::time::Duration;

use clap::Args;

use crate::config::{LogFormat, WorkerConfig};
use crate::policy::PolicyArgs;
use crate::role::RoleSetupArgs;
use crate::start::{CheckoutArgs, FulfilArgs};
use crate::sweep::SweepArgs;

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
    Checkout(Box<CheckoutArgs>),
    /// Tell a checkout whether its order was fulfilled.
    Fulfil(FulfilArgs),
    /// Retry-policy tools.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Broker key tools.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The broker role the worker runs under.
    #[command(subcommand)]
    Role(RoleCommand),
}

/// `keylease-worker role …`.
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// With the broker's admin token (this step only): create the worker's
    /// role and register (or make and print) the worker's token.
    Setup(Box<RoleSetupArgs>),
}

/// `keylease-worker keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List active temporal-* keys whose workflow run is closed; revoke them with --apply.
    Sweep(Box<SweepArgs>),
}

/// `keylease-worker policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print each activity's attempt schedule, key TTL, worst case and warnings.
    Explain(ExplainArgs),
}

/// Flags of `keylease-worker policy explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The policy to explain.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// The broker's longest key TTL.
    #[arg(long, env = "KEYLEASE_BROKER_MAX_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub broker_max_ttl: Duration,
    /// With `--broker-token`: also show what the token's broker role allows
    /// next to what the activities ask for, and each mismatch.
    #[arg(long, env = "KEYLEASE_BROKER_URL")]
    pub broker_url: Option<url::Url>,
    /// The worker's broker token (a role token).
    #[arg(long, env = "KEYLEASE_BROKER_TOKEN", hide_env_values = true)]
    pub broker_token: Option<secrecy::SecretString>,
    /// How the broker is reached.
    #[command(flatten)]
    pub transport: crate::config::BrokerTransport,
}
