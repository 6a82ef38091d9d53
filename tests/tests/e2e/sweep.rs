//! `keys sweep` finds and revokes the live key of a terminated run, and in
//! a running workflow the key of an attempt that is over; it leaves the key
//! of a running attempt alone.

use keylease_tests::stack::{ADMIN_TOKEN, Stack, WORKER_TOKEN, checkout, unique};
use keylease_worker::sweep::{SweepArgs, sweep};
use keylease_workflows::CheckoutWorkflow;
use serde_json::json;
use temporalio_client::{WorkflowStartOptions, WorkflowTerminateOptions};

/// A key as a worker that crashed mid-attempt leaves it: issued for the
/// run with the worker's role token, never revoked.
async fn crashed_attempt_key(stack: &Stack, workflow_id: &str, run_id: &str) -> String {
    crashed_attempt_key_in(stack, WORKER_TOKEN, "default", workflow_id, run_id).await
}

/// The same, issued with `token` by a worker of `namespace`.
async fn crashed_attempt_key_in(
    stack: &Stack,
    token: &str,
    namespace: &str,
    workflow_id: &str,
    run_id: &str,
) -> String {
    let response = stack
        .http
        .post(format!("http://{}/v1/keys", stack.broker))
        .bearer_auth(token)
        .json(&json!({
            "label": format!("temporal-{workflow_id}-charge"),
            "vendor": "stripe",
            "daily_usd_cap": 10,
            "allowed_endpoints": ["POST /v1/payment_intents"],
            "expires_in": "1h",
            "metadata": {"workflow_id": workflow_id, "run_id": run_id, "activity_id": "charge", "attempt": "1", "activity_type": "charge", "namespace": namespace},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn sweep_revokes_only_keys_of_closed_runs() {
    let stack = Stack::spawn("sweep").await;
    // A queue no worker polls: these checkouts stay running and start nothing themselves.
    let idle_queue = unique("idle");
    let mut keys = Vec::new();
    let mut handles = Vec::new();
    let mut runs = Vec::new();
    for name in ["sweep-idle", "sweep-dead"] {
        let wf = unique(name);
        let handle = stack
            .client
            .start_workflow(
                CheckoutWorkflow::run,
                checkout(&format!("order-{wf}"), 500, "pm_card_visa").into(),
                WorkflowStartOptions::new(idle_queue.clone(), wf.clone()).build(),
            )
            .await
            .unwrap();
        let run_id = handle.run_id().expect("a started run has an id").to_owned();
        keys.push(crashed_attempt_key(&stack, &wf, &run_id).await);
        runs.push((wf, run_id));
        handles.push(handle);
    }
    let (idle_key, dead_key) = (&keys[0], &keys[1]);
    // A live key of a running workflow in another namespace: "not found" in this one.
    let other_namespace_key = crashed_attempt_key_in(
        &stack,
        WORKER_TOKEN,
        "other-ns",
        &unique("elsewhere"),
        "run-elsewhere",
    )
    .await;
    // The dead run's key as another role (here the admin) issued it: a
    // sweep on the worker's role token neither sees nor revokes it.
    let (dead_wf, dead_run) = &runs[1];
    let not_the_roles_key =
        crashed_attempt_key_in(&stack, ADMIN_TOKEN, "default", dead_wf, dead_run).await;
    handles[1]
        .terminate(
            WorkflowTerminateOptions::builder()
                .reason("test: worker crashed")
                .build(),
        )
        .await
        .unwrap();

    let mut args = SweepArgs {
        temporal: keylease_tests::stack::temporal_args(&stack.temporal.address, &idle_queue),
        broker_url: format!("http://{}", stack.broker).parse().unwrap(),
        broker_token: WORKER_TOKEN.into(),
        transport: Default::default(),
        apply: false,
    };
    let mut found = sweep(&args).await.unwrap();
    found.sort_by_key(|orphan| orphan.key_id != *dead_key);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(&found[0].key_id, dead_key);
    assert_eq!(found[0].reason, "terminated");
    // The idle run is open, but no attempt of its charge runs: the key a
    // crashed attempt left is over too.
    assert_eq!(&found[1].key_id, idle_key);
    assert_eq!(found[1].reason, "its activity charge is no longer running");
    let status = |id: String| {
        let stack = &stack;
        async move {
            stack.broker_get(&format!("/v1/keys/{id}")).await["status"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(
        status(dead_key.clone()).await,
        "active",
        "a dry run revokes nothing"
    );

    args.apply = true;
    assert_eq!(sweep(&args).await.unwrap().len(), 2);
    assert_eq!(status(dead_key.clone()).await, "revoked");
    assert_eq!(status(idle_key.clone()).await, "revoked");
    assert_eq!(
        status(other_namespace_key.clone()).await,
        "active",
        "another namespace's key is not this sweep's to judge"
    );
    assert_eq!(
        status(not_the_roles_key.clone()).await,
        "active",
        "a key another role issued is not the worker's role's to revoke"
    );
    assert!(
        sweep(&args).await.unwrap().is_empty(),
        "nothing left to sweep"
    );
    handles[0]
        .terminate(WorkflowTerminateOptions::default())
        .await
        .unwrap();
    stack.stop().await;
}

/// Issue 19, finding 10's rest: `keys sweep` skipped running workflows, so
/// the key of a charge attempt whose worker was killed stayed live until
/// its TTL while the checkout went on. It now revokes it once Temporal has
/// moved to the next attempt, and never the key of an attempt still running.
#[tokio::test(flavor = "multi_thread")]
async fn sweep_revokes_a_superseded_attempts_key_and_never_a_running_ones() {
    let stack = Stack::spawn("sweep-attempts").await;
    let queue = unique("sweep-attempts-queue");
    let broker = format!("http://{}", stack.broker);
    let mut worker = keylease_tests::process::WorkerProcess::spawn(&stack, &queue, &broker, &[]);
    // The create waits 30 s inside stripe-sim: the charge's first attempt
    // runs, holding its key, for as long as the test needs.
    stack
        .fault(json!({"method": "POST", "path": "/v1/payment_intents", "kind": "delay", "delay_ms": 30_000, "count": 1}))
        .await;
    let wf = unique("sweep-attempts");
    stack
        .client
        .start_workflow(
            CheckoutWorkflow::run,
            checkout(&format!("order-{wf}"), 700, "pm_card_visa").into(),
            WorkflowStartOptions::new(queue.clone(), wf.clone()).build(),
        )
        .await
        .unwrap();
    let key = keylease_testkit::eventually(
        std::time::Duration::from_secs(30),
        "the charge's first attempt inside Stripe",
        || async {
            stack
                .sim_held("requests")
                .await
                .iter()
                .any(|r| r["method"] == "POST")
                .then_some(())?;
            let keys = stack.keys_of(&wf).await;
            keys.into_iter()
                .find(|k| k["label"].as_str().is_some_and(|l| l.ends_with("-charge")))
        },
    )
    .await;
    let key_id = key["id"].as_str().unwrap().to_owned();
    let mut args = SweepArgs {
        temporal: keylease_tests::stack::temporal_args(&stack.temporal.address, &queue),
        broker_url: broker.parse().unwrap(),
        broker_token: WORKER_TOKEN.into(),
        transport: Default::default(),
        apply: true,
    };
    let found = sweep(&args).await.unwrap();
    assert!(
        found.iter().all(|orphan| orphan.key_id != key_id),
        "a running attempt's key is left alone: {found:?}"
    );

    // The worker dies mid-call; after the heartbeat timeout Temporal
    // schedules attempt 2, which no worker runs yet.
    worker.kill().await;
    let handle = stack.client.get_workflow_handle::<CheckoutWorkflow>(&wf);
    keylease_testkit::eventually(
        std::time::Duration::from_secs(30),
        "attempt 2 of the charge scheduled",
        || async {
            let description = handle
                .describe(temporalio_client::WorkflowDescribeOptions::default())
                .await
                .ok()?;
            description
                .raw_description
                .pending_activities
                .iter()
                .any(|a| a.activity_id == "charge" && a.attempt >= 2)
                .then_some(())
        },
    )
    .await;
    args.apply = false;
    let found = sweep(&args).await.unwrap();
    let orphan = found
        .iter()
        .find(|orphan| orphan.key_id == key_id)
        .unwrap_or_else(|| panic!("the killed attempt's key is found: {found:?}"));
    assert!(
        orphan
            .reason
            .starts_with("attempt 1 of charge superseded by attempt"),
        "{orphan:?}"
    );
    args.apply = true;
    sweep(&args).await.unwrap();
    assert_eq!(
        stack.broker_get(&format!("/v1/keys/{key_id}")).await["status"],
        "revoked"
    );
    handle
        .terminate(WorkflowTerminateOptions::default())
        .await
        .unwrap();
    stack.stop().await;
}
