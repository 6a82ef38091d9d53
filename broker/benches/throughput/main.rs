//! Broker throughput and latency against stripe-sim, side by side with the
//! same calls made to stripe-sim directly in the same run:
//! `cargo bench -p keylease-broker --bench throughput`.
//!
//! stripe-sim and the release `keylease-broker` binary each run as a process
//! of their own; this process is the load generator (closed loop, one
//! kept-alive connection per client, as `wrk` is), so all three share the
//! machine's cores. Each backend (SQLite in the target directory, on disk;
//! PostgreSQL on the tests' server) gets a fresh database and broker.
//!
//! Each broker figure also has the broker process's CPU per call: its user
//! and system time (`/proc/<pid>/stat`) over the measured window, divided by
//! the calls answered in it (issue 24).
//!
//! Settings (environment): `BENCH_SECONDS` (measured seconds per figure,
//! default 5), `BENCH_WARMUP_SECONDS` (default 1), `BENCH_BACKENDS`
//! (default `sqlite,postgres`), `BENCH_SQLITE_DIR` (where the SQLite file
//! and the commit probe go; default the target directory, on disk: a tmpfs
//! such as `/dev/shm` makes every fsync free, which shows what the broker
//! costs apart from its disk), `KEYLEASE_TEST_POSTGRES_URL`.
//!
//! On PostgreSQL it also measures a role's shared daily cap (issue 21): 50
//! keys creating PaymentIntents through two brokers on one database, issued
//! with the admin token (no role) and then with one role's token (every
//! reservation also updates the role's one `role_spend` row).

mod load;
mod procs;

use std::net::SocketAddr;
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use keylease_testkit::machine::{load_average, machine, sqlite_commit_median_ms};
use load::{Op, Stats};
use procs::{ADMIN_TOKEN, STRIPE_SECRET};

/// What every key of the bench may do: create PaymentIntents and read its own.
fn key_request(label: &str) -> Value {
    json!({
        "label": label,
        "vendor": "stripe",
        "daily_usd_cap": 1_000_000_000,
        "allowed_endpoints": ["POST /v1/payment_intents", "GET /v1/payment_intents/*"],
        "expires_in": 3600,
    })
}

/// A money-moving create: one $1.00 reservation each.
const CREATE_FORM: &str = "amount=100&currency=usd";

struct Setup {
    http: reqwest::Client,
    sim: SocketAddr,
    broker: SocketAddr,
}

impl Setup {
    async fn reset_sim(&self) {
        let reset = self
            .http
            .post(format!("http://{}/_sim/reset", self.sim))
            .send()
            .await;
        assert!(reset.expect("reset stripe-sim").status().is_success());
    }

    async fn issue(&self, label: &str) -> String {
        self.issue_with(ADMIN_TOKEN, label).await
    }

    /// Issues a key with `token` (the admin's, or a role's).
    async fn issue_with(&self, token: &str, label: &str) -> String {
        let issued: Value = self
            .http
            .post(format!("http://{}/v1/keys", self.broker))
            .bearer_auth(token)
            .json(&key_request(label))
            .send()
            .await
            .expect("issue a key")
            .error_for_status()
            .expect("key issued")
            .json()
            .await
            .expect("issued key");
        issued["token"].as_str().expect("token").to_owned()
    }

