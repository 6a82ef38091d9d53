//! What attacks on the issue 19 change found, each fixed: refunds answered
//! with something other than Stripe's refusal, a refund already made, a
//! fulfilment sent with the start, a broker role older than the list read,
//! PaymentIntents planted with a checkout's metadata to hide its charge from
//! `reconcile`.

use std::time::Duration;

use keylease_testkit::eventually;
use keylease_tests::process::WorkerProcess;
use keylease_tests::raw::{RawOutcome, RawWorker};
use keylease_tests::stack::{Stack, checkout, unique};
use keylease_workflows::{CheckoutOutcome, CheckoutStep, CheckoutWorkflow};
use temporalio_client::WorkflowStartOptions;

use super::{drop_every_create_answer, intents_of, sim_form};
use crate::checkout::{fulfil, outcome, wait_for_step};

/// An attack on the compensation: a 401 (a Stripe key being rotated at the
/// broker), 403 or 404 is not Stripe refusing the refund, yet it ended
/// `CompensationFailed` with the money kept. It is now one more round.
#[tokio::test(flavor = "multi_thread")]
async fn a_refund_answer_that_is_not_stripes_refusal_is_retried() {
    let stack = Stack::spawn("refund-401").await;
    let wf = unique("refund-401");
    let handle = stack
        .start(&wf, checkout("order-refund-401", 1900, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    for status in [401, 403, 404] {
        stack
            .fault(serde_json::json!({"method": "POST", "path": "/v1/refunds", "kind": "status", "status": status}))
            .await;
    }
    fulfil(&handle, false, Some("out of stock")).await;
    let ended = outcome(&handle).await;
    assert!(
        matches!(ended, CheckoutOutcome::Compensated { .. }),
        "{ended:?}"
    );
    assert_eq!(stack.sim_held("refunds").await.len(), 1);
    stack.stop().await;
}

/// An attack on the compensation: a refund that committed but whose
/// answers were lost, retried after Stripe's 24 h idempotency window, got
/// "already been refunded" and ended `CompensationFailed` although the
/// money went back. The refund is now looked up and the checkout ends
/// `Compensated` with it.
#[tokio::test(flavor = "multi_thread")]
async fn a_refund_found_already_made_a_day_later_ends_compensated() {
    let stack = Stack::spawn("refund-late").await;
    let wf = unique("refund-late");
    let handle = stack
        .start(&wf, checkout("order-refund-late", 2300, "pm_card_visa"))
        .await;
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    stack
        .fault(serde_json::json!({"method": "POST", "path": "/v1/refunds", "kind": "drop_after_commit", "duration_ms": 6000}))
        .await;
    fulfil(&handle, false, Some("out of stock")).await;
    let refund_id = eventually(Duration::from_secs(20), "the refund made", || async {
        let refunds = stack.sim_held("refunds").await;
        refunds
            .first()
            .and_then(|r| r["id"].as_str().map(str::to_owned))
    })
    .await;
    stack
        .sim_control(
            "/_sim/clock",
            serde_json::json!({"advance_seconds": 25 * 3600}),
        )
        .await;
    let CheckoutOutcome::Compensated {
        refund_id: found, ..
    } = outcome(&handle).await
    else {
        panic!("the refund made is found");
    };
    assert_eq!(found, refund_id);
    stack
        .record_history(&handle, "compensated-refund-found")
        .await;
    assert_eq!(stack.sim_held("refunds").await.len(), 1, "refunded once");
    stack.stop().await;
}

/// An attack on finding 6: a `fulfil` Update sent with the start
/// (update-with-start) was taken before the run knew its rules, and
/// answered "recorded". It is refused like any Update before the charge.
#[tokio::test(flavor = "multi_thread")]
async fn a_fulfil_sent_with_the_start_is_refused() {
    let stack = Stack::spawn("update-with-start").await;
    let wf = unique("update-with-start");
    let input = serde_json::to_string(&checkout("order-uws", 2400, "pm_card_visa")).unwrap();
    let (ok, text) = stack.temporal_cli(&[
        "workflow",
        "execute-update-with-start",
        "--workflow-id",
        &wf,
        "--type",
        "checkout",
        "--task-queue",
        &stack.task_queue,
        "--id-conflict-policy",
        "UseExisting",
        "--input",
        &input,
        "--update-name",
        "fulfil",
        "--update-input",
        r#"{"ok": true}"#,
    ]);
    assert!(!ok && text.contains("not charged yet"), "{text}");
    let handle = stack.client.get_workflow_handle::<CheckoutWorkflow>(&wf);
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    stack.stop().await;
}

/// An attack on the worker's upgrade: a role made before reconcile read
/// Stripe's list does not allow it, and every reconcile key was refused
/// (`ChargeOutcomeUnknown` with the customer charged). The worker now says
/// so at start and reconciles on search alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_role_made_before_the_list_read_still_reconciles() {
    let stack = Stack::spawn("old-role").await;
    let mut endpoints = keylease_activities::needs::endpoints();
    endpoints.retain(|entry| *entry != keylease_activities::reconcile::LIST_ENDPOINT);
    let http = reqwest::Client::new();
    let broker = format!("http://{}", stack.broker);
    let role = serde_json::json!({
        "name": "before-the-list", "vendor": "stripe", "label_prefix": "temporal-",
        "allowed_endpoints": endpoints, "max_key_usd_cap": 1000.0, "daily_usd_cap": 100000.0,
        "max_expires_in": 86400, "allow_allowed_objects": true, "allow_allowed_metadata": true,
    });
    let token = "rt_old_role_7d2f9a1c4e8b3f6a0d5c2e9b";
    for (path, body) in [
        ("/v1/roles".to_owned(), role),
        (
            "/v1/roles/before-the-list/tokens".to_owned(),
            serde_json::json!({"token": token}),
        ),
    ] {
        let answer = http
            .post(format!("{broker}{path}"))
            .bearer_auth(keylease_tests::stack::ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "{path}: {}",
            answer.text().await.unwrap()
        );
    }
    let queue = unique("old-role-queue");
    let worker = WorkerProcess::spawn(&stack, &queue, &broker, &[("KEYLEASE_BROKER_TOKEN", token)]);
    drop_every_create_answer(&stack).await;
    let wf = unique("old-role");
    stack
        .client
        .start_workflow(
            CheckoutWorkflow::run,
            checkout("order-old-role", 2500, "pm_card_visa").into(),
            WorkflowStartOptions::new(queue.clone(), wf.clone()).build(),
        )
        .await
        .expect("start");
    let handle = stack.client.get_workflow_handle::<CheckoutWorkflow>(&wf);
    wait_for_step(&handle, CheckoutStep::AwaitingFulfilment).await;
    fulfil(&handle, true, None).await;
    assert!(matches!(
        outcome(&handle).await,
        CheckoutOutcome::Completed { .. }
    ));
    assert_eq!(intents_of(&stack, "order-old-role").await.len(), 1);
    assert!(
        worker
            .log_text()
            .contains("does not allow an endpoint the activities ask for"),
        "{}",
        worker.log_text()
    );
    worker.stop().await;
    stack.stop().await;
}

/// A PaymentIntent of `checkout_id` made straight at stripe-sim (by anyone
/// who can create PaymentIntents on the account): its id.
async fn planted(stack: &Stack, checkout_id: &str, paid: bool) -> String {
    let mut form = vec![("metadata[checkout_id]", checkout_id)];
    form.extend(sim_form(paid));
    let made = stack.sim_create(&form).await;
    made["id"].as_str().expect("an id").to_owned()
}

/// `reconcile` once, for `checkout_id`, with `more` of its input: without
/// `checkout_began_ms` (a caller of the older contract), on search alone.
async fn reconcile_once(
    stack: &Stack,
    raw: &RawWorker,
    checkout_id: &str,
    more: serde_json::Value,
) -> RawOutcome {
    let mut input = serde_json::json!({
        "order_id": "order-planted", "checkout_id": checkout_id, "search_window_ms": 60_000,
    });
    for (field, value) in more.as_object().expect("fields") {
        input[field] = value.clone();
    }
    raw.run(stack, &unique("planted"), "reconcile", input).await
}

/// The charge `reconcile` answered, or a panic naming `what`.
fn charged(outcome: RawOutcome, what: &str) -> serde_json::Value {
    match outcome {
        RawOutcome::Succeeded(found) if found["verdict"] == "charged" => found,
        other => panic!("{what}: {other:?}"),
    }
}

/// When the checkout began, for `checkout_began_ms`: a minute ago.
fn began_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    u64::try_from(now.expect("after 1970").as_millis()).expect("ms") - 60_000
}

