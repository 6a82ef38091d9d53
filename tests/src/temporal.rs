//! The Temporal dev server from `scripts/install-temporal.sh`, one per test
//! binary, shared by every test (each uses its own task queue and ids), and
//! a dedicated one on a database file for a test that stops and restarts it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use keylease_testkit::ports::free_port;

/// A running dev server, with the search attribute `OrderId` (Keyword) that checkouts set.
#[derive(Debug)]
pub struct DevServer {
    /// `127.0.0.1:port` of its frontend.
    pub address: String,
    /// The watchdog shell owning the server; it exits with this process.
    _watchdog: std::process::Child,
}

/// The Temporal CLI: `KEYLEASE_TEMPORAL_BIN`, else the project-local install.
pub fn temporal_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("KEYLEASE_TEMPORAL_BIN") {
        return PathBuf::from(path);
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/temporal");
    assert!(
        path.exists(),
        "no Temporal CLI at {}: run scripts/install-temporal.sh (make test does)",
        path.display()
    );
    path
}

/// The shared dev server, started on first use.
pub fn dev_server() -> &'static DevServer {
    static SERVER: OnceLock<DevServer> = OnceLock::new();
    SERVER.get_or_init(start)
}

fn start() -> DevServer {
    let ports = [free_port(), free_port(), free_port()];
    // The server's own log goes to a file, out of the test output.
    let log = std::env::temp_dir().join(format!("keylease-temporal-{}.log", std::process::id()));
    let watchdog = launch(ports, None, &log, true);
    let address = format!("127.0.0.1:{}", ports[0]);
    wait_healthy(&address);
    DevServer {
        address,
        _watchdog: watchdog,
    }
}

/// A dev server of one test's own on a database file, which the test stops
/// and starts again on the same ports and file; the shared one is never disturbed.
pub struct DedicatedDevServer {
    /// `127.0.0.1:port` of its frontend, the same across restarts.
    pub address: String,
    ports: [u16; 3],
    db: PathBuf,
    log: PathBuf,
    watchdog: Option<std::process::Child>,
    /// Whether it starts with `OrderId` registered, as the shared one does.
    order_id: bool,
    _dir: tempfile::TempDir,
}

impl DedicatedDevServer {
    /// Starts a dev server on free ports and a new database file; returns once healthy.
    pub fn spawn() -> Self {
        Self::spawn_with(true)
    }

    /// [`DedicatedDevServer::spawn`] as the Temporal docs start one: without
    /// the `OrderId` search attribute registered.
    pub fn spawn_plain() -> Self {
        Self::spawn_with(false)
    }

    fn spawn_with(order_id: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports = [free_port(), free_port(), free_port()];
        let mut server = Self {
            address: format!("127.0.0.1:{}", ports[0]),
            ports,
            db: dir.path().join("temporal.db"),
            log: dir.path().join("temporal.log"),
            watchdog: None,
            order_id,
            _dir: dir,
        };
        server.start();
        server
    }

    /// Starts it (again) on its ports and database file; returns once healthy.
    pub fn start(&mut self) {
        assert!(self.watchdog.is_none(), "the dev server is already running");
        self.watchdog = Some(launch(self.ports, Some(&self.db), &self.log, self.order_id));
        wait_healthy(&self.address);
    }

    /// SIGTERM to the server; returns once it has exited and let go of its file.
    pub fn stop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &watchdog.id().to_string()])
                .status();
            let _ = watchdog.wait();
        }
    }
}

impl Drop for DedicatedDevServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `temporal server start-dev` on `[frontend, http, metrics]` ports,
/// in memory or on `db`, logging to `log`; returns the watchdog shell owning it.
fn launch(ports: [u16; 3], db: Option<&Path>, log: &Path, order_id: bool) -> std::process::Child {
    let [port, http_port, metrics_port] = ports;
    let bin = temporal_bin();
    let db = db.map_or(String::new(), |db| {
        format!("--db-filename '{}'", db.display())
    });
    // A watchdog shell owns the server: it stops it when this test process
    // is gone, however the tests end, or when the shell gets SIGTERM.
    let script = format!(
        "'{bin}' server start-dev --headless --ip 127.0.0.1 --port {port} --http-port {http_port} \
         --metrics-port {metrics_port} {db} {attribute} --log-level error & server=$!; \
         trap 'kill $server 2>/dev/null; wait $server; exit 0' TERM; \
         while kill -0 {test_pid} 2>/dev/null && kill -0 $server 2>/dev/null; do sleep 1; done; \
         kill $server 2>/dev/null; wait $server",
        bin = bin.display(),
        attribute = if order_id {
            "--search-attribute OrderId=Keyword"
        } else {
            ""
        },
        test_pid = std::process::id(),
    );
    // Appended to, so a restarted server's log follows the first one's.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the dev server's log");
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("start the Temporal dev server")
}

/// Polls the frontend's health until it serves: a listening port is not a ready server.
fn wait_healthy(address: &str) {
    let bin = temporal_bin();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let healthy = Command::new(&bin)
            .args(["operator", "cluster", "health", "--address", address])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if healthy {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the Temporal dev server at {address} was not healthy within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
