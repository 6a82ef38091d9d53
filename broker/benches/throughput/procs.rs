//! The processes under test: stripe-sim and the real `keylease-broker`
//! binary, each a process of its own as in production, and their databases.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the environment of the bench's own executable re-run as stripe-sim.
pub const ROLE_VAR: &str = "KEYLEASE_BENCH_ROLE";

/// The Stripe secret the broker forwards with, and direct calls use.
pub const STRIPE_SECRET: &str = "sk_test_bench_5f1e0c2a";

/// The broker's admin token.
pub const ADMIN_TOKEN: &str = "bench-admin-token-8c41d7e2b9a05f36";

/// A child process, killed when dropped.
pub struct Process {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Process {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In the re-run executable: serves stripe-sim, printing its address first.
pub fn serve_stripe_sim() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stripe-sim");
        println!("{}", listener.local_addr().expect("address"));
        stripe_sim::run(listener, std::future::pending())
            .await
            .expect("stripe-sim");
    });
}

/// stripe-sim in a process of its own (this executable, re-run), without log output.
pub fn spawn_stripe_sim() -> Process {
    let mut child = Command::new(std::env::current_exe().expect("own executable"))
        .env(ROLE_VAR, "stripe-sim")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stripe-sim");
    let stdout = child.stdout.take().expect("stripe-sim stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("stripe-sim address");
    let addr = line.trim().parse().expect("stripe-sim prints its address");
    Process { child, addr }
}

/// The broker binary under test: this build's, or `KEYLEASE_BENCH_BROKER_BIN`
/// (a copy of another build's, to compare two builds in one sitting).
pub fn broker_binary() -> String {
    std::env::var("KEYLEASE_BENCH_BROKER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_keylease-broker").to_owned())
}

/// The release `keylease-broker` binary on `database_url`, forwarding to `upstream`,
/// logging JSON lines at `info` (to nowhere: the cost of formatting them stays).
pub async fn spawn_broker(database_url: &str, upstream: SocketAddr) -> Process {
    spawn_broker_with(database_url, upstream, &[]).await
}

/// [`spawn_broker`] with more settings (`KEYLEASE_BROKER_…` variables).
pub async fn spawn_broker_with(
    database_url: &str,
    upstream: SocketAddr,
    settings: &[(&str, String)],
) -> Process {
    let addr = keylease_testkit::ports::free_addr();
    let child = Command::new(broker_binary())
        .envs(settings.iter().map(|(name, value)| (*name, value.as_str())))
        .env("KEYLEASE_BROKER_LISTEN", addr.to_string())
        .env("KEYLEASE_BROKER_DATABASE_URL", database_url)
        .env("KEYLEASE_BROKER_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("KEYLEASE_STRIPE_SECRET_KEY", STRIPE_SECRET)
        .env("KEYLEASE_STRIPE_API_BASE", format!("http://{upstream}"))
        .env("KEYLEASE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn keylease-broker");
    let process = Process { child, addr };
    let deadline = Instant::now() + Duration::from_secs(30);
    let http = reqwest::Client::new();
    loop {
        let health = http.get(format!("http://{addr}/healthz")).send().await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return process;
        }
        assert!(Instant::now() < deadline, "the broker did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A database of the bench's own: a SQLite file in `dir`, or a new
/// PostgreSQL database on the tests' server, dropped with the guard.
pub async fn fresh_database(
    backend: &str,
    dir: &Path,
) -> (String, Option<keylease_testkit::postgres::TestDatabase>) {
    match backend {
        "sqlite" => (
            format!("sqlite://{}/bench-{}.db", dir.display(), std::process::id()),
            None,
        ),
        "postgres" => {
            let database = keylease_testkit::postgres::TestDatabase::create("keylease_bench").await;
            (database.url().to_owned(), Some(database))
        }
        other => panic!("unknown backend {other}: sqlite or postgres"),
    }
}