/// Reconcile on search alone read the first ten results: ten unpaid
/// PaymentIntents with the checkout's metadata, made after its charge,
/// read as "nothing charged" while the charge stood. And one unpaid
/// PaymentIntent that search had indexed, while it had not yet indexed the
/// charge, read as "nothing charged" at once, within the search window.
/// Every page is read now (here 101 planted after the charge: two pages),
/// and no charge found within the window is "not yet", whatever else was
/// found.
#[tokio::test(flavor = "multi_thread")]
async fn payment_intents_planted_with_a_checkouts_metadata_do_not_hide_its_charge() {
    let stack = Stack::spawn("planted").await;
    let raw = RawWorker::spawn(&stack);

    let after = unique("checkout-planted-after");
    let charge = planted(&stack, &after, true).await;
    for _ in 0..101 {
        planted(&stack, &after, false).await;
    }
    let found = charged(
        reconcile_once(&stack, &raw, &after, serde_json::json!({})).await,
        "the charge behind 101 planted PaymentIntents is found",
    );
    assert_eq!(found["payment_intent_id"], charge.as_str(), "{found}");

    let before = unique("checkout-planted-before");
    planted(&stack, &before, false).await;
    // The charge is made after search fell ten minutes behind: only the
    // planted PaymentIntent is indexed when reconcile looks.
    stack
        .sim_control(
            "/_sim/config",
            serde_json::json!({"search_indexing_delay_ms": 600_000}),
        )
        .await;
    planted(&stack, &before, true).await;
    match reconcile_once(&stack, &raw, &before, serde_json::json!({})).await {
        RawOutcome::Failed { error_type, .. } if error_type == "NotYetIndexed" => {}
        other => panic!("a charge search has not indexed is not yet an answer: {other:?}"),
    }
    raw.stop().await;
    stack.stop().await;
}

