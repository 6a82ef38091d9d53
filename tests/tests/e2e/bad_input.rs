//! The bad-input table: every public input of the worker with something
//! wrong gets a clear error naming the problem (a non-zero exit or an
//! `InvalidInput` failure) and leaves no side effect: no key issued, nothing
//! forwarded to Stripe, no workflow started. Each table below is one kind of
//! input; each test checks every row, then the side effects of the whole table.
//! The broker's own tables (key requests, proxied requests, its environment)
//! need no Temporal: they are in the broker's tests, `broker/tests/api/bad_input.rs`.

use std::process::Output;

use keylease_testkit::bins::binary;
use keylease_testkit::ports::free_port;
use keylease_testkit::process::run_refusing;
use keylease_testkit::table::{assert_no_problems, refused, set_var};
use keylease_tests::raw::{RawOutcome, RawWorker};
use keylease_tests::stack::{Stack, WORKER_TOKEN, checkout, unique};
use keylease_workflows::{CheckoutOutcome, CheckoutWorkflow};
use serde_json::{Value, json};
use temporalio_client::WorkflowGetResultOptions;
use temporalio_client::errors::WorkflowInteractionError;
use tokio::process::Command;

// ---------------------------------------------------------------------------
// The tables
// ---------------------------------------------------------------------------

/// A flag and its value; `None` leaves the flag out.
type Flag = (&'static str, Option<&'static str>);

/// `keylease-worker checkout`: (case, flags replacing or added to a good checkout's, text the error names).
#[rustfmt::skip]
const CHECKOUT_FLAGS: &[(&str, &[Flag], &str)] = &[
    ("amount zero", &[("--amount", Some("0"))], "amount must be"),
    ("amount negative", &[("--amount", Some("-5"))], "amount must be"),
    ("amount above Stripe's maximum", &[("--amount", Some("100000000"))], "amount must be"),
    ("amount not a number", &[("--amount", Some("ten"))], "--amount"),
    ("amount with decimals", &[("--amount", Some("12.50"))], "--amount"),
    ("currency in capitals", &[("--currency", Some("USD"))], "currency must be"),
    ("currency of four letters", &[("--currency", Some("usdd"))], "currency must be"),
    ("currency empty", &[("--currency", Some(""))], "currency must be"),
    ("eur without a spend cap", &[("--currency", Some("eur"))], "max_spend_usd is required"),
    ("negative spend cap", &[("--max-spend-usd", Some("-1"))], "max_spend_usd must be"),
    ("spend cap in fractions of a cent", &[("--max-spend-usd", Some("1.005"))], "max_spend_usd must be"),
    ("spend cap NaN", &[("--max-spend-usd", Some("NaN"))], "max_spend_usd must be"),
    ("payment method with a space", &[("--payment-method", Some("pm card"))], "payment_method must be"),
    ("payment method in unicode", &[("--payment-method", Some("pm_карта"))], "payment_method must be"),
    ("order id empty", &[("--order-id", Some(""))], "order_id must be"),
    ("order id of 257 bytes", &[("--order-id", Some(LONG_ID))], "order_id must be"),
    ("order id with a control character", &[("--order-id", Some("order\u{7}1"))], "order_id must be"),
    ("customer with a slash", &[("--customer", Some("cus/1"))], "customer must be"),
    ("payment method missing", &[("--payment-method", None)], "--payment-method"),
    ("fulfilment timeout not a duration", &[("--fulfilment-timeout", Some("soon"))], "--fulfilment-timeout"),
    ("duration without a unit", &[("--charge-schedule-to-close", Some("5"))], "--charge-schedule-to-close"),
    ("negative attempts", &[("--charge-max-attempts", Some("-1"))], "--charge-max-attempts"),
    ("misspelt flag", &[("--amount-cents", Some("100"))], "--amount-cents"),
];

/// 257 bytes: one past what an order id may hold (the checkout's `OrderId`
/// search attribute bounds it at 256).
const LONG_ID: &str = concat!(
    "oooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooo",
    "ooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooo",
);

