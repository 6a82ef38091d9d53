//! The checkouts: the same workload through Keylease and through the
//! keyless baseline, on one dev server and one stripe-sim, and what
//! stripe-sim and the broker hold afterwards.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use keylease_testkit::BrokerProcess;
use keylease_testkit::machine::{
    load_average, machine, sqlite_commit_median_ms, sqlite_commit_median_ms_after,
};
use keylease_testkit::ports::free_addr;
use keylease_tests::process::{WorkerProcess, broker_settings};
use keylease_tests::stack::{STRIPE_SECRET, signal_fulfilment, temporal_args, unique};
use keylease_workflows::{CheckoutInput, CheckoutOutcome, CheckoutWorkflow};
use serde_json::Value;
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowStartOptions};

use crate::measured::{self, Histogram, Lease, Ledger, Measured, Variant};
use crate::parts::{self, Part};
use crate::report;

/// How many checkouts, and how many at once.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Checkouts measured, per worker.
    #[arg(long, default_value_t = 500)]
    workflows: usize,
    /// Checkouts in flight at once.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Checkouts run first on each worker and not measured (connections, caches).
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Measure Keylease only, without the baseline.
    #[arg(long)]
    no_baseline: bool,
}

/// Starts the stack, measures both workers, prints the report; fails on a broken check.
pub fn bench(args: &LoadArgs) -> anyhow::Result<ExitCode> {
    ensure!(args.workflows >= 1, "--workflows must be at least 1");
    ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

/// The running stack both workers share.
struct Shared {
    temporal_address: String,
    client: Client,
    sim: SocketAddr,
    sim_part: Part,
    broker: BrokerProcess,
    http: reqwest::Client,
    run: String,
    _dir: tempfile::TempDir,
}

/// How long the machine idles before each commit of the idle fsync probe.
const IDLE_GAP: Duration = Duration::from_millis(50);

async fn run(args: &LoadArgs) -> anyhow::Result<ExitCode> {
    println!("machine: {}, load {}", machine(), load_average());
    println!(
        "workload: {} checkouts per worker at concurrency {} after {} unmeasured; even orders fulfilled (charge), odd ones failed (charge, then refund)",
        args.workflows, args.concurrency, args.warmup
    );
    // Where the broker's SQLite file will live (a temporary directory).
    let probe = tempfile::tempdir()?;
    let fsync_ms = sqlite_commit_median_ms(probe.path()).await;
    let idle_ms = sqlite_commit_median_ms_after(probe.path(), IDLE_GAP, 40).await;
    drop(probe);
    println!(
        "fsync probe: a durable SQLite commit (WAL, synchronous FULL) where the broker's file lives takes {fsync_ms:.2} ms median; 2 x probe + 0.25 ms = {:.2} ms",
        2.0 * fsync_ms + 0.25
    );
    println!(
        "fsync probe after {} ms idle: {idle_ms:.2} ms median; 2 x that + 0.25 ms = {:.2} ms (the lease at concurrency 1 writes between idle spells)",
        IDLE_GAP.as_millis(),
        2.0 * idle_ms + 0.25
    );
    let shared = Shared::start().await?;
    let mut rows = vec![measure(&shared, args, Variant::Keylease).await?];
    if !args.no_baseline {
        rows.push(measure(&shared, args, Variant::Baseline).await?);
    }
    println!("load after the run: {}", load_average());
    let ok = report::print(&rows);
    let mut broker = shared.broker;
    broker.stop().await;
    shared.sim_part.stop().await;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

impl Shared {
    async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let temporal_address =
            tokio::task::spawn_blocking(|| keylease_tests::temporal::dev_server().address.clone())
                .await?;
        let (sim_part, sim) = parts::spawn_sim(dir.path()).await?;
        let database = format!("sqlite://{}/broker.db", dir.path().display());
        // The broker logs at `info`, as it runs by default.
        let broker =
            BrokerProcess::spawn(broker_settings().log_filter("info"), sim, &database).await;
        // The worker runs on its role's token, as deployed.
        keylease_tests::stack::with_worker_role(&broker.base()).await;
        let client =
            keylease_worker::connect::temporal_client(&temporal_args(&temporal_address, "unused"))
                .await?;
        Ok(Self {
            temporal_address,
            client,
            sim,
            sim_part,
            broker,
            http: reqwest::Client::new(),
            run: unique("bench"),
            _dir: dir,
        })
    }

    /// stripe-sim's control listing of `what` (`payment_intents`, `refunds`).
    async fn sim_held(&self, what: &str) -> Vec<Value> {
        keylease_tests::stack::sim_held(&self.http, self.sim, what).await
    }

    /// Keys at the broker still active whose label starts with `temporal-<prefix>-`.
    async fn active_keys(&self, prefix: &str) -> usize {
        keylease_tests::stack::active_keys(&self.http, self.broker.addr, prefix).await
    }
}

/// A worker of either kind, as a process.
enum Worker {
    Keylease(WorkerProcess),
    Baseline(Part),
}

impl Worker {
    fn spawn(
        shared: &Shared,
        variant: Variant,
        queue: &str,
        dir: &std::path::Path,
    ) -> anyhow::Result<Self> {
        Ok(match variant {
            Variant::Keylease => Self::Keylease(WorkerProcess::spawn_at(
                &shared.temporal_address,
                queue,
                &format!("http://{}", shared.broker.addr),
                &format!("http://{}/stripe", shared.broker.addr),
                // Logs as the worker does by default.
                &[("RUST_LOG", keylease_worker::DEFAULT_LOG_FILTER)],
            )),
            Variant::Baseline => {
                let metrics = free_addr();
                let stripe_url = format!("http://{}", shared.sim);
                let metrics_addr = metrics.to_string();
                let part = Part::spawn(
                    "baseline worker",
                    "keylease-bench",
                    &[
                        "baseline-worker",
                        "--temporal-address",
                        &shared.temporal_address,
                        "--task-queue",
                        queue,
                        "--stripe-url",
                        &stripe_url,
                        "--metrics-addr",
                        &metrics_addr,
                    ],
                    &[
                        ("RUST_LOG", keylease_worker::DEFAULT_LOG_FILTER),
                        ("KEYLEASE_BENCH_STRIPE_SECRET", STRIPE_SECRET),
                    ],
                    &dir.join("baseline-worker.log"),
                )?;
                Self::Baseline(part)
            }
        })
    }

    fn pid(&self) -> anyhow::Result<u32> {
        match self {
            Self::Keylease(worker) => worker.pid().context("the worker has exited"),
            Self::Baseline(part) => part.pid(),
        }
    }

    /// The Keylease worker's lease histogram now; the baseline has none.
    async fn lease_histogram(&self, http: &reqwest::Client) -> anyhow::Result<Option<Histogram>> {
        match self {
            Self::Keylease(worker) => Ok(Some(measured::scrape(http, worker.metrics).await?)),
            Self::Baseline(_) => Ok(None),
        }
    }

    async fn stop(self) {
        match self {
            Self::Keylease(worker) => worker.stop().await,
            Self::Baseline(part) => part.stop().await,
        }
    }
}

/// CPU time of the parts at one moment, and the time the worker's and the
/// broker's threads waited for a core.
struct Cpu {
    worker: Duration,
    broker: Duration,
    sim: Duration,
    worker_waited: Duration,
    broker_waited: Duration,
}

impl Cpu {
    fn now(shared: &Shared, worker: &Worker) -> anyhow::Result<Self> {
        let broker = shared.broker.pid().context("the broker has exited")?;
        Ok(Self {
            worker: parts::cpu_time(worker.pid()?)?,
            broker: parts::cpu_time(broker)?,
            sim: parts::cpu_time(shared.sim_part.pid()?)?,
            worker_waited: parts::run_queue_wait(worker.pid()?)?,
            broker_waited: parts::run_queue_wait(broker)?,
        })
    }
}

/// Runs the warm-up and the measured checkouts on a new worker of `variant`; then checks money and keys.
async fn measure(shared: &Shared, args: &LoadArgs, variant: Variant) -> anyhow::Result<Measured> {
    let prefix = format!("{}-{}", shared.run, variant.name());
    let queue = format!("{prefix}-queue");
    let dir = tempfile::tempdir()?;
    let worker = Worker::spawn(shared, variant, &queue, dir.path())?;
    let client = &shared.client;
    // At least one, so the worker is polling before the clock starts.
    let warmup = args.warmup.max(1);
    checkouts(
        client,
        &queue,
        &format!("{prefix}-w"),
        warmup,
        args.concurrency,
    )
    .await
    .with_context(|| format!("{} warm-up", variant.name()))?;

    let lease_before = worker.lease_histogram(&shared.http).await?;
    let calls_before = measured::scrape_key_calls(&shared.http, shared.broker.addr).await?;
    let cpu_before = Cpu::now(shared, &worker)?;
    let started = Instant::now();
    let mut latencies = checkouts(
        client,
        &queue,
        &format!("{prefix}-m"),
        args.workflows,
        args.concurrency,
    )
    .await
    .with_context(|| format!("{} run", variant.name()))?;
    let wall = started.elapsed();
    let cpu_after = Cpu::now(shared, &worker)?;
    let lease_after = worker.lease_histogram(&shared.http).await?;
    let calls_after = measured::scrape_key_calls(&shared.http, shared.broker.addr).await?;
    let worker_peak_rss = parts::peak_rss(worker.pid()?)?;
    let broker_peak_rss = match variant {
        Variant::Keylease => Some(parts::peak_rss(
            shared.broker.pid().context("the broker has exited")?,
        )?),
        Variant::Baseline => None,
    };
    latencies.sort();

    let ledger = ledger(shared, &prefix, warmup, args.workflows).await?;
    let active_keys = match variant {
        Variant::Keylease => Some(shared.active_keys(&prefix).await),
        Variant::Baseline => None,
    };
    worker.stop().await;
    let lease = lease_before
        .zip(lease_after)
        .and_then(|(before, after)| Lease::between(&before, &after));
    let [issue_before, revoke_before] = &calls_before;
    let [issue_after, revoke_after] = &calls_after;
    let key_calls =
        Lease::between(issue_before, issue_after).zip(Lease::between(revoke_before, revoke_after));
    Ok(Measured {
        variant,
        workflows: args.workflows,
        wall,
        latencies,
        worker_cpu: cpu_after.worker - cpu_before.worker,
        broker_cpu: (variant == Variant::Keylease).then(|| cpu_after.broker - cpu_before.broker),
        sim_cpu: cpu_after.sim - cpu_before.sim,
        worker_waited: cpu_after
            .worker_waited
            .saturating_sub(cpu_before.worker_waited),
        broker_waited: (variant == Variant::Keylease).then(|| {
            cpu_after
                .broker_waited
                .saturating_sub(cpu_before.broker_waited)
        }),
        key_calls,
        worker_peak_rss,
        broker_peak_rss,
        lease,
        ledger,
        active_keys,
    })
}

/// Runs `n` checkouts `<prefix><i>` on `queue`, `concurrency` at a time;
/// returns each one's time from start to outcome.
async fn checkouts(
    client: &Client,
    queue: &str,
    prefix: &str,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Duration>> {
    futures::stream::iter(0..n)
        .map(|i| checkout(client, queue, prefix, i))
        .buffer_unordered(concurrency)
        .try_collect()
        .await
}

/// Whether checkout `i` is fulfilled (even) or fails and is refunded (odd).
fn fulfilled(i: usize) -> bool {
    i.is_multiple_of(2)
}

/// One checkout: start it, signal its fulfilment at once (even orders
/// fulfilled, odd ones failed so the charge is refunded), await its outcome.
async fn checkout(
    client: &Client,
    queue: &str,
    prefix: &str,
    i: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let workflow_id = format!("{prefix}{i}");
    let input = CheckoutInput {
        order_id: format!("order-{workflow_id}"),
        amount: 1000 + (i % 100) as i64,
        currency: "usd".to_owned(),
        payment_method: "pm_card_visa".to_owned(),
        customer: None,
        max_spend_usd: None,
        policy: None,
        fulfilment_timeout: Duration::from_secs(600),
    };
    client
        .start_workflow(
            CheckoutWorkflow::run,
            input.into(),
            WorkflowStartOptions::new(queue.to_owned(), workflow_id.clone()).build(),
        )
        .await
        .with_context(|| format!("start {workflow_id}"))?;
    let handle = client.get_workflow_handle::<CheckoutWorkflow>(workflow_id.clone());
    let fulfilled = fulfilled(i);
    let reason = (!fulfilled).then_some("out of stock");
    signal_fulfilment(&handle, fulfilled, reason)
        .await
        .with_context(|| format!("signal {workflow_id}"))?;
    let outcome = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .with_context(|| format!("outcome of {workflow_id}"))?;
    match (&outcome, fulfilled) {
        (CheckoutOutcome::Completed { .. }, true)
        | (CheckoutOutcome::Compensated { .. }, false) => Ok(started.elapsed()),
        _ => bail!("{workflow_id} ended {outcome:?}"),
    }
}

/// Checks the orders `order-<prefix>-w<i>` (i < `warmup`) and `order-<prefix>-m<i>` (i < `measured`).
async fn ledger(
    shared: &Shared,
    prefix: &str,
    warmup: usize,
    measured: usize,
) -> anyhow::Result<Ledger> {
    let order_prefix = format!("order-{prefix}-");
    // order id → its succeeded PaymentIntents.
    let mut charges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for intent in shared.sim_held("payment_intents").await {
        let order = intent["metadata"]["order_id"].as_str().unwrap_or_default();
        if order.starts_with(&order_prefix) && intent["status"] == "succeeded" {
            let id = intent["id"].as_str().unwrap_or_default().to_owned();
            charges.entry(order.to_owned()).or_default().push(id);
        }
    }
    let mut refunds: BTreeMap<String, usize> = BTreeMap::new();
    for refund in shared.sim_held("refunds").await {
        if let Some(intent) = refund["payment_intent"].as_str() {
            *refunds.entry(intent.to_owned()).or_default() += 1;
        }
    }
    let mut ledger = Ledger::default();
    // Every order the run started; even ones were fulfilled.
    let orders = (0..warmup)
        .map(|i| (format!("{order_prefix}w{i}"), fulfilled(i)))
        .chain((0..measured).map(|i| (format!("{order_prefix}m{i}"), fulfilled(i))));
    for (order, fulfilled) in orders {
        ledger.orders += 1;
        let intents = charges.get(&order).map_or(&[][..], Vec::as_slice);
        match intents.len() {
            0 => ledger.not_charged += 1,
            1 => {}
            _ => ledger.double_charged += 1,
        }
        let refunded: usize = intents
            .iter()
            .map(|pi| refunds.get(pi).copied().unwrap_or(0))
            .sum();
        match (fulfilled, refunded) {
            (false, 1) => ledger.refunded_once += 1,
            (true, 0) => {}
            _ => ledger.refunds_wrong += 1,
        }
    }
    Ok(ledger)
}
