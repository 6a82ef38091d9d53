//! Retention under load (issue 25): `cargo bench -p keylease-broker --bench retention`.
//!
//! 1. A SQLite broker holding 2,000,000 audit rows and 200,000 keys
//!    (generated: half of each past retention, with a spend row per old
//!    key) serves the throughput bench's GET load (32 connections, a key
//!    each) first without tidy, then while its background tidy deletes the
//!    old half; the p99 of both windows, and the rows tidy deleted in the
//!    second, are printed.
//! 2. A fresh broker with a 30 s audit retention and a 5 s tidy interval
//!    serves the same load for `BENCH_STEADY_SECONDS` (default 120): the
//!    SQLite file's size (main file and WAL) and the audit rows every
//!    10 s show whether the file stops growing once retention is reached.
//!
//! Settings (environment): `BENCH_SECONDS` (each measured window, default
//! 10), `BENCH_STEADY_SECONDS`, `BENCH_SQLITE_DIR` (as the throughput bench).

#[allow(dead_code)] // shared with the throughput bench, which uses all of it
#[path = "throughput/load.rs"]
mod load;
#[allow(dead_code)] // shared with the throughput bench, which uses all of it
#[path = "throughput/procs.rs"]
mod procs;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, Executor};

use keylease_testkit::machine::{load_average, machine};
use load::{Op, Stats};
use procs::{ADMIN_TOKEN, Process};

const DAY_MS: i64 = 86_400_000;

/// Generated rows: audit rows and keys, half of each past retention.
const AUDIT_ROWS: i64 = 2_000_000;
const KEYS: i64 = 200_000;

