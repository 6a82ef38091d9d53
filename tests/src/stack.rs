//! A broker, a stripe-sim and a worker for one test, against the shared dev server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keylease_worker::{TemporalArgs, WorkerConfig, WorkerError};
use keylease_workflows::{
    ActivityPolicy, CheckoutInput, CheckoutPolicy, CheckoutWorkflow, Fulfilment, RetrySettings,
};
use serde_json::Value;
use temporalio_client::{
    Client, WorkflowFetchHistoryOptions, WorkflowHandle, WorkflowSignalOptions,
    WorkflowStartOptions,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::temporal::{DevServer, dev_server};

/// The broker's admin token: the tests' own admin calls use it, never the worker.
pub const ADMIN_TOKEN: &str = "e2e-admin-token-5b1c-9e4f07a2c3d8";
/// The worker's broker token: a token of the worker's role
/// ([`with_worker_role`]), as the README has operators give it.
pub const WORKER_TOKEN: &str = "rt_e2e_4c9a1f7e2b8d5a3c6f0e9b2d7a4c1f8e";

/// Creates the worker's broker role on the broker at `broker` (kept if it
/// exists) and registers [`WORKER_TOKEN`] for it, with the worker's own
/// `role setup`.
pub async fn with_worker_role(broker: &str) {
    let args = keylease_worker::role::RoleSetupArgs {
        broker_url: broker.parse().expect("broker url"),
        transport: Default::default(),
        admin_token: ADMIN_TOKEN.into(),
        name: "keylease-worker".to_owned(),
        max_key_usd_cap: 100_000.0,
        daily_usd_cap: 10_000_000.0,
        max_ttl: Duration::from_secs(86_400),
        worker_token: Some(WORKER_TOKEN.into()),
    };
    keylease_worker::role::setup(&args)
        .await
        .expect("the worker's role and token");
}
/// The Stripe secret only the broker holds.
pub const STRIPE_SECRET: &str = "sk_test_e2e_secret_9d2f";

/// The running parts of one test.
pub struct Stack {
    /// The shared Temporal dev server.
    pub temporal: &'static DevServer,
    /// The broker (key API at `/v1`, proxy at `/stripe`).
    pub broker: SocketAddr,
    /// stripe-sim.
    pub sim: SocketAddr,
    /// This test's task queue.
    pub task_queue: String,
    /// The worker's `/metrics` and `/healthz`.
    pub worker_metrics: SocketAddr,
    /// A Temporal client.
    pub client: Client,
    /// An HTTP client for the broker's and stripe-sim's APIs.
    pub http: reqwest::Client,
    _db: tempfile::TempDir,
    stops: Vec<oneshot::Sender<()>>,
    worker: Option<std::thread::JoinHandle<Result<(), WorkerError>>>,
}

/// A started checkout.
pub type CheckoutHandle = WorkflowHandle<Client, CheckoutWorkflow>;

/// Signals `fulfilment` to a checkout: fulfilled when `ok`, else failed for
/// `reason`, and its charge refunded.
pub async fn signal_fulfilment(
    handle: &CheckoutHandle,
    ok: bool,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    let fulfilment = Fulfilment {
        ok,
        reason: reason.map(str::to_owned),
    };
    handle
        .signal(
            CheckoutWorkflow::fulfilment,
            fulfilment.into(),
            WorkflowSignalOptions::default(),
        )
        .await?;
    Ok(())
}

/// A name no other test (or run) shares.
pub fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{name}-{nanos:x}")
}

/// Timeouts and retries fast enough for tests: TTL 72 s, retries from 200 ms.
pub fn test_policy() -> CheckoutPolicy {
    let activity = ActivityPolicy {
        schedule_to_close: Duration::from_secs(60),
        start_to_close: Duration::from_secs(15),
        heartbeat: Some(Duration::from_secs(3)),
        retry: RetrySettings {
            initial_interval: Duration::from_millis(200),
            maximum_interval: Duration::from_secs(1),
            maximum_attempts: 4,
            ..RetrySettings::default()
        },
    };
    CheckoutPolicy {
        charge: activity.clone(),
        refund: activity.clone(),
        reconcile: ActivityPolicy {
            retry: RetrySettings {
                maximum_attempts: 0,
                ..activity.retry
            },
            ..activity
        },
        // stripe-sim indexes at once unless a test says otherwise.
        search_window: Duration::from_secs(3),
        // The shortest cap a policy may set: the first rounds come quickly.
        compensation_backoff_cap: Duration::from_secs(30),
        // A settling payment is read every 2 s, for an hour at most.
        settle_every: Duration::from_secs(2),
        settle_within: Duration::from_secs(3600),
    }
}