    /// Creates a PaymentIntent at `base` (`http://sim` or `http://broker/stripe`) with `token`.
    async fn create(&self, base: &str, token: &str) -> String {
        let created: Value = self
            .http
            .post(format!("{base}/v1/payment_intents"))
            .bearer_auth(token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(CREATE_FORM)
            .send()
            .await
            .expect("create a PaymentIntent")
            .error_for_status()
            .expect("PaymentIntent created")
            .json()
            .await
            .expect("PaymentIntent");
        created["id"].as_str().expect("id").to_owned()
    }

    /// One GET of its own PaymentIntent per connection: directly, or through a key each.
    async fn get_ops(&self, connections: usize, through_broker: bool) -> Vec<Op> {
        self.reset_sim().await;
        let mut ops = Vec::new();
        for i in 0..connections {
            let (base, token, prefix) = if through_broker {
                let token = self.issue(&format!("temporal-bench-get-{i}")).await;
                (format!("http://{}/stripe", self.broker), token, "/stripe")
            } else {
                (format!("http://{}", self.sim), STRIPE_SECRET.to_owned(), "")
            };
            let id = self.create(&base, &token).await;
            ops.push(Op::Request {
                method: Method::GET,
                path: format!("{prefix}/v1/payment_intents/{id}"),
                token,
                form: None,
                expect: StatusCode::OK,
            });
        }
        ops
    }

    /// One money-moving create after another per connection, each on a key of its own.
    async fn post_ops(&self, connections: usize, through_broker: bool) -> Vec<Op> {
        self.reset_sim().await;
        let mut ops = Vec::new();
        for i in 0..connections {
            let (path, token) = if through_broker {
                let token = self.issue(&format!("temporal-bench-post-{i}")).await;
                ("/stripe/v1/payment_intents", token)
            } else {
                ("/v1/payment_intents", STRIPE_SECRET.to_owned())
            };
            ops.push(Op::Request {
                method: Method::POST,
                path: path.to_owned(),
                token,
                form: Some(CREATE_FORM.to_owned()),
                expect: StatusCode::OK,
            });
        }
        ops
    }

    fn issue_revoke_ops(connections: usize, issuer: &str) -> Vec<Op> {
        (0..connections)
            .map(|i| Op::IssueRevoke {
                issuer: issuer.to_owned(),
                key: key_request(&format!("temporal-bench-lease-{i}")).to_string(),
            })
            .collect()
    }

    /// A token of a new role `name` that may issue the bench's keys.
    async fn role_token(&self, name: &str) -> String {
        let role: Value = self
            .http
            .post(format!("http://{}/v1/roles", self.broker))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({
                "name": name, "vendor": "stripe", "label_prefix": "temporal-",
                "allowed_endpoints": ["POST /v1/payment_intents", "GET /v1/payment_intents/*"],
                "max_key_usd_cap": 1_000_000_000, "daily_usd_cap": 1_000_000_000, "max_expires_in": 3600,
            }))
            .send()
            .await
            .expect("create the role")
            .json()
            .await
            .expect("role");
        assert_eq!(role["name"], name, "{role}");
        let token: Value = self
            .http
            .post(format!("http://{}/v1/roles/{name}/tokens", self.broker))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({}))
            .send()
            .await
            .expect("role token")
            .json()
            .await
            .expect("role token");
        token["token"].as_str().expect("token").to_owned()
    }
}

/// One figure: the broker's, and stripe-sim's for the same calls when there is one.
struct Row {
    name: &'static str,
    connections: usize,
    direct: Option<Stats>,
    broker: Stats,
}

struct Timing {
    warmup: Duration,
    measure: Duration,
}

async fn measure_backend(backend: &str, sim: SocketAddr, timing: &Timing) -> Vec<Row> {
    let dir = tempfile::tempdir_in(sqlite_dir()).expect("bench dir");
    let (database, postgres) = procs::fresh_database(backend, dir.path()).await;
    let broker = procs::spawn_broker(&database, sim).await;
    let setup = Setup {
        http: reqwest::Client::new(),
        sim,
        broker: broker.addr,
    };
    let run = |addr, ops| load::run(addr, ops, timing.warmup, timing.measure);
    let through_broker = |ops| {
        load::run_measuring(
            broker.addr,
            ops,
            timing.warmup,
            timing.measure,
            Some(broker.pid()),
        )
    };
    let mut rows = Vec::new();
    for (name, connections) in [("GET one PaymentIntent", 32), ("GET one PaymentIntent", 1)] {
        let direct = run(sim, setup.get_ops(connections, false).await).await;
        let brokered = through_broker(setup.get_ops(connections, true).await).await;
        rows.push(Row {
            name,
            connections,
            direct: Some(direct),
            broker: brokered,
        });
    }
    for (name, connections) in [
        ("POST create PaymentIntent (a reservation)", 32),
        ("POST create PaymentIntent (a reservation)", 1),
    ] {
        let direct = run(sim, setup.post_ops(connections, false).await).await;
        let brokered = through_broker(setup.post_ops(connections, true).await).await;
        rows.push(Row {
            name,
            connections,
            direct: Some(direct),
            broker: brokered,
        });
    }
    for connections in [1, 16] {
        let brokered = through_broker(Setup::issue_revoke_ops(connections, ADMIN_TOKEN)).await;
        rows.push(Row {
            name: "key issue + revoke (pairs)",
            connections,
            direct: None,
            broker: brokered,
        });
    }
    // As the worker leases: with a role's token, each call checked live in its write.
    let role = setup.role_token("lease").await;
    rows.push(Row {
        name: "key issue + revoke (pairs), one role's token",
        connections: 16,
        direct: None,
        broker: through_broker(Setup::issue_revoke_ops(16, &role)).await,
    });
    if backend == "postgres" {
        rows.extend(measure_role_scale(&database, sim, &setup, timing).await);
    }
    drop(broker);
    drop(postgres);
    rows
}

/// Keys that charge at once in the role figures.
const ROLE_KEYS: usize = 50;

