//! Issue 22: Stripe's official libraries work through the broker unchanged
//! but for their address and key. `tests/stripe-libraries/scenario.cjs`
//! (npm `stripe`, pinned by the lockfile beside it) and `scenario.py` (PyPI
//! `stripe`, pinned by `scripts/install-stripe-python.sh`) run the same
//! cases, listed in `scenario.json`, through the broker's `--stripe-listen`
//! address and directly against stripe-sim, each printing a line per case;
//! both processes real, as a merchant runs them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use keylease_testkit::BrokerProcess;
use keylease_tests::process::{SimProcess, broker_settings};
use keylease_tests::stack::{ADMIN_TOKEN, STRIPE_SECRET, unique};
use serde_json::{Value, json};

/// What the scenario's main key calls: lists and searches named exactly,
/// as the broker requires of a GET that names no single object.
const ENDPOINTS: &[&str] = &[
    "POST /v1/payment_intents",
    "GET /v1/payment_intents",
    "GET /v1/payment_intents/search",
    "GET /v1/payment_intents/*",
    "POST /v1/payment_intents/*/confirm",
    "POST /v1/payment_intents/*/capture",
    "POST /v1/payment_intents/*/cancel",
    "POST /v1/refunds",
];

/// How one run of a scenario script went.
struct Run {
    name: String,
    passed: bool,
    output: String,
    took: Duration,
}

#[tokio::test(flavor = "multi_thread")]
async fn stripes_node_and_python_libraries_run_one_scenario_through_the_broker_and_directly() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("stripe-libraries");
    let tools = dir.join("../../.tools");
    let node_modules = tools.join("stripe-node/node_modules");
    let python = tools.join("stripe-venv/bin/python");
    assert!(
        node_modules.join("stripe").exists() && python.exists(),
        "run scripts/install-stripe-node.sh and scripts/install-stripe-python.sh (make test does)"
    );
    let scenario: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("scenario.json")).unwrap()).unwrap();

    let sim = SimProcess::spawn().await;
    let db = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}/broker.db", db.path().display());
    let broker =
        BrokerProcess::spawn(broker_settings().stripe_listen(), sim.addr, &database_url).await;
    let stripe_root = broker
        .stripe_root
        .expect("the broker's --stripe-listen address");
    let http = reqwest::Client::new();

    let mut runs = Vec::new();
    for (library, program, script) in [
        ("node", PathBuf::from("node"), "scenario.cjs"),
        ("python", python.clone(), "scenario.py"),
    ] {
        for mode in ["broker", "direct"] {
            let run = unique(&format!("libs-{library}-{mode}"));
            let env = if mode == "broker" {
                broker_env(&http, &broker, &run, &scenario).await
            } else {
                // An account of its own at stripe-sim: its lists are this run's.
                let secret = format!("sk_test_{}", run.replace('-', "_"));
                keys_env(&secret, &secret, &secret, None)
            };
            let base = match mode {
                "broker" => format!("http://{stripe_root}"),
                _ => sim.base(),
            };
            let mut command = tokio::process::Command::new(&program);
            command
                .arg(dir.join(script))
                .current_dir(&dir)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("NODE_PATH", &node_modules)
                .env("STRIPE_BASE", base)
                .env("SCENARIO_MODE", mode)
                .env("SCENARIO_RUN", &run)
                .env("SIM_URL", sim.base())
                .envs(env);
            runs.push(run_script(format!("{library} {mode}"), command).await);
        }
    }

    let report: String = runs
        .iter()
        .map(|r| {
            format!(
                "== {} ({:.1} s){}\n{}",
                r.name,
                r.took.as_secs_f64(),
                if r.passed { "" } else { " FAILED" },
                r.output
            )
        })
        .collect();
    println!("{report}");
    through_the_broker_with_its_secret(&http, &sim).await;
    assert!(runs.iter().all(|r| r.passed), "{report}");
}

/// The broker's runs reached stripe-sim, each request with the broker's
/// secret and none with a vault key.
async fn through_the_broker_with_its_secret(http: &reqwest::Client, sim: &SimProcess) {
    let requests: Value = http
        .get(format!("{}/_sim/requests", sim.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut by_run: BTreeMap<&str, usize> = BTreeMap::new();
    for request in requests["data"].as_array().unwrap() {
        let text = format!("{} {}", request["body"], request["query"]);
        for library in ["libs-node-broker", "libs-python-broker"] {
            if text.contains(library) {
                assert_eq!(
                    request["headers"]["authorization"],
                    format!("Bearer {STRIPE_SECRET}"),
                    "{request}"
                );
                *by_run.entry(library).or_default() += 1;
            }
        }
    }
    assert_eq!(
        by_run.len(),
        2,
        "both libraries reached stripe-sim: {by_run:?}"
    );
}

/// Keys for one run through the broker, all on the run's label (the
/// broker's lists show a key its label's objects): the main key, a key per
/// retry case whose cap is the retried amount (a retry must not reserve it
/// twice), and a $10 key for the cap and scope refusals.
async fn broker_env(
    http: &reqwest::Client,
    broker: &BrokerProcess,
    run: &str,
    scenario: &Value,
) -> Vec<(String, String)> {
    let retry_usd = scenario["retry_amount"].as_f64().unwrap() / 100.0;
    let issue = |endpoints: &[&str], usd: f64| {
        let body = json!({
            "label": run,
            "vendor": "stripe",
            "daily_usd_cap": usd,
            "allowed_endpoints": endpoints,
            "expires_in": "10m",
            "allowed_metadata": {"order_id": run},
        });
        async move {
            let answer = http
                .post(format!("{}/v1/keys", broker.base()))
                .bearer_auth(ADMIN_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = answer.status();
            let key: Value = answer.json().await.unwrap();
            assert_eq!(status, 201, "{key}");
            key["token"].as_str().unwrap().to_owned()
        }
    };
    let main = issue(ENDPOINTS, scenario["main_cap_usd"].as_f64().unwrap()).await;
    let retry_503 = issue(&["POST /v1/payment_intents"], retry_usd).await;
    let retry_drop = issue(&["POST /v1/payment_intents"], retry_usd).await;
    let capped = issue(
        &["POST /v1/payment_intents"],
        scenario["capped_key_usd"].as_f64().unwrap(),
    )
    .await;
    keys_env(&main, &retry_503, &retry_drop, Some(&capped))
}

fn keys_env(
    main: &str,
    retry_503: &str,
    retry_drop: &str,
    capped: Option<&str>,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("STRIPE_KEY", main),
        ("STRIPE_RETRY_503_KEY", retry_503),
        ("STRIPE_RETRY_DROP_KEY", retry_drop),
    ];
    env.extend(capped.map(|key| ("STRIPE_CAPPED_KEY", key)));
    env.into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Runs a scenario script to its end (at most two minutes).
async fn run_script(name: String, mut command: tokio::process::Command) -> Run {
    let started = Instant::now();
    command.kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("{name}: the scenario did not end within 2 minutes"))
        .unwrap_or_else(|err| panic!("{name}: cannot run the scenario: {err}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Run {
        passed: output.status.success() && !text.contains("FAIL"),
        name,
        output: text,
        took: started.elapsed(),
    }
}
