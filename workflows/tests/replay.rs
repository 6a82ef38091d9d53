//! Replays histories recorded from real runs (`tests/histories/*.json`,
//! written by the end-to-end tests with `KEYLEASE_RECORD_HISTORIES` set)
//! against today's workflow code: a change that is not replay-safe fails here.
//! `completed`, `compensated` and `declined` predate the patches of
//! `checkout/mod.rs`/`checkout/charging.rs` and replay along the old path;
//! `cancelled-during-charge`, `compensation-failed`, `fulfilment-timed-out` and
//! `reconciled` were recorded with the charge-per-checkout patch only; the
//! rest (`cancelled-before-charge`, `compensated-after-rounds`, `compensated-refund-found`,
//! `compensation-refused`, `fulfilled-by-a-held-signal`, `input-refused`, `input-undecodable`,
//! and the reset runs `reset-adopts-charge`, `reset-finds-refund`)
//! with the steady-checkout patch too. Never re-record an older one: they are
//! what runs in flight during a deploy look like.

use std::path::PathBuf;

use keylease_workflows::{CheckoutWorkflow, ScheduleToCloseHeader};
use temporalio_client::WorkflowHistory;
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

fn recorded() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/histories");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/histories")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            (
                path.display().to_string(),
                std::fs::read(&path).expect("history file"),
            )
        })
        .collect()
}

/// `json` with the run id a worker replaying it is given. The replayer
/// takes a run's id from its first event (`original_execution_run_id`);
/// a run made by `temporal workflow reset` starts with a copy of the reset
/// run's first event, whose id is the old run's, while its worker is given
/// its own (the reset's `new_run_id`). The checkout decides on it (a run
/// that is not the first of its chain looks up an earlier charge), so the
/// replay must see what the worker saw.
fn as_its_worker_sees_it(json: &[u8]) -> Vec<u8> {
    let mut history: serde_json::Value = serde_json::from_slice(json).expect("history JSON");
    let events = history["events"].as_array().cloned().unwrap_or_default();
    let new_run = events.iter().find_map(|event| {
        let failed = &event["attributes"]["WorkflowTaskFailedEventAttributes"];
        failed["new_run_id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
    });
    if let Some(run_id) = new_run {
        history["events"][0]["attributes"]["WorkflowExecutionStartedEventAttributes"]["original_execution_run_id"] =
            serde_json::Value::String(run_id);
    }
    serde_json::to_vec(&history).expect("history JSON")
}

#[tokio::test]
async fn recorded_checkouts_replay_deterministically() {
    let histories = recorded();
    let names: Vec<&str> = histories
        .iter()
        .map(|(name, _)| name.rsplit('/').next().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        [
            "cancelled-before-charge.json",
            "cancelled-during-charge.json",
            "cancelled-waiting-to-retry.json",
            "compensated-after-rounds.json",
            "compensated-pending-refund.json",
            "compensated-refund-found.json",
            "compensated.json",
            "compensation-failed.json",
            "compensation-refused.json",
            "completed.json",
            "declined.json",
            "duplicate-order.json",
            "fulfilled-by-a-held-signal.json",
            "fulfilment-timed-out.json",
            "input-refused.json",
            "input-undecodable.json",
            "reconciled.json",
            "reset-adopts-charge.json",
            "reset-finds-refund.json",
            "reset-while-settling.json",
            "settled-after-processing.json",
        ],
        "the recorded set: three from before the charge-per-checkout patch, four after it, nine after the steady-checkout patch, one after the settle patch, two after the one-per-order and cancel-until-started patches, one after the pending-refund patch, one reset while settling"
    );
    let replayer = WorkflowReplayer::new(
        WorkflowReplayerOptions::new()
            .register_workflow::<CheckoutWorkflow>()
            .expect("register")
            .workflow_interceptor(ScheduleToCloseHeader::constructor())
            .build(),
    )
    .expect("replayer");
    for (name, json) in histories {
        let json = as_its_worker_sees_it(&json);
        let history = WorkflowHistory::from_json(&json).expect("a saved history");
        replayer
            .replay_workflow(history)
            .await
            .unwrap_or_else(|err| panic!("{name} no longer replays: {err}"));
    }
}