/// 50 keys' creates through two brokers on `database` at once: issued with
/// the admin token, then with one role's token (sharing its daily cap).
async fn measure_role_scale(
    database: &str,
    sim: SocketAddr,
    setup: &Setup,
    timing: &Timing,
) -> Vec<Row> {
    let second = procs::spawn_broker(database, sim).await;
    let brokers = [setup.broker, second.addr];
    let role_token = setup.role_token("bench").await;
    let mut rows = Vec::new();
    for (name, issuer) in [
        (
            "POST create, 50 keys, 2 brokers: no role",
            ADMIN_TOKEN.to_owned(),
        ),
        ("POST create, 50 keys, 2 brokers: one role", role_token),
    ] {
        setup.reset_sim().await;
        let mut ops: [Vec<Op>; 2] = [Vec::new(), Vec::new()];
        for i in 0..ROLE_KEYS {
            let key = setup
                .issue_with(&issuer, &format!("temporal-bench-role-{i}"))
                .await;
            ops[i % 2].push(Op::Request {
                method: Method::POST,
                path: "/stripe/v1/payment_intents".to_owned(),
                token: key,
                form: Some(CREATE_FORM.to_owned()),
                expect: StatusCode::OK,
            });
        }
        let [a, b] = ops;
        let (a, b) = tokio::join!(
            load::run(brokers[0], a, timing.warmup, timing.measure),
            load::run(brokers[1], b, timing.warmup, timing.measure),
        );
        rows.push(Row {
            name,
            connections: ROLE_KEYS,
            direct: None,
            broker: a.merged(b),
        });
    }
    drop(second);
    rows
}

fn print_table(backend: &str, rows: &[Row]) {
    println!("\n### {backend}\n");
    println!(
        "| call | conns | direct /s | broker /s | broker ÷ direct | direct p50 | broker p50 | added p50 | direct p99 | broker p99 | broker CPU /call | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let b = &row.broker;
        let (d_rate, ratio, d50, added, d99) = match &row.direct {
            Some(d) => (
                format!("{:.0}", d.rate()),
                format!("{:.3}", b.rate() / d.rate()),
                format!("{:.2} ms", d.quantile_ms(0.5)),
                format!("{:+.2} ms", b.quantile_ms(0.5) - d.quantile_ms(0.5)),
                format!("{:.2} ms", d.quantile_ms(0.99)),
            ),
            None => ("–".into(), "–".into(), "–".into(), "–".into(), "–".into()),
        };
        let errors = b.errors + row.direct.as_ref().map_or(0, |d| d.errors);
        // A pair is two calls: its CPU is also shown per issue or revoke.
        let pairs = row.name.contains("(pairs)");
        let cpu = b.cpu_ms_per_op().map_or("–".to_owned(), |ms| {
            if pairs {
                format!("{ms:.3} ms a pair, {:.3} ms each", ms / 2.0)
            } else {
                format!("{ms:.3} ms")
            }
        });
        println!(
            "| {} | {} | {d_rate} | {:.0} | {ratio} | {d50} | {:.2} ms | {added} | {d99} | {:.2} ms | {cpu} | {errors} |",
            row.name,
            row.connections,
            b.rate(),
            b.quantile_ms(0.5),
            b.quantile_ms(0.99),
        );
    }
}

/// Where the SQLite databases go: `BENCH_SQLITE_DIR`, or the target directory.
fn sqlite_dir() -> std::path::PathBuf {
    std::env::var_os("BENCH_SQLITE_DIR")
        .map_or_else(|| env!("CARGO_TARGET_TMPDIR").into(), Into::into)
}

fn seconds(var: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default),
    )
}

fn main() {
    if std::env::var(procs::ROLE_VAR).is_ok_and(|role| role == "stripe-sim") {
        procs::serve_stripe_sim();
        return;
    }
    let timing = Timing {
        warmup: seconds("BENCH_WARMUP_SECONDS", 1),
        measure: seconds("BENCH_SECONDS", 5),
    };
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".to_owned());
    // The load generator takes at most two threads, as `wrk -t2` would.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("machine: {}", machine());
    let probe_dir = tempfile::tempdir_in(sqlite_dir()).expect("probe dir");
    let commit_ms = runtime.block_on(sqlite_commit_median_ms(probe_dir.path()));
    println!(
        "durable SQLite commit (WAL, synchronous FULL) in {}: {commit_ms:.2} ms median",
        sqlite_dir().display()
    );
    println!("broker binary: {}", procs::broker_binary());
    let sim = procs::spawn_stripe_sim();
    for backend in backends.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        let before = load_average();
        let rows = runtime.block_on(measure_backend(backend, sim.addr, &timing));
        print_table(backend, &rows);
        println!(
            "\nload average before: {before}; after: {}; {}s measured per figure after {}s warm-up",
            load_average(),
            timing.measure.as_secs(),
            timing.warmup.as_secs()
        );
    }
}