/// A checkout of `amount` cents with `payment_method` and the test policy.
pub fn checkout(order_id: &str, amount: i64, payment_method: &str) -> CheckoutInput {
    CheckoutInput {
        order_id: order_id.to_owned(),
        amount,
        currency: "usd".to_owned(),
        payment_method: payment_method.to_owned(),
        customer: None,
        max_spend_usd: None,
        policy: Some(test_policy()),
        fulfilment_timeout: Duration::from_secs(120),
    }
}

/// Connection settings for the dev server at `address`, namespace `default`, on `task_queue`.
pub fn temporal_args(address: &str, task_queue: &str) -> TemporalArgs {
    TemporalArgs::at(address, task_queue)
}

/// `GET` on the admin API of the broker at `broker`.
pub async fn broker_get(http: &reqwest::Client, broker: SocketAddr, path_and_query: &str) -> Value {
    http.get(format!("http://{broker}{path_and_query}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("broker request")
        .json()
        .await
        .expect("broker json")
}

/// How many keys at `broker` are active with a label starting `temporal-<prefix>-`.
pub async fn active_keys(http: &reqwest::Client, broker: SocketAddr, prefix: &str) -> usize {
    // Asked by status: a listing shows 100 keys unless told more, and a long
    // run holds more than that, most of them revoked.
    const MOST: usize = 1000;
    let path = format!("/v1/keys?label_prefix=temporal-{prefix}-&status=active&limit={MOST}");
    let body = broker_get(http, broker, &path).await;
    let active = body["keys"].as_array().map_or(0, Vec::len);
    assert!(active < MOST, "more active keys than one listing shows");
    active
}

/// The stripe-sim control listing `what` (`payment_intents`, `refunds`, `requests`) of the sim at `sim`.
pub async fn sim_held(http: &reqwest::Client, sim: SocketAddr, what: &str) -> Vec<Value> {
    let body: Value = http
        .get(format!("http://{sim}/_sim/{what}"))
        .send()
        .await
        .expect("sim request")
        .json()
        .await
        .expect("sim json");
    body["data"].as_array().cloned().unwrap_or_default()
}

impl Stack {
    /// Starts a broker and a stripe-sim in this runtime and a worker on its own thread.
    pub async fn spawn(name: &str) -> Self {
        crate::logs::install();
        let temporal = dev_server();
        let mut stops = Vec::new();

        let sim_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stripe-sim");
        let sim = sim_listener.local_addr().expect("stripe-sim address");
        let (stop, stopped) = oneshot::channel::<()>();
        stops.push(stop);
        tokio::spawn(stripe_sim::run(sim_listener, async {
            stopped.await.ok();
        }));

        let db = tempfile::tempdir().expect("temp dir");
        let mut config = keylease_broker::BrokerConfig::new(
            ADMIN_TOKEN.into(),
            STRIPE_SECRET.into(),
            format!("http://{sim}").parse().expect("sim url"),
        );
        config.db = keylease_broker::config::DatabaseConfig::new(&format!(
            "sqlite://{}/broker.db",
            db.path().display()
        ));
        let broker_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind broker");
        let broker = broker_listener.local_addr().expect("broker address");
        let (stop, stopped) = oneshot::channel::<()>();
        stops.push(stop);
        tokio::spawn(keylease_broker::run(broker_listener, config, async {
            stopped.await.ok();
        }));
        with_worker_role(&format!("http://{broker}")).await;

        let task_queue = unique(&format!("e2e-{name}"));
        let temporal_args = temporal_args(&temporal.address, &task_queue);
        let client = keylease_worker::connect::temporal_client(&temporal_args)
            .await
            .expect("temporal client");
        let worker_metrics = keylease_testkit::ports::free_addr();
        let worker_config = WorkerConfig {
            temporal: temporal_args,
            broker_url: format!("http://{broker}").parse().expect("broker url"),
            proxy_url: format!("http://{broker}/stripe")
                .parse()
                .expect("proxy url"),
            broker_token: WORKER_TOKEN.into(),
            transport: Default::default(),
            identity: None,
            max_concurrent_activities: 10,
            broker_max_ttl: Duration::from_secs(86_400),
            shutdown_grace: Duration::from_secs(5),
            revoke_budget: Duration::from_secs(2),
            refund_overdue_after: Duration::from_secs(15 * 60),
            metrics_addr: Some(worker_metrics),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        stops.push(stop);
        let worker = std::thread::spawn(move || run_worker_thread(worker_config, stopped));
        Self {
            temporal,
            broker,
            sim,
            task_queue,
            worker_metrics,
            client,
            http: reqwest::Client::new(),
            _db: db,
            stops,
            worker: Some(worker),
        }
    }

    /// Starts a checkout under `workflow_id` on this test's task queue.
    pub async fn start(&self, workflow_id: &str, input: CheckoutInput) -> CheckoutHandle {
        self.client
            .start_workflow(
                CheckoutWorkflow::run,
                input.into(),
                WorkflowStartOptions::new(self.task_queue.clone(), workflow_id.to_owned()).build(),
            )
            .await
            .expect("start checkout");
        self.client
            .get_workflow_handle::<CheckoutWorkflow>(workflow_id)
    }

    /// `GET` on the broker's admin API.
    pub async fn broker_get(&self, path_and_query: &str) -> Value {
        broker_get(&self.http, self.broker, path_and_query).await
    }

    /// The broker's keys whose label starts with `temporal-<workflow_id>-`.
    pub async fn keys_of(&self, workflow_id: &str) -> Vec<Value> {
        self.keys_at(self.broker, workflow_id).await
    }

    /// [`Stack::keys_of`], asked of another broker (a [`keylease_testkit::BrokerProcess`]).
    pub async fn keys_at(&self, broker: SocketAddr, workflow_id: &str) -> Vec<Value> {
        let path = format!("/v1/keys?label_prefix=temporal-{workflow_id}-");
        let body = broker_get(&self.http, broker, &path).await;
        body["keys"].as_array().cloned().unwrap_or_default()
    }

    /// A key's lifetime in seconds, from the broker's `created_at` and `expires_at`.
    pub fn key_ttl_seconds(key: &Value) -> f64 {
        let at = |field: &str| {
            chrono::DateTime::parse_from_rfc3339(key[field].as_str().expect("a timestamp"))
                .expect("RFC 3339")
        };
        (at("expires_at") - at("created_at")).num_milliseconds() as f64 / 1000.0
    }

    /// Runs the Temporal CLI against the dev server; returns its exit status and output.
    pub fn temporal_cli(&self, args: &[&str]) -> (bool, String) {
        let output = std::process::Command::new(crate::temporal::temporal_bin())
            .args(args)
            .args(["--address", &self.temporal.address])
            .output()
            .expect("run the Temporal CLI");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    /// Stages a stripe-sim fault; returns it as staged (its `id` names it in `/_sim/requests`).
    pub async fn fault(&self, spec: Value) -> Value {
        let response = self
            .http
            .post(format!("http://{}/_sim/faults", self.sim))
            .json(&spec)
            .send()
            .await
            .expect("fault");
        assert_eq!(response.status(), 201, "fault refused: {spec}");
        response.json().await.expect("the staged fault")
    }

    /// Saves a workflow's history for the replay test when `KEYLEASE_RECORD_HISTORIES` names a folder.
    pub async fn record_history(&self, handle: &CheckoutHandle, name: &str) {
        let Some(dir) = std::env::var_os("KEYLEASE_RECORD_HISTORIES") else {
            return;
        };
        let json = handle
            .fetch_history(WorkflowFetchHistoryOptions::default())
            .to_json()
            .await
            .expect("history json");
        let path = PathBuf::from(dir).join(format!("{name}.json"));
        std::fs::write(&path, json).expect("write history");
    }

    /// A checkout's whole history as text: its JSON, then every payload decoded
    /// (payload data is base64 in the JSON, where a search would never see it).
    pub async fn history_text(&self, handle: &CheckoutHandle) -> String {
        let json = handle
            .fetch_history(WorkflowFetchHistoryOptions::default())
            .to_json()
            .await
            .expect("history json");
        let history: Value = serde_json::from_slice(&json).expect("history is JSON");
        let mut text = String::from_utf8_lossy(&json).into_owned();
        decode_payloads(&history, &mut text);
        text
    }

    /// Stops the worker (letting running activities finish) and the servers.
    pub async fn stop(mut self) {
        for stop in self.stops.drain(..).rev() {
            let _ = stop.send(());
        }
        if let Some(worker) = self.worker.take() {
            let result = tokio::task::spawn_blocking(move || worker.join())
                .await
                .expect("join worker thread");
            result
                .expect("worker thread panicked")
                .expect("worker stopped with an error");
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}

/// Appends the decoded `data` of every payload under `value` to `text`.
fn decode_payloads(value: &Value, text: &mut String) {
    use base64::Engine;
    match value {
        Value::Object(fields) => {
            if let (Some(Value::String(data)), Some(_)) =
                (fields.get("data"), fields.get("metadata"))
                && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data)
            {
                text.push('\n');
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
            fields.values().for_each(|v| decode_payloads(v, text));
        }
        Value::Array(items) => items.iter().for_each(|v| decode_payloads(v, text)),
        _ => {}
    }
}

fn run_worker_thread(
    config: WorkerConfig,
    stopped: oneshot::Receiver<()>,
) -> Result<(), WorkerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|err| WorkerError::Run(err.to_string()))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(
        &runtime,
        keylease_worker::run_worker(config, async {
            stopped.await.ok();
        }),
    )
}
