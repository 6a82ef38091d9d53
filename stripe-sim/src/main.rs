//! `stripe-sim`: serves the Stripe API simulator.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use tracing_subscriber::EnvFilter;

/// A Stripe API simulator for tests and the local stack. Not Stripe: test keys only, state in memory.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "STRIPE_SIM_LISTEN", default_value = "127.0.0.1:12111")]
    listen: SocketAddr,
    /// How long a new PaymentIntent stays out of search results (Stripe's
    /// search is eventually consistent), e.g. `2s`.
    #[arg(long, env = "STRIPE_SIM_SEARCH_INDEXING_DELAY", value_parser = humantime::parse_duration, default_value = "0s")]
    search_indexing_delay: std::time::Duration,
    /// Log line format.
    #[arg(long, env = "KEYLEASE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Pretty,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Pretty => logs.init(),
    }
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    tracing::info!(address = %listener.local_addr()?, "stripe-sim listening");
    stripe_sim::run_with(listener, cli.search_indexing_delay, shutdown_signal()).await?;
    tracing::info!("stripe-sim stopped");
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(err) => {
                    tracing::error!(error = %err, "cannot listen for SIGTERM");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
