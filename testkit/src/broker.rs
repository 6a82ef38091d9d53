//! `keylease-broker` as a child process, run as an operator runs it, on a
//! port it keeps across restarts, logging JSON to a file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::ports::free_addr;
use crate::process::terminate;

/// How to start a broker process: its binary, its secrets, what it logs.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// The `keylease-broker` binary.
    pub binary: PathBuf,
    /// Its `KEYLEASE_BROKER_ADMIN_TOKEN`.
    pub admin_token: String,
    /// Its `KEYLEASE_STRIPE_SECRET_KEY`.
    pub stripe_secret: String,
    /// Its `RUST_LOG`.
    pub log_filter: String,
    /// Whether it also serves Stripe's API at the root of an address of its
    /// own (`--stripe-listen`), as Stripe's libraries need.
    pub stripe_listen: bool,
}

impl BrokerSettings {
    /// `binary` with these secrets, logging `info,keylease_broker=debug`.
    pub fn new(binary: impl Into<PathBuf>, admin_token: &str, stripe_secret: &str) -> Self {
        Self {
            binary: binary.into(),
            admin_token: admin_token.to_owned(),
            stripe_secret: stripe_secret.to_owned(),
            log_filter: "info,keylease_broker=debug".to_owned(),
            stripe_listen: false,
        }
    }

    /// The same, also serving Stripe's API at the root of a free address
    /// ([`BrokerProcess::stripe_root`]).
    pub fn stripe_listen(mut self) -> Self {
        self.stripe_listen = true;
        self
    }

    /// The same, logging what `filter` (a `RUST_LOG` value) lets through.
    pub fn log_filter(mut self, filter: &str) -> Self {
        filter.clone_into(&mut self.log_filter);
        self
    }
}

/// `keylease-broker` as a child process in front of `upstream`, on a port
/// it keeps across [`BrokerProcess::restart`]: a worker is configured with
/// the broker's URL, so a restarted broker must answer where the old one did.
pub struct BrokerProcess {
    child: Child,
    /// Where it listens (key API at `/v1`, proxy at `/stripe`).
    pub addr: SocketAddr,
    /// Its `--stripe-listen` address (Stripe's API at the root), when
    /// [`BrokerSettings::stripe_listen`] asked for one.
    pub stripe_root: Option<SocketAddr>,
    settings: BrokerSettings,
    database_url: String,
    upstream: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl BrokerProcess {
    /// Starts the binary on a free port and `database_url`, and waits until it serves.
    pub async fn spawn(settings: BrokerSettings, upstream: SocketAddr, database_url: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = free_addr();
        let log = dir.path().join("broker.log");
        let stripe_root = settings.stripe_listen.then(free_addr);
        let mut broker = Self {
            child: start(&settings, addr, stripe_root, upstream, database_url, &log),
            addr,
            stripe_root,
            settings,
            database_url: database_url.to_owned(),
            upstream,
            log,
            _dir: dir,
        };
        broker.ready().await;
        broker
    }

    /// `http://<addr>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Polls the key API until it answers; panics if the process exits first.
    async fn ready(&mut self) {
        let http = reqwest::Client::new();
        let url = format!("{}/v1/keys?label_prefix=ready-", self.base());
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("keylease-broker exited ({status}):\n{}", self.log_text());
            }
            let answer = http
                .get(&url)
                .bearer_auth(&self.settings.admin_token)
                .send()
                .await;
            if answer.is_ok_and(|a| a.status().is_success()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "keylease-broker at {} not serving within 30 s",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`: no shutdown, no flush; reservations in flight stay as they are.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill -9 the broker");
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Starts the binary again on the same port and database, and waits until it serves.
    pub async fn restart(&mut self) {
        self.child = start(
            &self.settings,
            self.addr,
            self.stripe_root,
            self.upstream,
            &self.database_url,
            &self.log,
        );
        self.ready().await;
    }

    /// SIGTERM, then waits up to 30 s for the process to exit; its exit
    /// status, `None` if it is still running.
    pub async fn stop(&mut self) -> Option<ExitStatus> {
        terminate(&mut self.child, Duration::from_secs(30)).await
    }

    /// Everything every run of it has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn start(
    settings: &BrokerSettings,
    listen: SocketAddr,
    stripe_root: Option<SocketAddr>,
    upstream: SocketAddr,
    database_url: &str,
    log: &Path,
) -> Child {
    assert!(
        settings.binary.exists(),
        "no {}: run `cargo build --workspace` (make test does)",
        settings.binary.display()
    );
    // Appended to, so the log holds every run of the broker.
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("broker log");
    let mut command = Command::new(&settings.binary);
    command.args(["--listen", &listen.to_string(), "--log-format", "json"]);
    if let Some(root) = stripe_root {
        command.args(["--stripe-listen", &root.to_string()]);
    }
    command
        .env_clear()
        .env("RUST_LOG", &settings.log_filter)
        .env("KEYLEASE_BROKER_ADMIN_TOKEN", &settings.admin_token)
        .env("KEYLEASE_STRIPE_SECRET_KEY", &settings.stripe_secret)
        .env("KEYLEASE_STRIPE_API_BASE", format!("http://{upstream}"))
        .env("KEYLEASE_BROKER_DATABASE_URL", database_url)
        .stdout(file.try_clone().expect("log handle"))
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .expect("start keylease-broker")
}
