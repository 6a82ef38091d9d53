//! `keylease-broker`: serves the vault-key API and the Stripe proxy.

use anyhow::Context;
use clap::Parser;
use keylease_broker::BrokerConfig;
use keylease_broker::config::LogFormat;
use keylease_broker::retention::{self, Pace, Retention};
use tracing_subscriber::EnvFilter;

/// The Keylease key broker.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    after_help = "`keylease-broker tidy [--dry-run]` deletes what retention no longer keeps, \
                  now; it needs only the database and retention settings (`keylease-broker tidy --help`)."
)]
struct Cli {
    #[command(flatten)]
    config: BrokerConfig,
}

/// `keylease-broker tidy`: deletes the rows past their retention now, as the
/// server does every `--tidy-interval`, and prints how many of each table.
/// Needs no admin token and no Stripe secret.
#[derive(Debug, Parser)]
#[command(
    name = "keylease-broker tidy",
    bin_name = "keylease-broker tidy",
    version
)]
struct TidyCli {
    /// Print what would be deleted, and delete nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    db: keylease_broker::config::DatabaseConfig,
    #[command(flatten)]
    retention: keylease_broker::config::RetentionConfig,
    /// The server's `--max-ttl`: object claims outlive their label's last key by at least this.
    #[arg(long, env = "KEYLEASE_BROKER_MAX_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    max_ttl: std::time::Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The server's flags are a contract with no subcommand before them, so
    // `tidy` is told apart by its first argument.
    if args.get(1).is_some_and(|first| first == "tidy") {
        args.remove(1);
        return run_tidy(TidyCli::parse_from(args)).await;
    }
    let Cli { config } = Cli::parse_from(args);
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

async fn run_tidy(cli: TidyCli) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    init_tracing(LogFormat::Pretty);
    let url = cli.db.url()?;
    let retention = Retention::new(&cli.retention, cli.max_ttl);
    let (verb, rows) = if cli.dry_run {
        // Read-only: no file created, no migration run, nothing written.
        let store = keylease_broker::Store::connect_read_only(url.expose_secret()).await?;
        (
            "would delete",
            store.count_tidy(&retention.cutoffs()).await?,
        )
    } else {
        let integrity = keylease_broker::store::Integrity::of(&cli.db);
        let store = keylease_broker::Store::connect(url.expose_secret(), integrity).await?;
        let done = retention::tidy(&store, &retention, Pace::Full, None).await?;
        ("deleted", done)
    };
    println!(
        "{verb} (audit retention {}, key retention {}):",
        shown(cli.retention.audit_retention),
        shown(cli.retention.key_retention)
    );
    for (what, count) in [
        ("audit rows", rows.audit),
        ("keys", rows.keys),
        ("spend rows of those keys", rows.spend),
        ("holds of those keys on objects (cleared)", rows.holds),
        ("object claims", rows.objects),
        ("recorded and pending metadata pairs", rows.pairs),
        ("idempotent requests", rows.idempotent_requests),
        ("role spend rows", rows.role_spend),
        ("in-flight rows marked in_flight_lost", rows.lost),
    ] {
        println!("  {count:>10}  {what}");
    }
    Ok(())
}

/// `off`, or the retention in whole days or hours when it is one.
fn shown(keep: keylease_broker::config::Keep) -> String {
    match keep.0.map(|span| span.as_secs()) {
        None => "off".to_owned(),
        Some(secs) if secs % 86_400 == 0 => format!("{}d", secs / 86_400),
        Some(secs) if secs % 3600 == 0 => format!("{}h", secs / 3600),
        Some(secs) => format!("{secs}s"),
    }
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
