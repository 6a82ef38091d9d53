//! `keylease-broker`: serves the vault-key API and the Stripe proxy.

use anyhow::Context;
use clap::Parser;
use keylease_broker::BrokerConfig;
use keylease_broker::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// The Keylease key broker.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: BrokerConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli { config } = Cli::parse();
    init_tracing(config.log_format);
    // `run` checks too; checking first refuses before the port is taken or anything logged.
    config.check()?;
    config
        .check_upstream()
        .map_err(keylease_broker::BrokerError::Config)?;
    // Before the port is taken: a bad certificate or key stops the broker
    // before it says it listens.
    keylease_broker::tls::acceptor(&config).map_err(keylease_broker::BrokerError::Config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(address = %listener.local_addr()?, "keylease-broker listening");
    let stripe_listener = match config.stripe_listen {
        Some(address) => {
            let stripe = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address}"))?;
            tracing::info!(address = %stripe.local_addr()?, "Stripe's API served at the root");
            Some(stripe)
        }
        None => None,
    };
    keylease_broker::run_on(listener, stripe_listener, config, shutdown_signal()).await?;
    tracing::info!("keylease-broker stopped");
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

/// Completes on SIGTERM (how compose stops a container) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}
