//! The daily spend cap: valuation, atomic reservation, release and keep.

use serde_json::json;

use crate::helpers::{Backend, Reply, TestBroker, code, json_of};

const CHARGE: &[&str] = &["POST /v1/payment_intents", "POST /v1/charges"];

pub async fn over_the_cap_is_429_and_nothing_is_forwarded(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue("temporal-cap-charge", CHARGE, 25.0, json!(60))
        .await;
    let ok = broker
        .stripe_post(
            &key.token,
            "/v1/payment_intents",
            &[("amount", "2000"), ("currency", "usd")],
        )
        .await;
    assert_eq!(ok.status(), 200);
    let (status, body) = json_of(
        broker
            .stripe_post(
                &key.token,
                "/v1/charges",
                &[("amount", "501"), ("currency", "usd")],
            )
            .await,
    )
    .await;
    assert_eq!((status, code(&body)), (429, "cap_exhausted"));
    let exact = broker
        .stripe_post(
            &key.token,
            "/v1/charges",
            &[("amount", "500"), ("currency", "usd")],
        )
        .await;
    assert_eq!(exact.status(), 200, "the cap itself may be reached");
    assert_eq!(broker.upstream.received().len(), 2);
    assert_eq!(broker.key(&key.id).await["spent_usd"], 25.0);
}

pub async fn twenty_concurrent_charges_on_a_cap_for_seven_forward_exactly_seven(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    twenty_charges_on_a_cap_for_seven(&broker, &[broker.addr]).await;
}

pub async fn a_4xx_releases_the_reservation_and_a_5xx_keeps_it(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue("temporal-rel-charge", CHARGE, 10.0, json!(60))
        .await;
    let form = [("amount", "1000"), ("currency", "usd")];
    broker.upstream.script([Reply::status(402)]);
    assert_eq!(
        broker
            .stripe_post(&key.token, "/v1/payment_intents", &form)
            .await
            .status(),
        402
    );
    assert_eq!(
        broker.key(&key.id).await["spent_usd"],
        0.0,
        "declined: nothing moved"
    );
    broker.upstream.script([Reply::status(500)]);
    assert_eq!(
        broker
            .stripe_post(&key.token, "/v1/payment_intents", &form)
            .await
            .status(),
        500
    );
    assert_eq!(
        broker.key(&key.id).await["spent_usd"],
        10.0,
        "a 5xx may have moved money"
    );
    let (status, body) = json_of(
        broker
            .stripe_post(&key.token, "/v1/payment_intents", &form)
            .await,
    )
    .await;
    assert_eq!((status, code(&body)), (429, "cap_exhausted"));
}

pub async fn currencies_are_valued_in_usd(backend: Backend) {
    let broker = TestBroker::spawn(backend).await; // rates: eur=1.10, jpy=0.01
    let key = broker
        .issue("temporal-fx-charge", CHARGE, 12.0, json!(60))
        .await;
    // 10.00 EUR is 11.00 USD.
    assert_eq!(
        broker
            .stripe_post(
                &key.token,
                "/v1/charges",
                &[("amount", "1000"), ("currency", "eur")]
            )
            .await
            .status(),
        200
    );
    assert_eq!(broker.key(&key.id).await["spent_usd"], 11.0);
    // JPY is zero-decimal: 100 is 100 yen, 1.00 USD.
    assert_eq!(
        broker
            .stripe_post(
                &key.token,
                "/v1/charges",
                &[("amount", "100"), ("currency", "JPY")]
            )
            .await
            .status(),
        200
    );
    assert_eq!(broker.key(&key.id).await["spent_usd"], 12.0);
    let (status, body) = json_of(
        broker
            .stripe_post(
                &key.token,
                "/v1/charges",
                &[("amount", "1"), ("currency", "gbp")],
            )
            .await,
    )
    .await;
    assert_eq!((status, code(&body)), (403, "currency_not_allowed"));
}