/// Policy files given to `keylease-worker checkout --policy-file`: (case, file, text the error names).
#[rustfmt::skip]
const POLICY_FILES: &[(&str, &str, &str)] = &[
    ("not TOML", "charge = {", "policy file"),
    ("misspelt field", "[charge]\nschedule_to_close_ms = 5000\n", "unknown field `schedule_to_close_ms`"),
    ("misspelt section", "[charg]\nstart_to_close = \"5s\"\n", "unknown field `charg`"),
    ("duration not a duration", "[charge]\nstart_to_close = \"fast\"\n", "start_to_close"),
    ("duration as a number", "[refund]\nschedule_to_close = 60\n", "schedule_to_close"),
    ("negative attempts", "[charge.retry]\nmaximum_attempts = -1\n", "maximum_attempts"),
    ("backoff below 1", "[charge.retry]\nbackoff_coefficient = 0.5\n", "charge.retry.backoff_coefficient"),
    ("zero start_to_close", "[refund]\nstart_to_close = \"0s\"\n", "refund.start_to_close"),
    ("maximum below initial interval", "[charge.retry]\ninitial_interval = \"10s\"\nmaximum_interval = \"1s\"\n", "charge.retry.maximum_interval"),
    ("zero initial interval", "[reconcile.retry]\ninitial_interval = \"0s\"\n", "reconcile.retry.initial_interval"),
];

/// `keylease-worker run`'s environment: (case, variable, value or unset, text the error names).
#[rustfmt::skip]
const WORKER_ENV: &[(&str, &str, Option<&str>, &str)] = &[
    ("broker URL without a scheme", "KEYLEASE_BROKER_URL", Some("broker:8080"), "--broker-url"),
    ("proxy URL of another scheme", "KEYLEASE_PROXY_URL", Some("ftp://127.0.0.1/stripe"), "--proxy-url"),
    ("proxy URL missing", "KEYLEASE_PROXY_URL", None, "--proxy-url"),
    ("negative concurrency", "KEYLEASE_MAX_CONCURRENT_ACTIVITIES", Some("-3"), "--max-concurrent-activities"),
    ("grace not a duration", "KEYLEASE_SHUTDOWN_GRACE", Some("soon"), "--shutdown-grace"),
    ("metrics address without a port", "KEYLEASE_METRICS_ADDR", Some("0.0.0.0"), "--metrics-addr"),
    ("revoke budget not a duration", "KEYLEASE_REVOKE_BUDGET", Some("-2s"), "--revoke-budget"),
    // Issue 23: the broker token must not travel in clear text off this host.
    ("broker URL in plain http to another host", "KEYLEASE_BROKER_URL", Some("http://10.9.8.7:8080"), "KEYLEASE_BROKER_URL is plain http"),
    ("proxy URL in plain http to another host", "KEYLEASE_PROXY_URL", Some("http://broker:8081"), "KEYLEASE_PROXY_URL is plain http"),
];

