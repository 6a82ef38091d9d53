//! Faults while checkouts run: the worker killed with `kill -9` mid-charge,
//! a storm of Stripe 5xx answers (whose Retry-After each retry waits out),
//! and the broker's revoke endpoint refusing.
//! After each: every checkout reached its documented outcome, stripe-sim
//! holds one succeeded PaymentIntent per order and one refund per
//! compensated one, no key is left active once the workflows are closed and
//! `keys sweep --apply` has run, and no token is in any log or history.
//! The broker killed mid-load is in [`broker_kill`], the Temporal server
//! restarted mid-load in [`temporal_restart`], a worker and a broker of
//! three and two killed during 300 checkouts in [`scale_out`].

mod broker_kill;
mod plain_namespace;
mod scale_out;
mod temporal_restart;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use keylease_testkit::eventually;
use keylease_tests::process::{FaultyKeyApi, WorkerProcess};
use keylease_tests::stack::{
    ADMIN_TOKEN, CheckoutHandle, STRIPE_SECRET, Stack, WORKER_TOKEN, checkout, test_policy, unique,
};
use keylease_worker::sweep::{SweepArgs, sweep};
use keylease_workflows::{CheckoutOutcome, CheckoutPolicy, CheckoutStep, CheckoutWorkflow};
use serde_json::{Value, json};
use temporalio_client::{Client, WorkflowStartOptions};

use crate::checkout::{fulfil, outcome, wait_for_step};

/// A client of the dev server at `address` (one of a test's own) on `queue`.
pub(crate) async fn client_at(address: &str, queue: &str) -> Client {
    keylease_worker::connect::temporal_client(&keylease_tests::stack::temporal_args(address, queue))
        .await
        .expect("temporal client")
}

/// The worker binary on the dev server at `address`, with `stack`'s broker.
fn worker_at(stack: &Stack, address: &str, queue: &str) -> WorkerProcess {
    WorkerProcess::spawn_at(
        address,
        queue,
        &format!("http://{}", stack.broker),
        &format!("http://{}/stripe", stack.broker),
        &[],
    )
}

/// `n` checkouts on `queue`, ids `<prefix>-<i>`, orders `order-<prefix>-<i>`, paid by card.
pub(crate) async fn start_checkouts(
    client: &Client,
    queue: &str,
    prefix: &str,
    n: usize,
    policy: &CheckoutPolicy,
) -> Vec<(String, CheckoutHandle)> {
    start_checkouts_paying(client, queue, prefix, n, policy, |_| "pm_card_visa").await
}

/// [`start_checkouts`], checkout `i` paying with the test payment method `card(i)`.
async fn start_checkouts_paying(
    client: &Client,
    queue: &str,
    prefix: &str,
    n: usize,
    policy: &CheckoutPolicy,
    card: impl Fn(usize) -> &'static str,
) -> Vec<(String, CheckoutHandle)> {
    let mut started = Vec::new();
    for i in 0..n {
        let wf = format!("{prefix}-{i}");
        let mut input = checkout(&format!("order-{wf}"), 1000 + i as i64, card(i));
        input.policy = Some(policy.clone());
        client
            .start_workflow(
                CheckoutWorkflow::run,
                input.into(),
                WorkflowStartOptions::new(queue.to_owned(), wf.clone()).build(),
            )
            .await
            .expect("start checkout");
        started.push((
            wf.clone(),
            client.get_workflow_handle::<CheckoutWorkflow>(wf),
        ));
    }
    started
}

/// Waits until stripe-sim has received `n` PaymentIntent creates (held there by a delay fault).
async fn charges_held(stack: &Stack, n: usize) {
    eventually(
        Duration::from_secs(30),
        &format!("{n} charges held in Stripe calls"),
        || async {
            let requests = stack.sim_held("requests").await;
            let creates = requests
                .iter()
                .filter(|r| r["method"] == "POST" && r["path"] == "/v1/payment_intents")
                .count();
            (creates == n).then_some(())
        },
    )
    .await;
}

/// Whether checkout `i`'s order is fulfilled; the others are out of stock and refunded.
fn fulfilled(i: usize) -> bool {
    i.is_multiple_of(2)
}

