//! What a key holder's request bodies may cost: bounded CPU however the body
//! is cut into pieces, and bounded memory however many bodies are left
//! unfinished at once.

use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::wire::{memory_kb, read_status};
use crate::helpers::{ADMIN_TOKEN, Backend, TestBroker};

/// Issue 20, second round: a chunked body of one-byte chunks cost about
/// 7.5 µs of CPU a chunk, 7.5 s for 1 MiB, cut off only by the body
/// timeout; two clients kept both cores busy. Past 64 pieces a body's
/// pieces must now average 256 bytes, so it is refused within a few hundred.
#[tokio::test]
async fn a_body_in_one_byte_chunks_is_refused_at_once() {
    let broker = TestBroker::spawn(Backend::Sqlite).await;
    let key = broker
        .issue(
            "temporal-chunks-charge",
            &["POST /v1/payment_intents"],
            5.0,
            json!(60),
        )
        .await;
    let mut stream = TcpStream::connect(broker.addr).await.unwrap();
    let head = format!(
        "POST /stripe/v1/payment_intents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n",
        key.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let body = format!(
        "amount=100&currency=usd&description={}",
        "a".repeat(1_000_000)
    );
    let started = std::time::Instant::now();
    let mut chunked = Vec::with_capacity(body.len() * 6);
    for byte in body.bytes() {
        chunked.extend_from_slice(b"1\r\n");
        chunked.push(byte);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    // The broker answers and closes long before all of it is sent.
    let _ = stream.write_all(&chunked).await;
    assert_eq!(read_status(&mut stream).await, Some(400));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "refused in {:?}",
        started.elapsed()
    );
    assert!(broker.upstream.received().is_empty());
}

/// Issue 20, second round: a key holder's connections each sending 1 MiB
/// less a byte and stopping held 1 MiB of memory apiece (500 took the broker
/// from 154 MB to 609 MB). The broker now holds at most 64 MiB of bodies at
/// once: past it a request is answered 503 `busy` before its body is read,
/// and `/healthz` keeps answering.
#[tokio::test]
async fn unfinished_bodies_hold_a_bounded_share_of_memory() {
    const CONNECTIONS: usize = 200;
    const SENT: usize = 900 * 1024;
    let (upstream, _database, broker) = crate::helpers::spawn_broker_process().await;
    let (addr, pid) = (broker.addr, broker.pid().expect("the broker runs"));
    let http = reqwest::Client::new();
    let issued: serde_json::Value = http
        .post(format!("http://{addr}/v1/keys"))
        .bearer_auth(ADMIN_TOKEN)
        .json(
            &json!({"label": "temporal-hold-charge", "vendor": "stripe", "daily_usd_cap": 5,
                      "allowed_endpoints": ["POST /v1/payment_intents"], "expires_in": 60}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = issued["token"].as_str().unwrap().to_owned();
    let before_kb = memory_kb(pid, "VmRSS");
    let padding = "a".repeat(SENT);
    let connections = (0..CONNECTIONS).map(|_| {
        let (token, padding) = (&token, &padding);
        async move {
            let mut stream = TcpStream::connect(addr).await.ok()?;
            let head = format!(
                "POST /stripe/v1/payment_intents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\ndescription={padding}",
                1024 * 1024 - 1
            );
            let _ = stream.write_all(head.as_bytes()).await;
            Some(stream)
        }
    });
    let mut held: Vec<TcpStream> = futures::future::join_all(connections)
        .await
        .into_iter()
        .flatten()
        .collect();
    let health = tokio::time::timeout(
        Duration::from_secs(5),
        http.get(format!("http://{addr}/healthz")).send(),
    )
    .await
    .expect("/healthz answers while the bodies are held")
    .unwrap();
    assert_eq!(health.status(), 200);
    let peak_kb = memory_kb(pid, "VmHWM");
    assert!(
        peak_kb < before_kb + 128 * 1024,
        "peak RSS {peak_kb} kB from {before_kb} kB with {CONNECTIONS} unfinished 1 MiB bodies"
    );
    // Those past the budget were answered 503 and closed.
    let mut busy = 0;
    for stream in held.iter_mut() {
        if let Ok(Some(503)) =
            tokio::time::timeout(Duration::from_millis(20), read_status(stream)).await
        {
            busy += 1;
        }
    }
    assert!(
        busy > 0,
        "some of {CONNECTIONS} bodies were refused as busy"
    );
    assert!(upstream.received().is_empty());
}

/// Found by the second attack round: 1,030 kept-alive connections, each
/// sending a request with a made-up token every few seconds, held every slot
/// of the connection limit, and `/healthz` timed out until they stopped. A
/// request without a valid key is now answered with `Connection: close`, so
/// a stranger holds no slot between its requests.
#[tokio::test]
async fn strangers_keep_no_connection_and_healthz_stays_reachable() {
    const CONNECTIONS: usize = 1_030;
    let (upstream, _database, broker) = crate::helpers::spawn_broker_process().await;
    let addr = broker.addr;
    let strangers = (0..CONNECTIONS).map(|i| async move {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        // Half at the proxy, half at the admin API.
        let path = if i % 2 == 0 {
            "/stripe/v1/balance"
        } else {
            "/v1/keys"
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer vk_made_up_{i}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        // Closed by the broker after its answer, not kept alive.
        let closed = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer),
        )
        .await
        .is_ok();
        Some((closed, stream))
    });
    let done: Vec<_> = futures::future::join_all(strangers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let closed = done.iter().filter(|(closed, _)| *closed).count();
    assert_eq!(
        closed, CONNECTIONS,
        "every stranger's connection was closed"
    );
    let health = tokio::time::timeout(
        Duration::from_secs(5),
        reqwest::Client::new()
            .get(format!("http://{addr}/healthz"))
            .send(),
    )
    .await
    .expect("/healthz answers while the strangers' sockets are still open on their side")
    .unwrap();
    assert_eq!(health.status(), 200);
    assert!(upstream.received().is_empty());
}