/// Activity inputs a workflow in any SDK may send: (case, activity, input, text the failure names).
#[rustfmt::skip]
fn activity_inputs() -> Vec<(&'static str, &'static str, Value, &'static str)> {
    let charge = json!({"order_id": "o-bad", "amount": 500, "currency": "usd", "payment_method": "pm_card_visa"});
    let with = |field: &str, value: Value| {
        let mut input = charge.clone();
        input[field] = value;
        input
    };
    let without = |field: &str| {
        let mut input = charge.clone();
        input.as_object_mut().map(|o| o.remove(field));
        input
    };
    let refund = json!({"order_id": "o-bad", "payment_intent_id": "pi_123"});
    let refund_with = |field: &str, value: Value| {
        let mut input = refund.clone();
        input[field] = value;
        input
    };
    vec![
        ("charge: amount zero", "charge", with("amount", json!(0)), "amount must be"),
        ("charge: amount too large", "charge", with("amount", json!(100_000_000)), "amount must be"),
        ("charge: amount a string", "charge", with("amount", json!("500")), "expected i64"),
        ("charge: amount fractional", "charge", with("amount", json!(5.5)), "expected i64"),
        ("charge: currency in capitals", "charge", with("currency", json!("USD")), "currency must be"),
        ("charge: payment method missing", "charge", without("payment_method"), "payment_method"),
        ("charge: misspelt field", "charge", with("amount_cents", json!(500)), "amount_cents"),
        ("charge: order id of 100,000 characters", "charge", with("order_id", json!("o".repeat(100_000))), "order_id must be"),
        ("charge: order id with NUL", "charge", with("order_id", json!("o\u{0}1")), "order_id must be"),
        ("charge: reserved metadata", "charge", with("metadata", json!({"order_id": "x"})), "metadata.order_id"),
        ("charge: metadata value a number", "charge", with("metadata", json!({"n": 1})), "expected a string"),
        ("charge: negative spend cap", "charge", with("max_spend_usd", json!(-1)), "max_spend_usd must be"),
        ("charge: eur without a spend cap", "charge", with("currency", json!("eur")), "max_spend_usd is required"),
        ("charge: checkout id with a space", "charge", with("checkout_id", json!("a b")), "checkout_id must be"),
        ("charge: unknown capture mode", "charge", with("capture", json!("later")), "unknown variant `later`"),
        ("charge: emoji payment method", "charge", with("payment_method", json!("pm_💳")), "payment_method must be"),
        ("charge: input not an object", "charge", json!("charge me"), "expected struct ChargeInput"),
        ("refund: not a PaymentIntent", "refund", refund_with("payment_intent_id", json!("ch_123")), "payment_intent_id must be"),
        ("refund: amount zero", "refund", refund_with("amount", json!(0)), "amount must be"),
        ("refund: unknown reason", "refund", refund_with("reason", json!("changed my mind")), "reason must be"),
        ("reconcile: checkout id missing", "reconcile", json!({"order_id": "o-bad", "search_window_ms": 1000}), "checkout_id"),
    ]
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn bad_checkout_flags_and_policy_files_start_no_workflow() {
    let stack = Stack::spawn("bad-flags").await;
    let dir = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    let mut workflow_ids = Vec::new();
    for (case, overrides, names) in CHECKOUT_FLAGS {
        let wf = unique("bad-flags");
        let output = worker_checkout(&stack, &wf, &checkout_flags(overrides)).await;
        problems.extend(refused(case, &output, names));
        workflow_ids.push(wf);
    }
    for (i, (case, text, names)) in POLICY_FILES.iter().enumerate() {
        let path = dir.path().join(format!("policy-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let wf = unique("bad-policy");
        let mut flags = checkout_flags(&[]);
        flags.extend(["--policy-file".to_owned(), path.display().to_string()]);
        let output = worker_checkout(&stack, &wf, &flags).await;
        problems.extend(refused(case, &output, names));
        // `policy explain` reads the file the same way.
        let output = run_refusing(
            Command::new(binary("keylease-worker"))
                .args(["policy", "explain", "--policy-file"])
                .arg(&path)
                .env_clear(),
        )
        .await;
        problems.extend(refused(&format!("explain: {case}"), &output, names));
        workflow_ids.push(wf);
    }
    let missing = dir.path().join("missing.toml");
    let output = run_refusing(
        Command::new(binary("keylease-worker"))
            .args(["policy", "explain", "--policy-file"])
            .arg(&missing)
            .env_clear(),
    )
    .await;
    problems.extend(refused(
        "policy file missing",
        &output,
        "cannot read policy file",
    ));

    for wf in &workflow_ids {
        let described = stack
            .client
            .get_workflow_handle::<CheckoutWorkflow>(wf.clone())
            .describe(Default::default())
            .await;
        if !matches!(described, Err(WorkflowInteractionError::NotFound(_))) {
            problems.push(format!("{wf}: a workflow was started"));
        }
    }
    problems.extend(no_keys_and_nothing_forwarded(&stack, 0).await);
    assert_no_problems(problems);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_environments_stop_the_worker_before_it_starts() {
    let mut problems = Vec::new();
    // A broker that is not there: a worker that got past its settings would
    // fail on it with another line.
    let broker = format!("http://127.0.0.1:{}", free_port());
    for (case, variable, value, names) in WORKER_ENV {
        let mut env = vec![
            ("KEYLEASE_BROKER_URL".to_owned(), broker.clone()),
            ("KEYLEASE_PROXY_URL".to_owned(), format!("{broker}/stripe")),
            ("KEYLEASE_BROKER_TOKEN".to_owned(), WORKER_TOKEN.to_owned()),
            (
                "TEMPORAL_ADDRESS".to_owned(),
                format!("127.0.0.1:{}", free_port()),
            ),
        ];
        set_var(&mut env, variable, *value);
        let output = run_refusing(
            Command::new(binary("keylease-worker"))
                .arg("run")
                .env_clear()
                .envs(env),
        )
        .await;
        problems.extend(refused(case, &output, names));
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("cannot reach the broker") {
            problems.push(format!("{case}: got as far as the broker: {stderr}"));
        }
    }
    assert_no_problems(problems);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_activity_and_checkout_inputs_issue_no_key() {
    let stack = Stack::spawn("bad-activity").await;
    let raw = RawWorker::spawn(&stack);
    let runs = activity_inputs()
        .into_iter()
        .map(|(case, activity, input, names)| {
            let (stack, raw) = (&stack, &raw);
            async move {
                let wf = unique("bad-activity");
                let outcome = raw.run(stack, &wf, activity, input).await;
                let mut problems = Vec::new();
                match &outcome {
                    RawOutcome::Failed {
                        message,
                        non_retryable,
                        ..
                    } if message.contains(names) => {
                        if !non_retryable && message.contains("must be") {
                            problems.push(format!("{case}: refused as retryable"));
                        }
                    }
                    other => problems.push(format!(
                        "{case}: expected a failure naming {names:?}, got {other:?}"
                    )),
                }
                if !stack.keys_of(&wf).await.is_empty() {
                    problems.push(format!("{case}: a key was issued"));
                }
                problems
            }
        });
    let mut problems: Vec<String> = futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();

    // The checkout workflow's input, sent by any client: the checkout ends
    // Failed with InvalidInput, having charged nothing.
    for (case, amount, currency, payment_method) in [
        ("checkout: amount zero", 0, "usd", "pm_card_visa"),
        (
            "checkout: currency of two letters",
            500,
            "us",
            "pm_card_visa",
        ),
        (
            "checkout: payment method with a space",
            500,
            "usd",
            "pm card",
        ),
    ] {
        let wf = unique("bad-checkout");
        let mut input = checkout("o-bad-checkout", amount, payment_method);
        input.currency = currency.to_owned();
        let outcome: CheckoutOutcome = stack
            .start(&wf, input)
            .await
            .get_result(WorkflowGetResultOptions::default())
            .await
            .unwrap();
        match outcome {
            CheckoutOutcome::Failed { error_type, .. } if error_type == "InvalidInput" => {}
            other => problems.push(format!("{case}: {other:?}")),
        }
        if !stack.keys_of(&wf).await.is_empty() {
            problems.push(format!("{case}: a key was issued"));
        }
    }
    problems.extend(no_keys_and_nothing_forwarded(&stack, 0).await);
    assert_no_problems(problems);
    raw.stop().await;
    stack.stop().await;
}

// ---------------------------------------------------------------------------
// How a row is run and judged
// ---------------------------------------------------------------------------

/// A good checkout's flags with `overrides` applied (`None` removes a flag).
fn checkout_flags(overrides: &[(&str, Option<&str>)]) -> Vec<String> {
    let mut flags: Vec<(String, Option<String>)> = [
        ("--order-id", "o-bad-flags"),
        ("--amount", "500"),
        ("--currency", "usd"),
        ("--payment-method", "pm_card_visa"),
    ]
    .iter()
    .map(|(f, v)| ((*f).to_owned(), Some((*v).to_owned())))
    .collect();
    for (flag, value) in overrides {
        flags.retain(|(f, _)| f != flag);
        flags.push(((*flag).to_owned(), value.map(str::to_owned)));
    }
    flags
        .into_iter()
        // `--flag=value`, so that `-5` is read as a value, not a flag.
        .filter_map(|(f, v)| v.map(|v| format!("{f}={v}")))
        .collect()
}

async fn worker_checkout(stack: &Stack, workflow_id: &str, flags: &[String]) -> Output {
    run_refusing(
        Command::new(binary("keylease-worker"))
            .arg("checkout")
            .args(flags)
            .args(["--workflow-id", workflow_id])
            .env_clear()
            .env("TEMPORAL_ADDRESS", &stack.temporal.address)
            .env("KEYLEASE_TASK_QUEUE", &stack.task_queue),
    )
    .await
}

/// The side effects of a whole table: the broker holds `keys` keys (those the
/// test issued itself) and stripe-sim received nothing.
async fn no_keys_and_nothing_forwarded(stack: &Stack, keys: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let held = stack.broker_get("/v1/keys?limit=1000").await["keys"]
        .as_array()
        .map_or(0, Vec::len);
    if held != keys {
        problems.push(format!("the broker holds {held} keys, expected {keys}"));
    }
    let requests = stack.sim_held("requests").await;
    if !requests.is_empty() {
        problems.push(format!("stripe-sim received {} requests", requests.len()));
    }
    problems
}