/// Fulfils the checkouts [`fulfilled`] says (fails the others) once each
/// is charged, then returns each outcome.
pub(crate) async fn settle(checkouts: &[(String, CheckoutHandle)]) -> Vec<CheckoutOutcome> {
    let each = checkouts
        .iter()
        .enumerate()
        .map(|(i, (_, handle))| async move {
            wait_for_step(handle, CheckoutStep::AwaitingFulfilment).await;
            fulfil(handle, fulfilled(i), Some("out of stock")).await;
            outcome(handle).await
        });
    futures::future::join_all(each).await
}

/// Each checkout's outcome is the documented one (completed when
/// [`fulfilled`], else compensated; failed with `CardDeclined` when its
/// card is one stripe-sim declines), and stripe-sim holds exactly one
/// PaymentIntent per order, succeeded unless declined, and one refund per
/// compensated one.
async fn assert_money(stack: &Stack, prefix: &str, outcomes: &[CheckoutOutcome]) {
    let mut charged = BTreeMap::new();
    let mut refunded = Vec::new();
    let mut declined = Vec::new();
    for (i, outcome) in outcomes.iter().enumerate() {
        let order = format!("order-{prefix}-{i}");
        match outcome {
            CheckoutOutcome::Completed { payment_intent_id } if fulfilled(i) => {
                charged.insert(order, payment_intent_id.clone());
            }
            CheckoutOutcome::Compensated {
                payment_intent_id, ..
            } if !fulfilled(i) => {
                charged.insert(order, payment_intent_id.clone());
                refunded.push(payment_intent_id.clone());
            }
            CheckoutOutcome::Failed { error_type, .. } if error_type == "CardDeclined" => {
                declined.push(order);
            }
            other => panic!("checkout {i}: {other:?}"),
        }
    }
    let intents: Vec<Value> = stack
        .sim_held("payment_intents")
        .await
        .into_iter()
        .filter(|pi| {
            pi["metadata"]["order_id"]
                .as_str()
                .is_some_and(|o| o.starts_with(&format!("order-{prefix}-")))
        })
        .collect();
    let succeeded: BTreeMap<String, String> = intents
        .iter()
        .filter(|pi| pi["status"] == "succeeded")
        .map(|pi| {
            (
                pi["metadata"]["order_id"].as_str().unwrap().to_owned(),
                pi["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        intents.len(),
        outcomes.len(),
        "one PaymentIntent per order, no double charge: {intents:#?}"
    );
    assert_eq!(
        succeeded, charged,
        "each order's charge is the one it reports"
    );
    for order in &declined {
        let pi = intents
            .iter()
            .find(|pi| pi["metadata"]["order_id"] == order.as_str())
            .unwrap_or_else(|| panic!("{order} was declined at stripe-sim"));
        let card = pi["last_payment_error"]["payment_method"]["id"]
            .as_str()
            .unwrap_or_default();
        assert!(
            pi["status"] == "requires_payment_method" && card.starts_with("pm_card_chargeDeclined"),
            "{order} failed as declined, and its card is one that declines: {pi}"
        );
    }
    let mut refunds: Vec<String> = stack
        .sim_held("refunds")
        .await
        .into_iter()
        .filter_map(|r| r["payment_intent"].as_str().map(str::to_owned))
        .filter(|pi| succeeded.values().any(|s| s == pi))
        .collect();
    refunds.sort();
    refunded.sort();
    assert_eq!(refunds, refunded, "one refund per compensated checkout");
}

/// Runs `keys sweep --apply` for `broker` against the Temporal server at
/// `temporal_address`; returns how many keys it revoked.
async fn sweep_apply(temporal_address: &str, broker: SocketAddr, queue: &str) -> usize {
    let args = SweepArgs {
        temporal: keylease_tests::stack::temporal_args(temporal_address, queue),
        broker_url: format!("http://{broker}").parse().unwrap(),
        broker_token: WORKER_TOKEN.into(),
        transport: Default::default(),
        apply: true,
    };
    sweep(&args).await.expect("keys sweep --apply").len()
}

/// Active keys at `broker` whose label starts with `temporal-<prefix>-`.
async fn active_keys(stack: &Stack, broker: SocketAddr, prefix: &str) -> usize {
    keylease_tests::stack::active_keys(&stack.http, broker, prefix).await
}

/// No broker token, admin token or Stripe secret in the texts (logs, histories).
fn assert_no_tokens(texts: &[String]) {
    for text in texts {
        for secret in [ADMIN_TOKEN, WORKER_TOKEN, STRIPE_SECRET, "vk_"] {
            assert!(
                !text.contains(secret),
                "{secret:?} appears in a log or history"
            );
        }
    }
}

async fn histories(stack: &Stack, checkouts: &[(String, CheckoutHandle)]) -> Vec<String> {
    let mut texts = Vec::new();
    for (_, handle) in checkouts {
        texts.push(stack.history_text(handle).await);
    }
    texts
}

/// A policy that retries charges until schedule_to_close rather than
/// giving up after 4 attempts: a killed worker's attempts time out on heartbeats.
fn patient_policy() -> CheckoutPolicy {
    let mut policy = test_policy();
    policy.charge.retry.maximum_attempts = 0;
    policy.refund.retry.maximum_attempts = 0;
    policy
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_worker_during_twenty_charges_then_a_new_worker_completes_them() {
    const N: usize = 20;
    let stack = Stack::spawn("kill-worker").await;
    let queue = unique("kill-worker-queue");
    let broker = format!("http://{}", stack.broker);
    // Every first create waits 4 s inside stripe-sim: the charges are all
    // "inside Stripe" when the worker dies.
    stack
        .fault(json!({"method": "POST", "path": "/v1/payment_intents", "kind": "delay", "delay_ms": 4000, "count": N}))
        .await;
    let mut first = WorkerProcess::spawn(&stack, &queue, &broker, &[]);
    let prefix = unique("kill");
    let checkouts = start_checkouts(&stack.client, &queue, &prefix, N, &patient_policy()).await;
    charges_held(&stack, N).await;
    first.kill().await;
    let left = active_keys(&stack, stack.broker, &prefix).await;
    assert_eq!(left, N, "the killed worker left one live key per charge");

    let second = WorkerProcess::spawn(&stack, &queue, &broker, &[]);
    let outcomes = settle(&checkouts).await;
    assert_money(&stack, &prefix, &outcomes).await;

    // Issue 19 (finding 10): each charge's next attempt revoked the key the
    // killed attempt left, before issuing its own; nothing waits for a TTL.
    assert_eq!(
        active_keys(&stack, stack.broker, &prefix).await,
        0,
        "the next attempts revoked the killed attempts' keys"
    );
    assert_eq!(
        sweep_apply(&stack.temporal.address, stack.broker, &queue).await,
        0,
        "nothing is left for the sweep"
    );
    let mut texts = histories(&stack, &checkouts).await;
    texts.extend([first.log_text(), second.log_text()]);
    second.stop().await;
    assert_no_tokens(&texts);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_storm_of_stripe_5xx_on_half_the_charges_for_10_s_is_retried_after_retry_after() {
    const N: usize = 20;
    // Above the test policy's retry intervals (200 ms to 1 s), so a retry
    // that ignored it would come visibly sooner.
    const RETRY_AFTER_S: u64 = 3;
    let stack = Stack::spawn("storm").await;
    let queue = unique("storm-queue");
    let broker = format!("http://{}", stack.broker);
    // For 10 s every second create answers 503 (not executed) with a
    // Retry-After; of those it passes over, two lose their answer after the
    // PaymentIntent was made.
    let storm = stack
        .fault(json!({"method": "POST", "path": "/v1/payment_intents", "kind": "status", "status": 503, "retry_after": RETRY_AFTER_S, "fraction": 0.5, "duration_ms": 10_000}))
        .await;
    let drops = stack
        .fault(json!({"method": "POST", "path": "/v1/payment_intents", "kind": "drop_after_commit", "count": 2}))
        .await;
    let worker = WorkerProcess::spawn(&stack, &queue, &broker, &[]);
    let prefix = unique("storm");
    let checkouts = start_checkouts(&stack.client, &queue, &prefix, N, &patient_policy()).await;
    let outcomes = settle(&checkouts).await;
    assert_money(&stack, &prefix, &outcomes).await;

    let creates = creates_by_charge(&stack).await;
    let hit_by = |fault: &Value| {
        creates
            .values()
            .flatten()
            .filter(|r| r["fault"] == fault["id"])
            .count()
    };
    let (storm_hits, dropped) = (hit_by(&storm), hit_by(&drops));
    assert!(
        storm_hits >= N / 2,
        "the storm hit at least every second first attempt: {storm_hits}"
    );
    assert_eq!(dropped, 2, "both lost answers happened");
    let unavailable = worker
        .metric(
            r#"keylease_activity_outcomes_total{activity="charge",outcome="StripeUnavailable"}"#,
        )
        .await;
    assert_eq!(
        unavailable,
        (storm_hits + dropped) as f64,
        "each 503 and each lost answer failed one attempt as StripeUnavailable, which was retried"
    );
    let waits = waits_after(&creates, &storm);
    assert_eq!(
        waits.len(),
        storm_hits,
        "every charge the storm hit tried again: {waits:?}"
    );
    assert!(
        waits
            .iter()
            .all(|wait| *wait >= Duration::from_secs(RETRY_AFTER_S)),
        "each retry waited out Retry-After: {RETRY_AFTER_S} s: {waits:?}"
    );

    assert_eq!(
        sweep_apply(&stack.temporal.address, stack.broker, &queue).await,
        0,
        "every attempt revoked its key"
    );
    assert_eq!(active_keys(&stack, stack.broker, &prefix).await, 0);
    let mut texts = histories(&stack, &checkouts).await;
    texts.push(worker.log_text());
    worker.stop().await;
    assert_no_tokens(&texts);
    stack.stop().await;
}

/// The PaymentIntent creates stripe-sim received, by idempotency key (one
/// per charge, the same on every attempt), in the order they came.
async fn creates_by_charge(stack: &Stack) -> BTreeMap<String, Vec<Value>> {
    let mut creates = BTreeMap::<String, Vec<Value>>::new();
    for request in stack.sim_held("requests").await {
        if request["method"] == "POST" && request["path"] == "/v1/payment_intents" {
            let key = request["headers"]["idempotency-key"]
                .as_str()
                .expect("every create carries an idempotency key")
                .to_owned();
            creates.entry(key).or_default().push(request);
        }
    }
    creates
}

/// For each create `fault` hit, how long until the same charge's next create came.
fn waits_after(creates: &BTreeMap<String, Vec<Value>>, fault: &Value) -> Vec<Duration> {
    let received = |r: &Value| r["received_at_ms"].as_i64().expect("received_at_ms");
    creates
        .values()
        .flat_map(|attempts| attempts.windows(2))
        .filter(|pair| pair[0]["fault"] == fault["id"])
        .map(|pair| {
            Duration::from_millis(
                u64::try_from(received(&pair[1]) - received(&pair[0])).unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn revocations_refused_still_complete_the_checkouts_and_keys_expire_by_ttl() {
    const N: usize = 4;
    let stack = Stack::spawn("revoke-down").await;
    let queue = unique("revoke-down-queue");
    let key_api = FaultyKeyApi::spawn(stack.broker).await;
    key_api.fail_revocations(true);
    let worker = WorkerProcess::spawn(
        &stack,
        &queue,
        &format!("http://{}", key_api.addr),
        &[("KEYLEASE_REVOKE_BUDGET", "300ms")],
    );
    // schedule_to_close 5 s: keys live 6 s, so the test sees them expire.
    let mut policy = test_policy();
    for activity in [&mut policy.charge, &mut policy.refund] {
        activity.schedule_to_close = Duration::from_secs(5);
        activity.start_to_close = Duration::from_secs(5);
    }
    let prefix = unique("revoke-down");
    let checkouts = start_checkouts(&stack.client, &queue, &prefix, N, &policy).await;
    let outcomes = settle(&checkouts).await;
    key_api.fail_revocations(false);
    assert_money(&stack, &prefix, &outcomes).await;

    // A key per attempt of each charge and refund; none revoked.
    let keys = stack.keys_of(&prefix).await.len();
    assert!(keys >= N + N / 2, "a key per charge and per refund: {keys}");
    assert!(key_api.refused() >= keys, "every revocation was refused");
    let failures = worker
        .metric("keylease_key_revocation_failures_total")
        .await;
    assert_eq!(failures, keys as f64, "each unrevoked key is counted once");
    eventually(
        Duration::from_secs(15),
        "every key expired by its TTL",
        || async {
            let keys = stack.keys_of(&prefix).await;
            keys.iter().all(|k| k["status"] == "expired").then_some(())
        },
    )
    .await;
    assert_eq!(
        sweep_apply(&stack.temporal.address, stack.broker, &queue).await,
        0,
        "nothing left to sweep"
    );
    let mut texts = histories(&stack, &checkouts).await;
    texts.push(worker.log_text());
    worker.stop().await;
    assert_no_tokens(&texts);
    stack.stop().await;
}
