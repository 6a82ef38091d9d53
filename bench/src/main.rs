//! `keylease-bench`: what per-attempt keys cost a checkout.
//!
//! Starts the real stack on free ports (the Temporal dev server from the
//! project's install, stripe-sim, the broker on SQLite, and the
//! `keylease-worker` binary), runs N checkouts at concurrency C through it,
//! then the same checkouts on the same dev server against a baseline worker
//! that holds one Stripe secret and calls stripe-sim directly (this binary's
//! hidden `baseline-worker` command: the same crates, no broker, no leases),
//! and prints both side by side with their ratio. It exits non-zero when a
//! check fails: a key left active, an order charged twice or not at all, a
//! refund missing or doubled.
//!
//! Modules:
//! - [`parts`]: the processes, and what `/proc` says of them.
//! - [`workload`]: the checkouts, and what stripe-sim and the broker hold afterwards.
//! - [`baseline`]: the keyless baseline worker.
//! - [`measured`]: what a run gave (figures, ledger, the worker's lease histogram).
//! - [`report`]: the table of figures and the checks.

mod baseline;
mod measured;
mod parts;
mod report;
mod workload;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Runs N checkouts at concurrency C through Keylease and through a keyless baseline.
#[derive(Debug, Parser)]
#[command(about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    load: workload::LoadArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The keyless baseline worker (started by the bench itself).
    #[command(hide = true)]
    BaselineWorker(baseline::BaselineArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::BaselineWorker(args)) => baseline::run(args),
        None => workload::bench(&cli.load),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("keylease-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}
