//! The bad-input table: every public input with something wrong gets a clear
//! error naming the problem (a non-zero exit, a 4xx with a code, or an
//! `InvalidInput` failure) and leaves no side effect: no key issued, nothing
//! forwarded to Stripe, no workflow started. Each table below is one kind of
//! input; each test checks every row, then the side effects of the whole table.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use keylease_tests::local::{bin_dir, free_port};
use keylease_tests::raw::{RawOutcome, RawWorker};
use keylease_tests::stack::{ADMIN_TOKEN, Stack, checkout, unique};
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
    ("order id of 201 characters", &[("--order-id", Some(LONG_ID))], "order_id must be"),
    ("order id with a control character", &[("--order-id", Some("order\u{7}1"))], "order_id must be"),
    ("customer with a slash", &[("--customer", Some("cus/1"))], "customer must be"),
    ("payment method missing", &[("--payment-method", None)], "--payment-method"),
    ("fulfilment timeout not a duration", &[("--fulfilment-timeout", Some("soon"))], "--fulfilment-timeout"),
    ("duration without a unit", &[("--charge-schedule-to-close", Some("5"))], "--charge-schedule-to-close"),
    ("negative attempts", &[("--charge-max-attempts", Some("-1"))], "--charge-max-attempts"),
    ("misspelt flag", &[("--amount-cents", Some("100"))], "--amount-cents"),
];

/// 201 characters: one past what an order id may hold.
const LONG_ID: &str = "oooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooo";

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

/// `keylease-broker`'s environment: (case, variable, value or unset, text the error names).
#[rustfmt::skip]
const BROKER_ENV: &[(&str, &str, Option<&str>, &str)] = &[
    ("rates not numbers", "KEYLEASE_BROKER_USD_RATES", Some("eur=abc"), "--usd-rates"),
    ("max TTL not a duration", "KEYLEASE_BROKER_MAX_TTL", Some("forever"), "--max-ttl"),
    ("listen not an address", "KEYLEASE_BROKER_LISTEN", Some("localhost"), "--listen"),
    ("plain http upstream off loopback", "KEYLEASE_STRIPE_API_BASE", Some("http://stripe.example.com"), "Stripe API base"),
    ("upstream not a URL", "KEYLEASE_STRIPE_API_BASE", Some("api.stripe.com"), "--stripe-api-base"),
    ("unknown database", "KEYLEASE_BROKER_DATABASE_URL", Some("mysql://db/keys"), "database"),
    ("Stripe secret missing", "KEYLEASE_STRIPE_SECRET_KEY", None, "--stripe-secret-key"),
    ("unknown log format", "KEYLEASE_LOG_FORMAT", Some("xml"), "--log-format"),
    ("header timeout not a duration", "KEYLEASE_BROKER_HEADER_TIMEOUT", Some("10 parsecs"), "--header-timeout"),
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
];

