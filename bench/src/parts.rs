//! The bench's processes, and what `/proc` says of them: CPU time and peak
//! resident memory, per process, so each part's cost is its own. The machine
//! itself is described by the testkit's `machine`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use keylease_testkit::bins::bin_dir;
use keylease_testkit::eventually;
use keylease_testkit::ports::free_addr;
use keylease_testkit::process::terminate;
use tokio::process::{Child, Command};

/// A process of the bench's own (stripe-sim or the baseline worker),
/// logging to a file in the bench's temp dir, killed if the bench dies.
pub struct Part {
    child: Child,
    /// What it is, for messages.
    pub name: &'static str,
}

impl Part {
    /// Starts `bin` (a binary next to this one) with `args` and `env` only.
    pub fn spawn(
        name: &'static str,
        bin: &str,
        args: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let path = bin_dir().join(bin);
        if !path.exists() {
            bail!(
                "no {}: build the workspace's release binaries first (`make bench-checkout` does)",
                path.display()
            );
        }
        let file = std::fs::File::create(log).with_context(|| format!("{}", log.display()))?;
        let child = Command::new(path)
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {name}"))?;
        Ok(Self { child, name })
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child
            .id()
            .with_context(|| format!("{} has exited", self.name))
    }

    /// SIGTERM, then waits up to 30 s for it to exit.
    pub async fn stop(mut self) {
        terminate(&mut self.child, Duration::from_secs(30)).await;
    }
}

/// stripe-sim on a free port, logging warnings only (it stands in for
/// Stripe, whose cost is not Keylease's); returns once it answers.
pub async fn spawn_sim(dir: &Path) -> anyhow::Result<(Part, SocketAddr)> {
    let addr = free_addr();
    let listen = addr.to_string();
    let sim = Part::spawn(
        "stripe-sim",
        "stripe-sim",
        &["--listen", &listen, "--log-format", "json"],
        &[("RUST_LOG", "warn")],
        &dir.join("stripe-sim.log"),
    )?;
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(30), "stripe-sim serving", || async {
        let answer = http.get(format!("http://{addr}/_sim/faults")).send().await;
        answer.is_ok_and(|a| a.status().is_success()).then_some(())
    })
    .await;
    Ok((sim, addr))
}

/// CPU time (user + system, all threads) a process has used so far.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // the fields after its closing parenthesis start at field 3.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("no command name in /proc/<pid>/stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |field: usize| -> anyhow::Result<u64> {
        // Field n is at index n - 3.
        Ok(fields
            .get(field - 3)
            .context("short /proc/<pid>/stat")?
            .parse()?)
    };
    let (utime, stime) = (ticks(14)?, ticks(15)?);
    Ok(Duration::from_secs_f64(
        (utime + stime) as f64 / clock_ticks_per_second() as f64,
    ))
}

/// Time the threads of a process alive now have spent runnable but waiting
/// for a core (the second field of each `/proc/<pid>/task/<tid>/schedstat`,
/// in nanoseconds; a thread that has ended is not counted).
pub fn run_queue_wait(pid: u32) -> anyhow::Result<Duration> {
    let mut waited = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("/proc/{pid}/task"))?
    {
        // A thread may end between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(task?.path().join("schedstat")) else {
            continue;
        };
        waited += stat
            .split_whitespace()
            .nth(1)
            .context("short schedstat")?
            .parse::<u64>()?;
    }
    Ok(Duration::from_nanos(waited))
}

/// Peak resident memory of a process so far (`VmHWM`), in bytes.
pub fn peak_rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .context("no VmHWM in /proc/<pid>/status")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib * 1024)
}

/// `getconf CLK_TCK`: the unit of `/proc/<pid>/stat`'s times (100 on Linux as built today).
fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100)
    })
}
