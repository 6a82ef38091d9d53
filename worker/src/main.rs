//! `keylease-worker`: run the worker, start a checkout, or signal one.

use std::io::Write;

use clap::Parser;
use keylease_worker::LogFormat;
use keylease_worker::cli::{Cli, Command, KeysCommand, PolicyCommand, RoleCommand};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("keylease-worker: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The SDK's worker future is not Send: run everything on this thread.
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&runtime, async {
        match cli.command {
            Command::Run(config) => keylease_worker::run_worker(*config, shutdown_signal()).await,
            Command::Checkout(args) => checkout(*args).await,
            Command::Fulfil(args) => keylease_worker::start::fulfil(args)
                .await
                .map(|receipt| println!("{receipt}")),
            Command::Policy(PolicyCommand::Explain(args)) => explain(&args).await,
            Command::Keys(KeysCommand::Sweep(args)) => sweep(&args).await,
            Command::Role(RoleCommand::Setup(args)) => role_setup(&args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("keylease-worker: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Starts a checkout and prints its workflow id; with `--wait`, then its outcome as JSON.
async fn checkout(
    args: keylease_worker::start::CheckoutArgs,
) -> Result<(), keylease_worker::WorkerError> {
    let (temporal, wait) = (args.temporal.clone(), args.wait);
    let workflow_id = keylease_worker::start::checkout(args).await?;
    println!("{workflow_id}");
    if wait {
        let outcome = keylease_worker::start::outcome(&temporal, &workflow_id).await?;
        println!("{}", serde_json::to_string(&outcome).unwrap_or_default());
    }
    Ok(())
}

/// Prints what the policy means for `charge` and `refund`, and with a
/// broker token, what its role allows next to what the activities ask.
async fn explain(
    args: &keylease_worker::cli::ExplainArgs,
) -> Result<(), keylease_worker::WorkerError> {
    let policy = args.policy.load()?;
    let charge = keylease_worker::policy::explain("charge", &policy.charge, args.broker_max_ttl);
    let refund = keylease_worker::policy::explain("refund", &policy.refund, args.broker_max_ttl);
    let mut text = format!("{charge}\n{refund}");
    if let (Some(url), Some(token)) = (&args.broker_url, &args.broker_token) {
        args.transport.check("KEYLEASE_BROKER_URL", url)?;
        let broker = keylease_activities::broker_client::BrokerClient::new(
            url.clone(),
            token.clone(),
            std::time::Duration::from_secs(10),
            &args.transport.roots()?,
        )
        .map_err(|err| keylease_worker::WorkerError::Broker(err.to_string()))?;
        let who = broker
            .whoami()
            .await
            .map_err(|err| keylease_worker::WorkerError::Broker(err.to_string()))?;
        text.push('\n');
        if who["kind"] == "role" {
            text.push_str(&keylease_worker::role::describe(
                &who["role"],
                &policy,
                args.broker_max_ttl,
            ));
        } else {
            text.push_str("the broker token is the admin token: it has no role to compare (create one: keylease-worker role setup)\n");
        }
    }
    // A closed pipe (`| head`) ends the output; it is not an error.
    match write!(std::io::stdout().lock(), "{text}") {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(keylease_worker::WorkerError::Run(err.to_string()))
        }
        _ => Ok(()),
    }
}

/// Creates the worker's role and its token; prints the token when the broker made it.
async fn role_setup(
    args: &keylease_worker::role::RoleSetupArgs,
) -> Result<(), keylease_worker::WorkerError> {
    use secrecy::ExposeSecret;
    match keylease_worker::role::setup(args).await? {
        Some(token) => println!("{}", token.expose_secret()),
        None => println!("role {} ready", args.name),
    }
    Ok(())
}

/// Prints the orphaned keys, and what was done with them.
async fn sweep(
    args: &keylease_worker::sweep::SweepArgs,
) -> Result<(), keylease_worker::WorkerError> {
    let orphans = keylease_worker::sweep::sweep(args).await?;
    for orphan in &orphans {
        println!(
            "{} {} (workflow {})",
            orphan.key_id, orphan.label, orphan.reason
        );
    }
    let verb = if args.apply {
        "revoked"
    } else {
        "found (dry run; --apply revokes them)"
    };
    println!("{} orphaned key(s) {verb}", orphans.len());
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = keylease_worker::log_filter();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Pretty => logs.init(),
    }
}

/// Completes on SIGTERM (how compose stops a container) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutdown requested");
}
