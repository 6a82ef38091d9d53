//! `kill -9` of the broker while charges are inside Stripe calls, then the
//! broker restarted on the same database and port: the reservations made
//! before the kill stay counted, no key passes its cap, and the workers'
//! retries complete every checkout with fresh keys.

use std::collections::BTreeMap;

use keylease_testkit::BrokerProcess;
use keylease_testkit::postgres::TestDatabase;
use keylease_tests::process::{WorkerProcess, broker_settings};
use keylease_tests::stack::{Stack, unique};
use serde_json::{Value, json};

use super::{
    active_keys, assert_money, assert_no_tokens, charges_held, histories, patient_policy, settle,
    start_checkouts, sweep_apply,
};

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_broker_on_sqlite_mid_load_then_a_restart_completes_every_checkout() {
    let db = tempfile::tempdir().expect("temp dir");
    kill_the_broker_mid_load(&format!("sqlite://{}/broker.db", db.path().display())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_broker_on_postgres_mid_load_then_a_restart_completes_every_checkout() {
    let database = TestDatabase::create("kill_broker").await;
    kill_the_broker_mid_load(database.url()).await;
}

async fn kill_the_broker_mid_load(database_url: &str) {
    const N: usize = 10;
    let stack = Stack::spawn("kill-broker").await;
    let mut broker = BrokerProcess::spawn(broker_settings(), stack.sim, database_url).await;
    keylease_tests::stack::with_worker_role(&broker.base()).await;
    let queue = unique("kill-broker-queue");
    // Every first create waits 4 s inside stripe-sim: the charges are all
    // "inside Stripe", their spend reserved, when the broker dies.
    stack
        .fault(json!({"method": "POST", "path": "/v1/payment_intents", "kind": "delay", "delay_ms": 4000, "count": N}))
        .await;
    let broker_url = format!("http://{}", broker.addr);
    let proxy_url = format!("{broker_url}/stripe");
    let worker = WorkerProcess::spawn_at(
        &stack.temporal.address,
        &queue,
        &broker_url,
        &proxy_url,
        &[],
    );
    let prefix = unique("kill-broker");
    let checkouts = start_checkouts(&stack.client, &queue, &prefix, N, &patient_policy()).await;
    charges_held(&stack, N).await;
    let before: BTreeMap<String, f64> = stack
        .keys_at(broker.addr, &prefix)
        .await
        .iter()
        .map(|k| (k["id"].as_str().unwrap().to_owned(), spent(k)))
        .collect();
    assert_eq!(before.len(), N, "one key per charge: {before:?}");
    let mut reserved: Vec<i64> = before
        .values()
        .map(|usd| (usd * 100.0).round() as i64)
        .collect();
    reserved.sort();
    assert_eq!(
        reserved,
        (0..N as i64).map(|i| 1000 + i).collect::<Vec<_>>(),
        "each charge's amount is reserved on its key before it is forwarded"
    );

    broker.kill().await;
    broker.restart().await;
    let outcomes = settle(&checkouts).await;
    assert_money(&stack, &prefix, &outcomes).await;

    let keys = stack.keys_at(broker.addr, &prefix).await;
    for (id, usd) in &before {
        let key = keys
            .iter()
            .find(|k| k["id"] == id.as_str())
            .unwrap_or_else(|| panic!("key {id} survived the restart"));
        assert_eq!(
            spent(key),
            *usd,
            "the reservation made before the kill stays"
        );
    }
    for key in &keys {
        assert!(
            spent(key) <= key["daily_usd_cap"].as_f64().unwrap(),
            "no key passes its cap: {key}"
        );
    }
    assert!(
        keys.len() > N,
        "the retries after the kill took fresh keys: {} keys",
        keys.len()
    );
    // Keys the restarted broker issued were revoked by their attempts; only
    // those whose revocation met the dead broker can be left.
    let left: Vec<&Value> = keys.iter().filter(|k| k["status"] == "active").collect();
    assert!(
        left.iter()
            .all(|k| before.contains_key(k["id"].as_str().unwrap())),
        "only keys issued before the kill are left active: {left:#?}"
    );
    assert_eq!(
        sweep_apply(&stack.temporal.address, broker.addr, &queue).await,
        left.len(),
        "the sweep revokes exactly the keys the kill left"
    );
    assert_eq!(active_keys(&stack, broker.addr, &prefix).await, 0);

    let mut texts = histories(&stack, &checkouts).await;
    texts.extend([worker.log_text(), broker.log_text()]);
    worker.stop().await;
    broker.stop().await;
    assert_no_tokens(&texts);
    stack.stop().await;
}

fn spent(key: &Value) -> f64 {
    key["spent_usd"].as_f64().expect("spent_usd")
}
