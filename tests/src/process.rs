//! The worker binary as a child process, for tests that kill it; how the
//! stack's broker binary is started; stripe-sim as a process; and a fault
//! switch in front of the broker's key API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use keylease_testkit::BrokerSettings;
use keylease_testkit::bins::binary;
use keylease_testkit::ports::free_addr;
use keylease_testkit::process::terminate;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::stack::{ADMIN_TOKEN, STRIPE_SECRET, Stack, WORKER_TOKEN};

/// `keylease-broker` as the stack's: this build's binary, the stack's
/// secrets, logging `info,keylease_broker=debug`.
pub fn broker_settings() -> BrokerSettings {
    BrokerSettings::new(binary("keylease-broker"), ADMIN_TOKEN, STRIPE_SECRET)
}

/// `stripe-sim` as a child process on a free port, logging to a file: what
/// a test that runs outside clients (Stripe's own libraries) points them at.
pub struct SimProcess {
    _child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its stderr.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl SimProcess {
    /// Starts this build's binary and waits until its control API answers.
    pub async fn spawn() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("stripe-sim.log");
        let file = std::fs::File::create(&log).expect("stripe-sim log");
        let addr = free_addr();
        let mut child = Command::new(binary("stripe-sim"))
            .args(["--listen", &addr.to_string()])
            .env_clear()
            .env("RUST_LOG", "info")
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("start stripe-sim");
        let url = format!("http://{addr}/_sim/faults");
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        while !reqwest::get(&url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            if let Ok(Some(status)) = child.try_wait() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("stripe-sim exited ({status}):\n{text}");
            }
            assert!(
                tokio::time::Instant::now() < until,
                "stripe-sim at {addr} not serving within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            _child: child,
            addr,
            log,
            _dir: dir,
        }
    }

    /// `http://<addr>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// `keylease-worker run` on a task queue of the test's, logging JSON to a file.
pub struct WorkerProcess {
    child: Child,
    /// Its `/metrics`.
    pub metrics: SocketAddr,
    /// Its stdout and stderr.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl WorkerProcess {
    /// Starts the binary against the stack's dev server; `broker_url` is the
    /// key API (the stack's broker, or a [`FaultyKeyApi`] in front of it).
    pub fn spawn(stack: &Stack, task_queue: &str, broker_url: &str, env: &[(&str, &str)]) -> Self {
        let proxy_url = format!("http://{}/stripe", stack.broker);
        Self::spawn_at(
            &stack.temporal.address,
            task_queue,
            broker_url,
            &proxy_url,
            env,
        )
    }

    /// Starts the binary against the dev server at `temporal_address`, with
    /// `broker_url` as its key API and `proxy_url` as its Stripe proxy.
    pub fn spawn_at(
        temporal_address: &str,
        task_queue: &str,
        broker_url: &str,
        proxy_url: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("worker.log");
        let file = std::fs::File::create(&log).expect("worker log");
        let metrics = free_addr();
        let child = Command::new(binary("keylease-worker"))
            .arg("run")
            .env_clear()
            .env("TEMPORAL_ADDRESS", temporal_address)
            .env("KEYLEASE_TASK_QUEUE", task_queue)
            .env("KEYLEASE_BROKER_URL", broker_url)
            .env("KEYLEASE_PROXY_URL", proxy_url)
            .env("KEYLEASE_BROKER_TOKEN", WORKER_TOKEN)
            .env("KEYLEASE_METRICS_ADDR", metrics.to_string())
            .env("KEYLEASE_LOG_FORMAT", "json")
            .env(
                "RUST_LOG",
                "info,keylease_activities=debug,keylease_worker=debug",
            )
            .envs(env.iter().copied())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("start keylease-worker");
        Self {
            child,
            metrics,
            log,
            _dir: dir,
        }
    }

    /// `kill -9`: the process gets no chance to revoke or report anything.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill -9 the worker");
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM, then waits up to 30 s for the process to exit.
    pub async fn stop(mut self) {
        terminate(&mut self.child, Duration::from_secs(30)).await;
    }

    /// Everything it has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One value of its `/metrics`, 0 when absent.
    pub async fn metric(&self, name: &str) -> f64 {
        let [value] = self.metrics_of([name]).await;
        value
    }

    /// Values of its `/metrics` from one scrape, so that they agree; 0 when absent.
    pub async fn metrics_of<const N: usize>(&self, names: [&str; N]) -> [f64; N] {
        let text = reqwest::get(format!("http://{}/metrics", self.metrics))
            .await
            .expect("worker metrics")
            .text()
            .await
            .unwrap_or_default();
        names.map(|name| {
            text.lines()
                .find_map(|line| {
                    let (metric, value) = line.split_once(' ')?;
                    (metric == name).then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0.0)
        })
    }
}

/// An HTTP relay in front of the broker's key API that answers
/// `DELETE /v1/keys/…` itself with a 503 while failing: the broker's revoke
/// endpoint refusing, as an outage in front of it would. Every other call is
/// passed to the broker as it came.
pub struct FaultyKeyApi {
    /// Where the worker should send key API calls.
    pub addr: SocketAddr,
    relay: Arc<Relay>,
}

struct Relay {
    broker: SocketAddr,
    http: reqwest::Client,
    failing: AtomicBool,
    refused: AtomicUsize,
}

impl FaultyKeyApi {
    /// Starts relaying to `broker`.
    pub async fn spawn(broker: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let relay = Arc::new(Relay {
            broker,
            http: reqwest::Client::new(),
            failing: AtomicBool::new(false),
            refused: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(relay.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, relay }
    }

    /// Starts or stops refusing revocations.
    pub fn fail_revocations(&self, on: bool) {
        self.relay.failing.store(on, Ordering::SeqCst);
    }

    /// Revocations refused so far.
    pub fn refused(&self) -> usize {
        self.relay.refused.load(Ordering::SeqCst)
    }
}

async fn forward(
    axum::extract::State(relay): axum::extract::State<Arc<Relay>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    if relay.failing.load(Ordering::SeqCst)
        && parts.method == axum::http::Method::DELETE
        && parts.uri.path().starts_with("/v1/keys/")
    {
        relay.refused.fetch_add(1, Ordering::SeqCst);
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "application/json")],
            r#"{"error":{"code":"unavailable","message":"revocation refused by the test"}}"#,
        )
            .into_response();
    }
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut upstream = relay
        .http
        .request(parts.method, format!("http://{}{path}", relay.broker))
        .body(body);
    for name in ["authorization", "content-type"] {
        if let Some(value) = parts.headers.get(name) {
            upstream = upstream.header(name, value);
        }
    }
    match upstream.send().await {
        Ok(answer) => {
            let status = answer.status();
            let content_type = answer
                .headers()
                .get("content-type")
                .cloned()
                .unwrap_or(axum::http::HeaderValue::from_static("application/json"));
            let bytes = answer.bytes().await.unwrap_or_default();
            (status, [("content-type", content_type)], bytes).into_response()
        }
        Err(_) => axum::http::StatusCode::BAD_GATEWAY.into_response(),
    }
}