pub async fn ambiguous_amounts_are_refused(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue("temporal-amb-charge", CHARGE, 1000.0, json!(60))
        .await;
    for form in [
        vec![("currency", "usd")],
        vec![("amount", "10")],
        vec![("amount", "1"), ("amount", "99999"), ("currency", "usd")],
        vec![("amount", "-5"), ("currency", "usd")],
        vec![("amount", "1.5"), ("currency", "usd")],
    ] {
        let (status, body) = json_of(
            broker
                .stripe_post(&key.token, "/v1/payment_intents", &form)
                .await,
        )
        .await;
        assert_eq!((status, code(&body)), (400, "invalid_request"), "{form:?}");
    }
    // A second amount in the query string is as ambiguous as one in the body.
    let response = broker
        .http
        .post(broker.url("/stripe/v1/payment_intents?amount=99999"))
        .bearer_auth(&key.token)
        .form(&[("amount", "1"), ("currency", "usd")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(broker.upstream.received().is_empty());
}

/// Two broker processes sharing one PostgreSQL database: the cap still holds
/// when concurrent charges on one key are split across both.
#[tokio::test]
async fn two_brokers_on_one_postgres_database_share_the_cap() {
    let broker = TestBroker::spawn(Backend::Postgres).await;
    let other = broker.sibling().await;
    twenty_charges_on_a_cap_for_seven(&broker, &[broker.addr, other]).await;
}

/// A hundred concurrent $10 charges on a $333 cap, alternating between two
/// brokers on one PostgreSQL database: exactly ⌊333/10⌋ = 33 are forwarded.
#[tokio::test]
async fn a_hundred_charges_across_two_brokers_on_postgres_forward_exactly_the_cap() {
    let broker = TestBroker::spawn(Backend::Postgres).await;
    let other = broker.sibling().await;
    charges_race_one_cap(&broker, &[broker.addr, other], 100, 333.0).await;
}

/// The same race across two brokers on one SQLite file: SQLite's single
/// writer serialises the conditional upserts, so the cap holds there too.
#[tokio::test]
async fn a_hundred_charges_across_two_brokers_on_sqlite_forward_exactly_the_cap() {
    let broker = TestBroker::spawn(Backend::Sqlite).await;
    // SQLite has no migration lock: a second broker may start only once the
    // first has migrated, which an answer from it proves (its listener is
    // bound before it migrates, so the request waits rather than failing).
    let health = broker
        .http
        .get(broker.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let other = broker.sibling().await;
    charges_race_one_cap(&broker, &[broker.addr, other], 100, 333.0).await;
}

/// Sends 20 concurrent $10 charges on a new $70-cap key, the i-th to
/// `brokers[i % n]`: exactly 7 may pass and reach upstream, 13 are refused.
async fn twenty_charges_on_a_cap_for_seven(broker: &TestBroker, brokers: &[std::net::SocketAddr]) {
    charges_race_one_cap(broker, brokers, 20, 70.0).await;
}

/// Sends `n` concurrent $10 charges on a new key capped at `cap_usd`, the
/// i-th to `brokers[i % brokers.len()]`: exactly ⌊cap/10⌋ pass and reach
/// upstream, the rest are refused 429, and the key has spent exactly that.
async fn charges_race_one_cap(
    broker: &TestBroker,
    brokers: &[std::net::SocketAddr],
    n: usize,
    cap_usd: f64,
) {
    let allowed = (cap_usd / 10.0).floor() as usize;
    let key = broker
        .issue("temporal-race-charge", CHARGE, cap_usd, json!(60))
        .await;
    let charges = (0..n).map(|i| {
        broker
            .http
            .post(format!(
                "http://{}/stripe/v1/payment_intents",
                brokers[i % brokers.len()]
            ))
            .bearer_auth(&key.token)
            .form(&[("amount", "1000"), ("currency", "usd")])
            .send()
    });
    let statuses: Vec<u16> = futures::future::join_all(charges)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        allowed,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        n - allowed,
        "{statuses:?}"
    );
    assert_eq!(broker.upstream.received().len(), allowed);
    assert_eq!(
        broker.key(&key.id).await["spent_usd"],
        allowed as f64 * 10.0
    );
}