/// Fills the migrated SQLite file at `url` with the generated rows.
async fn generate(url: &str) {
    let mut db = sqlx::SqliteConnection::connect(url).await.expect("open");
    let now = chrono::Utc::now().timestamp_millis();
    let old = now - 100 * DAY_MS;
    let recent = now - DAY_MS;
    let half_keys = KEYS / 2;
    let half_audit = AUDIT_ROWS / 2;
    let statements = [
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {KEYS})
             INSERT INTO keys (id, token_hash, label, vendor, daily_cap_micros, allowed_endpoints, metadata,
                               created_at, expires_at, namespace)
             SELECT 'key_gen' || i, 'hash_gen' || i, 'temporal-gen-' || i, 'stripe', 1000000, '[]', '{{}}',
                    CASE WHEN i <= {half_keys} THEN {old} ELSE {now} END,
                    CASE WHEN i <= {half_keys} THEN {old} + 3600000 ELSE {now} + 86400000 END,
                    'temporal-gen-' || i
             FROM n"
        ),
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {half_keys})
             INSERT INTO spend (key_id, period, micros) SELECT 'key_gen' || i, 'life', 1000000 FROM n"
        ),
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {AUDIT_ROWS})
             INSERT INTO audit (at, key_id, label, vendor, method, path, status, reserved_micros, latency_ms, requests)
             SELECT CASE WHEN i <= {half_audit} THEN {old} ELSE {recent} END + i / 1000,
                    'key_gen' || (1 + i % {KEYS}), 'temporal-gen-' || (1 + i % {KEYS}), 'stripe', 'GET',
                    '/v1/payment_intents/pi_gen', 200, 0, 1, 1
             FROM n"
        ),
    ];
    let started = Instant::now();
    for statement in statements {
        db.execute(sqlx::AssertSqlSafe(statement))
            .await
            .expect("generate rows");
    }
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        .await
        .expect("checkpoint");
    println!(
        "generated {AUDIT_ROWS} audit rows and {KEYS} keys in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The throughput bench's GET load: 32 keys, a PaymentIntent each, read again and again.
async fn get_ops(broker: SocketAddr, connections: usize) -> Vec<Op> {
    let http = reqwest::Client::new();
    let mut ops = Vec::new();
    for i in 0..connections {
        let issued: Value = http
            .post(format!("http://{broker}/v1/keys"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({
                "label": format!("temporal-bench-get-{i}"), "vendor": "stripe", "daily_usd_cap": 1_000_000,
                "allowed_endpoints": ["POST /v1/payment_intents", "GET /v1/payment_intents/*"],
                "expires_in": 3600,
            }))
            .send()
            .await
            .expect("issue")
            .json()
            .await
            .expect("key");
        let token = issued["token"].as_str().expect("token").to_owned();
        let created: Value = http
            .post(format!("http://{broker}/stripe/v1/payment_intents"))
            .bearer_auth(&token)
            .form(&[("amount", "100"), ("currency", "usd")])
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("PaymentIntent");
        ops.push(Op::Request {
            method: Method::GET,
            path: format!(
                "/stripe/v1/payment_intents/{}",
                created["id"].as_str().expect("id")
            ),
            token,
            form: None,
            expect: StatusCode::OK,
        });
    }
    ops
}

/// A metric's value for `table` in the broker's `/metrics`.
async fn metric(broker: SocketAddr, name: &str, table: &str) -> u64 {
    let text = reqwest::get(format!("http://{broker}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let prefix = format!("{name}{{table=\"{table}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

fn file_mb(database: &Path) -> f64 {
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
    let wal = database.with_extension("db-wal");
    (size(database) + size(&wal)) as f64 / 1e6
}

fn row(name: &str, stats: &Stats) {
    println!(
        "| {name} | {:.0} | {:.2} ms | {:.2} ms | {} |",
        stats.rate(),
        stats.quantile_ms(0.5),
        stats.quantile_ms(0.99),
        stats.errors
    );
}

async fn during_tidy(sim: SocketAddr, dir: &Path, measure: Duration) {
    let path = dir.join("retention.db");
    let url = format!("sqlite://{}", path.display());
    // Once to create and migrate the file, then filled.
    drop(procs::spawn_broker(&url, sim).await);
    generate(&url).await;
    println!("file with the generated rows: {:.0} MB", file_mb(&path));
    let warmup = Duration::from_secs(2);
    // Tidy starts after the first window.
    let interval = warmup + measure + Duration::from_secs(10);
    let broker = procs::spawn_broker_with(
        &url,
        sim,
        &[(
            "KEYLEASE_BROKER_TIDY_INTERVAL",
            format!("{}s", interval.as_secs()),
        )],
    )
    .await;
    let ops = get_ops(broker.addr, 32).await;
    let quiet = load::run(broker.addr, ops.clone(), warmup, measure).await;
    let deadline = Instant::now() + interval + Duration::from_secs(30);
    while metric(broker.addr, "keylease_broker_rows_deleted_total", "audit").await == 0 {
        assert!(Instant::now() < deadline, "tidy did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = metric(broker.addr, "keylease_broker_rows_deleted_total", "audit").await;
    let busy = load::run(broker.addr, ops, warmup, measure).await;
    let deleted = metric(broker.addr, "keylease_broker_rows_deleted_total", "audit").await - before;
    println!(
        "\n| GET one PaymentIntent, 32 connections | /s | p50 | p99 | errors |\n|---|---|---|---|---|"
    );
    row("without tidy", &quiet);
    row("while tidy deletes", &busy);
    println!(
        "\np99 during tidy ÷ without: {:.3}; tidy deleted {deleted} audit rows in the {} s window after a {} s warm-up ({:.0}/s beside the load)",
        busy.quantile_ms(0.99) / quiet.quantile_ms(0.99),
        measure.as_secs(),
        warmup.as_secs(),
        deleted as f64 / (measure + warmup).as_secs_f64(),
    );
    let wait = Instant::now();
    while metric(broker.addr, "keylease_broker_rows_deleted_total", "keys").await
        < (KEYS / 2) as u64
    {
        if wait.elapsed() > Duration::from_secs(600) {
            println!("tidy had not deleted the old keys after 10 minutes");
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "old keys deleted {:.0} s after the window; file then {:.0} MB",
        wait.elapsed().as_secs_f64(),
        file_mb(&path)
    );
    drop::<Process>(broker);
}

async fn steady(sim: SocketAddr, dir: &Path, seconds: u64) {
    let path = dir.join("steady.db");
    let url = format!("sqlite://{}", path.display());
    let broker = procs::spawn_broker_with(
        &url,
        sim,
        &[
            ("KEYLEASE_BROKER_AUDIT_RETENTION", "30s".to_owned()),
            ("KEYLEASE_BROKER_TIDY_INTERVAL", "5s".to_owned()),
        ],
    )
    .await;
    let ops = get_ops(broker.addr, 32).await;
    println!("\n| seconds under load | requests /s | audit rows | file (MB) |\n|---|---|---|---|");
    let mut elapsed = 0;
    while elapsed < seconds {
        let stats = load::run(
            broker.addr,
            ops.clone(),
            Duration::ZERO,
            Duration::from_secs(10),
        )
        .await;
        elapsed += 10;
        println!(
            "| {elapsed} | {:.0} | {} | {:.1} |",
            stats.rate(),
            metric(broker.addr, "keylease_broker_table_rows", "audit").await,
            file_mb(&path)
        );
    }
}

fn seconds(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::var(procs::ROLE_VAR).is_ok_and(|role| role == "stripe-sim") {
        procs::serve_stripe_sim();
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("machine: {}; load average {}", machine(), load_average());
    println!("broker binary: {}", procs::broker_binary());
    let dir = std::env::var_os("BENCH_SQLITE_DIR").map_or_else(
        || env!("CARGO_TARGET_TMPDIR").into(),
        std::path::PathBuf::from,
    );
    let dir = tempfile::tempdir_in(dir).expect("bench dir");
    let sim = procs::spawn_stripe_sim();
    let measure = Duration::from_secs(seconds("BENCH_SECONDS", 10));
    runtime.block_on(during_tidy(sim.addr, dir.path(), measure));
    runtime.block_on(steady(
        sim.addr,
        dir.path(),
        seconds("BENCH_STEADY_SECONDS", 120),
    ));
    println!("\nload average after: {}", load_average());
}
