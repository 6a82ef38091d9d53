//! The `stripe-sim` binary listens where told and stops on SIGTERM.

use std::net::TcpListener;
use std::time::Duration;

use tokio::process::Command;

use crate::helpers::eventually;

#[tokio::test]
async fn listens_on_the_given_address_and_stops_on_sigterm() {
    // A free port, released for the binary to take.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stripe-sim"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/_sim/payment_intents");
    eventually(Duration::from_secs(20), || async {
        http.get(&url).send().await.is_ok()
    })
    .await;
    let answer: serde_json::Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(answer["data"], serde_json::json!([]));

    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}
