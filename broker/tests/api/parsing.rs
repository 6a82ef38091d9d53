//! Property: whatever spelling a client sends, the broker either refuses it
//! with nothing forwarded, or reserves exactly what a Stripe-compatible parser
//! (serde_qs in form mode, as stripe-sim reads forms) reads from the body
//! that was actually forwarded.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::helpers::{Backend, Issued, TestBroker};

/// Names a hostile client might try: plain, percent-encoded, bracketed, nested, repeated.
const NAMES: [&str; 22] = [
    "amount",
    "amount",
    "currency",
    "currency",
    "%61mount",
    "%5Bamount%5D",
    "[amount]",
    "amount[]",
    "amount%5B%5D",
    "amount[x]",
    "amount%5Bx%5D",
    "Amount",
    "amount%00",
    "amount+",
    "cur%72ency",
    "currency[]",
    "metadata[amount]",
    "metadata%5Bk%5D",
    "expand[]",
    "confirm",
    "a[][b]",
    "amount%2",
];

const VALUES: [&str; 16] = [
    "1",
    "500",
    "99999999",
    "0",
    "-5",
    "1.5",
    "",
    "%31%30",
    "1%00",
    "usd",
    "USD",
    "eur",
    "jpy",
    "%75sd",
    "1+0",
    "9999999999999",
];

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (prop::sample::select(&NAMES[..]), prop::sample::select(&VALUES[..]))
            .prop_map(|(name, value)| format!("{name}={value}")),
        1 => "[a-z%\\[\\]=+0-9]{0,12}",
    ]
}

fn body() -> impl Strategy<Value = String> {
    (
        // Half the bodies start as a charge Stripe would take, so both refusals
        // and forwards are exercised.
        prop::option::of((
            "[0-9]{1,8}",
            prop::sample::select(&["usd", "eur", "jpy", "USD"][..]),
        )),
        prop::collection::vec(piece(), 0..5),
        prop::sample::select(&["&", "&", "&", ";", "&&"][..]),
    )
        .prop_map(|(valid, pieces, separator)| {
            let mut all: Vec<String> = valid
                .map(|(amount, currency)| {
                    vec![format!("amount={amount}"), format!("currency={currency}")]
                })
                .unwrap_or_default();
            all.extend(pieces);
            all.join(separator)
        })
}

fn spent_micros(key: &Value) -> i64 {
    (key["spent_usd"].as_f64().unwrap() * 1e6).round() as i64
}

async fn check(broker: &TestBroker, key: &Issued, body: String) -> Result<(), TestCaseError> {
    let spent_before = spent_micros(&broker.key(&key.id).await);
    let forwarded_before = broker.upstream.received().len();
    let response = broker
        .http
        .post(broker.url("/stripe/v1/payment_intents"))
        .bearer_auth(&key.token)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let received = broker.upstream.received();
    let spent = spent_micros(&broker.key(&key.id).await) - spent_before;
    if status != 200 {
        prop_assert_eq!(
            received.len(),
            forwarded_before,
            "refused {:?} yet forwarded it",
            body
        );
        prop_assert_eq!(spent, 0, "refused {:?} yet reserved", body);
        return Ok(());
    }
    prop_assert_eq!(received.len(), forwarded_before + 1);
    let sent = &received[forwarded_before].body;
    let parsed: Value = serde_qs::Config::new()
        .use_form_encoding(true)
        .deserialize_bytes(sent.as_bytes())
        .map_err(|err| TestCaseError::fail(format!("forwarded {sent:?} does not parse: {err}")))?;
    let amount: i64 = parsed["amount"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| TestCaseError::fail(format!("forwarded {sent:?} has no amount")))?;
    let currency = parsed["currency"]
        .as_str()
        .ok_or_else(|| TestCaseError::fail(format!("forwarded {sent:?} has no currency")))?;
    let rates = keylease_broker::config::parse_usd_rates("eur=1.10,jpy=0.01").unwrap();
    let expected = keylease_broker::usd::usd_micros(amount, currency, &rates).unwrap();
    prop_assert_eq!(spent, expected, "sent {:?}, forwarded {:?}", body, sent);
    Ok(())
}

#[test]
fn what_was_valued_is_what_was_forwarded() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let broker = runtime.block_on(TestBroker::spawn(Backend::Sqlite));
    let key = runtime.block_on(broker.issue(
        "temporal-prop-charge",
        &["POST /v1/payment_intents"],
        1_000_000_000.0,
        json!(3600),
    ));
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&body(), |body| runtime.block_on(check(&broker, &key, body)));
    if let Err(failure) = result {
        panic!("{failure}");
    }
    // The property holds only if both branches were taken.
    let forwarded = broker.upstream.received().len();
    assert!(
        forwarded > 10,
        "only {forwarded} of 300 bodies were forwarded"
    );
    assert!(forwarded < 290, "{forwarded} of 300 bodies were forwarded");
}
