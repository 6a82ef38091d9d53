//! The machine a bench ran on, as its report states it, read from `/proc`.

/// Cores, CPU model and memory: `4 cores (AMD EPYC …), 15.6 GiB memory`.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("model name"))?;
            Some(line.split_once(':')?.1.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cores} cores ({cpu}), {memory} memory")
}

/// The 1-, 5- and 15-minute load averages, `unknown` where `/proc` does not say.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Median time of a one-row durable commit in SQLite as the broker opens it
/// (WAL, `synchronous` at its default FULL) in `dir`: the fsync probe, the
/// floor of a request that waits for its write to be on disk.
pub async fn sqlite_commit_median_ms(dir: &std::path::Path) -> f64 {
    sqlite_commit_median_ms_after(dir, std::time::Duration::ZERO, 200).await
}

/// [`sqlite_commit_median_ms`] of `samples` commits, each after `idle` with
/// nothing done: the floor of a durable write on a machine that was idle
/// (on a VM, a disk flush and a CPU woken from idle cost more than back to
/// back; issue 24's lease at concurrency 1 waits between its writes).
pub async fn sqlite_commit_median_ms_after(
    dir: &std::path::Path,
    idle: std::time::Duration,
    samples: usize,
) -> f64 {
    use sqlx::{ConnectOptions, Executor};
    let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.join("commit-probe.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .connect()
        .await
        .expect("commit probe");
    connection
        .execute("CREATE TABLE IF NOT EXISTS probe (n INTEGER)")
        .await
        .expect("probe table");
    let mut times = Vec::new();
    for n in 0..samples {
        if !idle.is_zero() {
            tokio::time::sleep(idle).await;
        }
        let started = std::time::Instant::now();
        sqlx::query("INSERT INTO probe (n) VALUES (?1)")
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .execute(&mut connection)
            .await
            .expect("probe insert");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