/// `POST /v1/keys`: (case, field set to value or removed, the field the 422 names).
#[rustfmt::skip]
const KEY_REQUESTS: &[(&str, &str, Option<&str>, &str)] = &[
    ("label missing", "label", None, "label"),
    ("label with a space", "label", Some(r#""temporal-a b-charge""#), "label"),
    ("label of 256 characters", "label", Some(LONG_LABEL), "label"),
    ("label in unicode", "label", Some(r#""temporal-zähler-charge""#), "label"),
    ("unknown vendor", "vendor", Some(r#""paypal""#), "vendor"),
    ("negative cap", "daily_usd_cap", Some("-1"), "daily_usd_cap"),
    ("cap in fractions of a cent", "daily_usd_cap", Some("1.001"), "daily_usd_cap"),
    ("cap as a string", "daily_usd_cap", Some(r#""10""#), "daily_usd_cap"),
    ("no endpoints", "allowed_endpoints", Some("[]"), "allowed_endpoints"),
    ("an endpoint it cannot value", "allowed_endpoints", Some(r#"["POST /v1/*"]"#), "allowed_endpoints"),
    ("expiry not a duration", "expires_in", Some(r#""forever""#), "expires_in"),
    ("expiry past the maximum", "expires_in", Some(r#""48h""#), "expires_in"),
    ("metadata value a number", "metadata", Some(r#"{"attempt": 1}"#), "metadata"),
    ("misspelt field", "daily_cap", Some("10"), "daily_cap"),
];

/// 256 characters, as a JSON string: one past the longest label.
const LONG_LABEL: &str = "\"llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll\"";

/// A proxied request with something wrong: what to send and the status and code it gets.
struct Proxied {
    case: &'static str,
    method: &'static str,
    path: &'static str,
    /// `None`: the key's token; `Some("")`: no `Authorization`; else that token.
    token: Option<&'static str>,
    headers: &'static [(&'static str, &'static str)],
    content_type: &'static str,
    body: &'static str,
    status: u16,
    code: &'static str,
}

const FORM: &str = "application/x-www-form-urlencoded";
const CHARGE_FORM: &str = "amount=500&currency=usd&payment_method=pm_card_visa";

/// Proxied requests, on a key for `POST /v1/payment_intents` with a $10 cap.
#[rustfmt::skip]
const PROXIED: &[Proxied] = &[
    Proxied { case: "unknown vendor", method: "POST", path: "/paypal/v1/payment_intents", token: None, headers: &[], content_type: FORM, body: CHARGE_FORM, status: 404, code: "not_found" },
    Proxied { case: "PUT", method: "PUT", path: "/stripe/v1/payment_intents", token: None, headers: &[], content_type: FORM, body: CHARGE_FORM, status: 405, code: "method_not_allowed" },
    Proxied { case: "percent-encoded path", method: "POST", path: "/stripe/v1/payment%5Fintents", token: None, headers: &[], content_type: FORM, body: CHARGE_FORM, status: 400, code: "invalid_path" },
    Proxied { case: "semicolon in the path", method: "POST", path: "/stripe/v1/payment_intents;x", token: None, headers: &[], content_type: FORM, body: CHARGE_FORM, status: 400, code: "invalid_path" },
    Proxied { case: "no token", method: "POST", path: "/stripe/v1/payment_intents", token: Some(""), headers: &[], content_type: FORM, body: CHARGE_FORM, status: 401, code: "invalid_key" },
    Proxied { case: "unknown token", method: "POST", path: "/stripe/v1/payment_intents", token: Some("vk_0000000000000000000000000000000000000000000000000000000000000000"), headers: &[], content_type: FORM, body: CHARGE_FORM, status: 401, code: "invalid_key" },
    Proxied { case: "endpoint outside the key's scope", method: "POST", path: "/stripe/v1/refunds", token: None, headers: &[], content_type: FORM, body: "payment_intent=pi_123", status: 403, code: "endpoint_not_allowed" },
    Proxied { case: "charge over the cap", method: "POST", path: "/stripe/v1/payment_intents", token: None, headers: &[], content_type: FORM, body: "amount=1001&currency=usd&payment_method=pm_card_visa", status: 429, code: "cap_exhausted" },
    Proxied { case: "amount not a number", method: "POST", path: "/stripe/v1/payment_intents", token: None, headers: &[], content_type: FORM, body: "amount=ten&currency=usd", status: 400, code: "invalid_request" },
    Proxied { case: "amount twice", method: "POST", path: "/stripe/v1/payment_intents", token: None, headers: &[], content_type: FORM, body: "amount=1&amount=99999&currency=usd", status: 400, code: "invalid_request" },
    Proxied { case: "JSON body", method: "POST", path: "/stripe/v1/payment_intents", token: None, headers: &[], content_type: "application/json", body: r#"{"amount":500,"currency":"usd"}"#, status: 415, code: "unsupported_media_type" },
    Proxied { case: "non-ASCII parameter", method: "POST", path: "/stripe/v1/payment_intents", token: None, headers: &[], content_type: FORM, body: "amount=500&currency=usd&description=caf\u{e9}", status: 400, code: "invalid_request" },
    Proxied { case: "currency without a rate", method: "POST", path: "/stripe/v1/payment_intents", token: None, headers: &[], content_type: FORM, body: "amount=500&currency=gbp", status: 403, code: "currency_not_allowed" },
    Proxied { case: "account the key is not bound to", method: "POST", path: "/stripe/v1/payment_intents", token: None, headers: &[("Stripe-Account", "acct_123")], content_type: FORM, body: CHARGE_FORM, status: 403, code: "account_not_allowed" },
    Proxied { case: "idempotency key twice", method: "POST", path: "/stripe/v1/payment_intents", token: None, headers: &[("Idempotency-Key", "a"), ("Idempotency-Key", "b")], content_type: FORM, body: CHARGE_FORM, status: 400, code: "invalid_request" },
    Proxied { case: "parameters in the query of a POST", method: "POST", path: "/stripe/v1/payment_intents?amount=99999", token: None, headers: &[], content_type: FORM, body: CHARGE_FORM, status: 400, code: "invalid_request" },
];

/// Activity inputs a workflow in any SDK may send: (case, activity, input, text the failure names).
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
        (
            "charge: amount zero",
            "charge",
            with("amount", json!(0)),
            "amount must be",
        ),
        (
            "charge: amount too large",
            "charge",
            with("amount", json!(100_000_000)),
            "amount must be",
        ),
        (
            "charge: amount a string",
            "charge",
            with("amount", json!("500")),
            "expected i64",
        ),
        (
            "charge: amount fractional",
            "charge",
            with("amount", json!(5.5)),
            "expected i64",
        ),
        (
            "charge: currency in capitals",
            "charge",
            with("currency", json!("USD")),
            "currency must be",
        ),
        (
            "charge: payment method missing",
            "charge",
            without("payment_method"),
            "payment_method",
        ),
        (
            "charge: misspelt field",
            "charge",
            with("amount_cents", json!(500)),
            "amount_cents",
        ),
        (
            "charge: order id of 100,000 characters",
            "charge",
            with("order_id", json!("o".repeat(100_000))),
            "order_id must be",
        ),
        (
            "charge: order id with NUL",
            "charge",
            with("order_id", json!("o\u{0}1")),
            "order_id must be",
        ),
        (
            "charge: reserved metadata",
            "charge",
            with("metadata", json!({"order_id": "x"})),
            "metadata.order_id",
        ),
        (
            "charge: metadata value a number",
            "charge",
            with("metadata", json!({"n": 1})),
            "expected a string",
        ),
        (
            "charge: negative spend cap",
            "charge",
            with("max_spend_usd", json!(-1)),
            "max_spend_usd must be",
        ),
        (
            "charge: eur without a spend cap",
            "charge",
            with("currency", json!("eur")),
            "max_spend_usd is required",
        ),
        (
            "charge: checkout id with a space",
            "charge",
            with("checkout_id", json!("a b")),
            "checkout_id must be",
        ),
        (
            "charge: unknown capture mode",
            "charge",
            with("capture", json!("later")),
            "unknown variant `later`",
        ),
        (
            "charge: emoji payment method",
            "charge",
            with("payment_method", json!("pm_💳")),
            "payment_method must be",
        ),
        (
            "charge: input not an object",
            "charge",
            json!("charge me"),
            "expected struct ChargeInput",
        ),
        (
            "refund: not a PaymentIntent",
            "refund",
            refund_with("payment_intent_id", json!("ch_123")),
            "payment_intent_id must be",
        ),
        (
            "refund: amount zero",
            "refund",
            refund_with("amount", json!(0)),
            "amount must be",
        ),
        (
            "refund: unknown reason",
            "refund",
            refund_with("reason", json!("changed my mind")),
            "reason must be",
        ),
        (
            "reconcile: checkout id missing",
            "reconcile",
            json!({"order_id": "o-bad", "search_window_ms": 1000}),
            "checkout_id",
        ),
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
        let output = run_binary(
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
    let output = run_binary(
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
async fn bad_environments_stop_the_binaries_before_they_start() {
    let mut problems = Vec::new();
    for (case, variable, value, names) in BROKER_ENV {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("broker.db");
        let mut env = broker_env(&db);
        set(&mut env, variable, *value);
        let output = run_binary(
            Command::new(binary("keylease-broker"))
                .env_clear()
                .envs(env),
        )
        .await;
        problems.extend(refused(case, &output, names));
        if db.exists() {
            problems.push(format!("{case}: the database was created"));
        }
    }
    // A broker that is not there: a worker that got past its settings would
    // fail on it with another line.
    let broker = format!("http://127.0.0.1:{}", free_port());
    for (case, variable, value, names) in WORKER_ENV {
        let mut env = vec![
            ("KEYLEASE_BROKER_URL".to_owned(), broker.clone()),
            ("KEYLEASE_PROXY_URL".to_owned(), format!("{broker}/stripe")),
            ("KEYLEASE_BROKER_TOKEN".to_owned(), ADMIN_TOKEN.to_owned()),
            (
                "TEMPORAL_ADDRESS".to_owned(),
                format!("127.0.0.1:{}", free_port()),
            ),
        ];
        set(&mut env, variable, *value);
        let output = run_binary(
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
async fn bad_key_requests_issue_no_key() {
    let stack = Stack::spawn("bad-keys").await;
    let mut problems = Vec::new();
    for (case, field, value, names) in KEY_REQUESTS {
        let mut body = json!({
            "label": "temporal-bad-key-charge",
            "vendor": "stripe",
            "daily_usd_cap": 10,
            "allowed_endpoints": ["POST /v1/payment_intents"],
            "expires_in": "1h",
        });
        match value {
            Some(value) => body[*field] = serde_json::from_str(value).unwrap(),
            None => {
                body.as_object_mut().map(|o| o.remove(*field));
            }
        }
        let response = stack
            .http
            .post(format!("http://{}/v1/keys", stack.broker))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        problems.extend(error_answer(case, response, 422, "invalid_request", Some(names)).await);
    }
    // Not JSON at all, and no admin token.
    let response = stack
        .http
        .post(format!("http://{}/v1/keys", stack.broker))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{\"label\": ")
        .send()
        .await
        .unwrap();
    problems.extend(error_answer("body not JSON", response, 422, "invalid_request", None).await);
    let response = stack
        .http
        .post(format!("http://{}/v1/keys", stack.broker))
        .json(&json!({"label": "temporal-x-charge"}))
        .send()
        .await
        .unwrap();
    problems.extend(error_answer("no admin token", response, 401, "unauthorized", None).await);
    problems.extend(no_keys_and_nothing_forwarded(&stack, 0).await);
    assert_no_problems(problems);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_proxied_requests_forward_nothing() {
    let stack = Stack::spawn("bad-proxy").await;
    let issued: Value = stack
        .http
        .post(format!("http://{}/v1/keys", stack.broker))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "label": "temporal-bad-proxy-charge",
            "vendor": "stripe",
            "daily_usd_cap": 10,
            "allowed_endpoints": ["POST /v1/payment_intents"],
            "expires_in": "1h",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = issued["token"].as_str().expect("a token").to_owned();
    let mut problems = Vec::new();
    for row in PROXIED {
        let mut request = stack
            .http
            .request(
                row.method.parse().unwrap(),
                format!("http://{}{}", stack.broker, row.path),
            )
            .header("content-type", row.content_type)
            .body(row.body);
        match row.token {
            None => request = request.bearer_auth(&token),
            Some("") => {}
            Some(other) => request = request.bearer_auth(other),
        }
        for (name, value) in row.headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        problems.extend(error_answer(row.case, response, row.status, row.code, None).await);
    }
    // A body past 1 MiB.
    let huge = format!(
        "amount=500&currency=usd&description={}",
        "d".repeat(1 << 20)
    );
    let response = stack
        .http
        .post(format!("http://{}/stripe/v1/payment_intents", stack.broker))
        .bearer_auth(&token)
        .header("content-type", FORM)
        .body(huge)
        .send()
        .await
        .unwrap();
    problems
        .extend(error_answer("body over 1 MiB", response, 413, "payload_too_large", None).await);
    let key = stack
        .broker_get(&format!("/v1/keys/{}", issued["id"].as_str().unwrap()))
        .await;
    if key["spent_usd"] != 0.0 {
        problems.push(format!("the refused requests reserved spend: {key}"));
    }
    problems.extend(no_keys_and_nothing_forwarded(&stack, 1).await);
    assert_no_problems(problems);
    stack.stop().await;
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

fn binary(name: &str) -> PathBuf {
    let bin = bin_dir().join(name);
    assert!(
        bin.exists(),
        "no {}: run `cargo build --workspace`",
        bin.display()
    );
    bin
}

/// Runs a binary that should refuse at start; one that runs instead is stopped after 15 s.
async fn run_binary(command: &mut Command) -> Output {
    command.kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(15), command.output())
        .await
        .expect("refuses at start instead of running")
        .unwrap()
}

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
    run_binary(
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

/// A broker's environment that would start (the tests' own settings).
fn broker_env(db: &Path) -> Vec<(String, String)> {
    [
        ("KEYLEASE_BROKER_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ("KEYLEASE_STRIPE_SECRET_KEY", "sk_test_bad_input".to_owned()),
        (
            "KEYLEASE_BROKER_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        ),
        (
            "KEYLEASE_BROKER_DATABASE_URL",
            format!("sqlite://{}", db.display()),
        ),
        (
            "KEYLEASE_STRIPE_API_BASE",
            format!("http://127.0.0.1:{}", free_port()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn set(env: &mut Vec<(String, String)>, variable: &str, value: Option<&str>) {
    env.retain(|(k, _)| k != variable);
    if let Some(value) = value {
        env.push((variable.to_owned(), value.to_owned()));
    }
}

/// A non-zero exit whose stderr names the problem.
fn refused(case: &str, output: &Output, names: &str) -> Option<String> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        return Some(format!("{case}: exited 0: {stderr}"));
    }
    (!stderr.contains(names))
        .then(|| format!("{case}: the error does not name {names:?}: {stderr}"))
}

/// A 4xx with `{"error":{"code","message"}}`, the message naming `names` when given.
async fn error_answer(
    case: &str,
    response: reqwest::Response,
    status: u16,
    code: &str,
    names: Option<&str>,
) -> Option<String> {
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let message = body["error"]["message"].as_str().unwrap_or_default();
    if got != status || body["error"]["code"] != code || message.is_empty() {
        return Some(format!(
            "{case}: expected {status} {code}, got {got} {body}"
        ));
    }
    names
        .filter(|n| !message.contains(n))
        .map(|n| format!("{case}: the message does not name {n:?}: {message}"))
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

fn assert_no_problems(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} rows failed:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