/// Two more ways a PaymentIntent made with the checkout's metadata hid its
/// charge (a helper's review of the fix above), through the reconcile of
/// today's contract (`checkout_began_ms`, the list, reads of refunds):
/// - one that holds no money, named as the checkout's PaymentIntent (the
///   one a `ChargeProcessing` failure named, followed until it settles),
///   answered "nothing charged" from itself alone;
/// - one charged and refunded in full, made after the charge, was the
///   first charge found (or the one named) and answered "refunded", and
///   the checkout would have ended compensated with the money kept; with
///   nine unpaid ones after it, search's first page alone answered so (a
///   second review).
#[tokio::test(flavor = "multi_thread")]
async fn a_planted_payment_that_failed_or_was_refunded_does_not_answer_for_the_checkout() {
    let stack = Stack::spawn("planted-named").await;
    let raw = RawWorker::spawn(&stack);

    let failed = unique("checkout-planted-failed");
    let charge = planted(&stack, &failed, true).await;
    let named = planted(&stack, &failed, false).await;
    let more = serde_json::json!({"checkout_began_ms": began_ms(), "payment_intent_id": named});
    let found = charged(
        reconcile_once(&stack, &raw, &failed, more).await,
        "a failed PaymentIntent named does not hide the charge",
    );
    assert_eq!(found["payment_intent_id"], charge.as_str(), "{found}");

    let refunded = unique("checkout-planted-refunded");
    let charge = planted(&stack, &refunded, true).await;
    let decoy = planted(&stack, &refunded, true).await;
    stack.sim_refund(&decoy, None).await;
    // Nine unpaid after it: search's first page of ten holds the decoy, not the charge.
    for _ in 0..9 {
        planted(&stack, &refunded, false).await;
    }
    for (case, more) in [
        (
            "found",
            serde_json::json!({"checkout_began_ms": began_ms()}),
        ),
        (
            "named",
            serde_json::json!({"checkout_began_ms": began_ms(), "payment_intent_id": decoy}),
        ),
    ] {
        let found = charged(
            reconcile_once(&stack, &raw, &refunded, more).await,
            &format!("a refunded decoy {case} does not hide the charge"),
        );
        assert_eq!(
            found["payment_intent_id"],
            charge.as_str(),
            "{case}: {found}"
        );
        let refund_id = found.get("refund_id");
        assert!(refund_id.is_none_or(|id| id.is_null()), "{case}: {found}");
    }
    raw.stop().await;
    stack.stop().await;
}

/// Stripe embeds a charge's ten most recent refunds. A charge made with the
/// checkout's metadata and refunded in eleven parts read as holding money,
/// and reconcile answered "charged" for a checkout that charged nothing (a
/// helper's review). A charge whose money may all be back is not yet an
/// answer now; one refunded in eleven parts that surely still holds some
/// still is.
#[tokio::test(flavor = "multi_thread")]
async fn a_charge_refunded_in_eleven_parts_is_not_taken_for_one_that_holds_money() {
    let stack = Stack::spawn("eleven-refunds").await;
    let raw = RawWorker::spawn(&stack);
    let more = || serde_json::json!({"checkout_began_ms": began_ms()});

    let decoyed = unique("checkout-eleven-decoy");
    let decoy = planted(&stack, &decoyed, true).await;
    for amount in [9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 10] {
        stack.sim_refund(&decoy, Some(amount)).await;
    }
    match reconcile_once(&stack, &raw, &decoyed, more()).await {
        RawOutcome::Failed { error_type, .. } if error_type == "NotYetIndexed" => {}
        other => panic!("a charge that may be all refunded is no answer: {other:?}"),
    }

    let held = unique("checkout-eleven-held");
    let charge = planted(&stack, &held, true).await;
    for _ in 0..11 {
        stack.sim_refund(&charge, Some(1)).await;
    }
    let found = charged(
        reconcile_once(&stack, &raw, &held, more()).await,
        "a charge refunded in eleven small parts still holds money",
    );
    assert_eq!(found["payment_intent_id"], charge.as_str(), "{found}");
    assert!(
        found.get("refund_id").is_none_or(|id| id.is_null()),
        "{found}"
    );
    raw.stop().await;
    stack.stop().await;
}
