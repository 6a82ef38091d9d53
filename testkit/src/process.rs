//! Child processes: stopping one as compose stops a container, and running
//! a binary that must refuse to start.

use std::process::{ExitStatus, Output};
use std::time::Duration;

use tokio::process::{Child, Command};

/// SIGTERM (how compose stops a container), then waits up to `within` for
/// `child` to exit; its exit status, or `None` when it is still running.
pub async fn terminate(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    if let Some(pid) = child.id() {
        // A failure to signal shows as a process that does not exit.
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    tokio::time::timeout(within, child.wait())
        .await
        .ok()
        .and_then(Result::ok)
}

/// Runs a binary that should refuse at start, and returns what it printed;
/// panics when it runs instead (it is stopped after 15 s).
pub async fn run_refusing(command: &mut Command) -> Output {
    command.kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(15), command.output())
        .await
        .expect("refuses at start instead of running")
        .expect("start the binary")
}
