//! The keyless baseline: the checkout workflow and the same activities,
//! served by the worker's own code, with one Stripe secret for every attempt
//! and no broker between them and Stripe. What agent backends do without
//! Keylease, and what the bench compares Keylease against.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use keylease_activities::{PaymentActivities, StripeClient};
use keylease_worker::{TemporalArgs, WorkerConfig};
use secrecy::SecretString;
use url::Url;

/// Timeout of one call to Stripe, as the worker's.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of `keylease-bench baseline-worker`.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    #[command(flatten)]
    temporal: TemporalArgs,
    /// Stripe's API base (stripe-sim's, for the bench), called directly.
    #[arg(long)]
    stripe_url: Url,
    /// The Stripe secret every attempt uses; from the environment, never a flag.
    #[arg(long, env = "KEYLEASE_BENCH_STRIPE_SECRET", hide_env_values = true)]
    stripe_secret: SecretString,
    /// Where to serve `/metrics`, as the worker does.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Most activities run at once, as the worker's `--max-concurrent-activities`.
    #[arg(long, default_value_t = 100)]
    max_concurrent_activities: usize,
}

/// Serves the baseline until SIGTERM, logging as the worker does (JSON on stderr).
pub fn run(args: BaselineArgs) -> anyhow::Result<ExitCode> {
    let filter = keylease_worker::log_filter();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .json()
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The SDK's worker is not `Send`: it runs on a local set, as the worker binary's does.
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let stripe = StripeClient::new(args.stripe_url.clone(), HTTP_TIMEOUT, &[])?;
        let max_ttl = Duration::from_secs(86_400);
        let activities = PaymentActivities::keyless_baseline(stripe, args.stripe_secret, max_ttl);
        // `serve` reads only the Temporal, identity, slot, grace and metrics
        // settings; the broker fields name stripe-sim and are never used.
        let config = WorkerConfig {
            temporal: args.temporal,
            broker_url: args.stripe_url.clone(),
            proxy_url: args.stripe_url,
            broker_token: SecretString::from(String::new()),
            transport: Default::default(),
            identity: Some("keylease-bench-baseline".to_owned()),
            max_concurrent_activities: args.max_concurrent_activities,
            broker_max_ttl: max_ttl,
            shutdown_grace: Duration::from_secs(5),
            revoke_budget: Duration::ZERO,
            refund_overdue_after: Duration::from_secs(15 * 60),
            metrics_addr: args.metrics_addr,
        };
        keylease_worker::run::serve(&config, activities, terminated()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Completes on SIGTERM, which is how the bench stops the baseline.
async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
