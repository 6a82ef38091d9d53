//! The broker's bad-input tables: every bad key request and every bad
//! proxied request gets a 4xx with a code and a message naming the problem,
//! and leaves no side effect (no key issued, nothing forwarded upstream, no
//! spend); every bad setting stops the binary before it starts. Each test
//! checks every row, then the side effects of the whole table.

use std::path::Path;

use keylease_testkit::ports::free_port;
use keylease_testkit::process::run_refusing;
use keylease_testkit::table::{assert_no_problems, refused, set_var};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::helpers::{ADMIN_TOKEN, Backend, TestBroker};

// ---------------------------------------------------------------------------
// The tables
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// The tests, and how a row is judged
// ---------------------------------------------------------------------------

pub async fn bad_key_requests_issue_no_key(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
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
        let response = broker
            .http
            .post(broker.url("/v1/keys"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        problems.extend(error_answer(case, response, 422, "invalid_request", Some(names)).await);
    }
    // Not JSON at all, and no admin token.
    let response = broker
        .http
        .post(broker.url("/v1/keys"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{\"label\": ")
        .send()
        .await
        .unwrap();
    problems.extend(error_answer("body not JSON", response, 422, "invalid_request", None).await);
    let response = broker
        .http
        .post(broker.url("/v1/keys"))
        .json(&json!({"label": "temporal-x-charge"}))
        .send()
        .await
        .unwrap();
    problems.extend(error_answer("no admin token", response, 401, "unauthorized", None).await);
    problems.extend(no_keys_and_nothing_forwarded(&broker, 0).await);
    assert_no_problems(problems);
}

pub async fn bad_proxied_requests_forward_nothing(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let (status, issued) = broker
        .issue_raw(json!({
            "label": "temporal-bad-proxy-charge",
            "vendor": "stripe",
            "daily_usd_cap": 10,
            "allowed_endpoints": ["POST /v1/payment_intents"],
            "expires_in": "1h",
        }))
        .await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().expect("a token").to_owned();
    let mut problems = Vec::new();
    for row in PROXIED {
        let mut request = broker
            .http
            .request(row.method.parse().unwrap(), broker.url(row.path))
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
    let response = broker
        .http
        .post(broker.url("/stripe/v1/payment_intents"))
        .bearer_auth(&token)
        .header("content-type", FORM)
        .body(huge)
        .send()
        .await
        .unwrap();
    problems
        .extend(error_answer("body over 1 MiB", response, 413, "payload_too_large", None).await);
    let key = broker.key(issued["id"].as_str().unwrap()).await;
    if key["spent_usd"] != 0.0 {
        problems.push(format!("the refused requests reserved spend: {key}"));
    }
    problems.extend(no_keys_and_nothing_forwarded(&broker, 1).await);
    assert_no_problems(problems);
}

#[tokio::test]
async fn bad_environments_stop_the_broker_before_it_starts() {
    let mut problems = Vec::new();
    for (case, variable, value, names) in BROKER_ENV {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("broker.db");
        let mut env = broker_env(&db);
        set_var(&mut env, variable, *value);
        let output = run_refusing(
            Command::new(env!("CARGO_BIN_EXE_keylease-broker"))
                .env_clear()
                .envs(env),
        )
        .await;
        problems.extend(refused(case, &output, names));
        if db.exists() {
            problems.push(format!("{case}: the database was created"));
        }
    }
    assert_no_problems(problems);
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
/// test issued itself) and upstream received nothing.
async fn no_keys_and_nothing_forwarded(broker: &TestBroker, keys: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let (_, listing) = broker.admin(Method::GET, "/v1/keys?limit=1000", None).await;
    let held = listing["keys"].as_array().map_or(0, Vec::len);
    if held != keys {
        problems.push(format!("the broker holds {held} keys, expected {keys}"));
    }
    let requests = broker.upstream.received();
    if !requests.is_empty() {
        problems.push(format!("upstream received {} requests", requests.len()));
    }
    problems
}
