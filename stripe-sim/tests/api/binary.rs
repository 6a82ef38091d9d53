//! The `stripe-sim` binary listens where told and stops on SIGTERM.

use std::time::Duration;

use keylease_testkit::eventually;
use keylease_testkit::ports::free_port;
use keylease_testkit::process::terminate;
use tokio::process::Command;

#[tokio::test]
async fn listens_on_the_given_address_and_stops_on_sigterm() {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stripe-sim"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/_sim/payment_intents");
    eventually(Duration::from_secs(20), "stripe-sim serving", || async {
        http.get(&url).send().await.ok().map(drop)
    })
    .await;
    let answer: serde_json::Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(answer["data"], serde_json::json!([]));

    let exit = terminate(&mut child, Duration::from_secs(10)).await;
    assert!(exit.is_some_and(|exit| exit.success()), "{exit:?}");
}
