//! Broker latency on loopback: `cargo bench -p keylease-broker`.
//!
//! - `issue_and_revoke`: `POST /v1/keys` then `DELETE /v1/keys/{id}`.
//! - `upstream_direct` vs `proxied`: one GET straight to a trivial upstream,
//!   and the same GET through the proxy (token lookup, allowlist, audit row).

use std::net::SocketAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use keylease_broker::BrokerConfig;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

const ADMIN: &str = "bench-admin-token-7f3e5a91c2d4b608";

async fn spawn_upstream() -> SocketAddr {
    let app = axum::Router::new().fallback(|| async { axum::Json(json!({"object": "balance"})) });
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn spawn_broker(upstream: SocketAddr, db: &std::path::Path) -> SocketAddr {
    let mut config = BrokerConfig::new(
        SecretString::from(ADMIN),
        SecretString::from("sk_test_bench"),
        format!("http://{upstream}").parse().expect("upstream url"),
    );
    config.database_url = format!("sqlite://{}", db.display()).into();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind broker");
    let addr = listener.local_addr().expect("broker address");
    tokio::spawn(keylease_broker::run(
        listener,
        config,
        std::future::pending(),
    ));
    addr
}

async fn issue(http: &reqwest::Client, broker: SocketAddr) -> Value {
    http.post(format!("http://{broker}/v1/keys"))
        .bearer_auth(ADMIN)
        .json(
            &json!({"label": "temporal-bench-charge", "vendor": "stripe", "daily_usd_cap": 1,
                      "allowed_endpoints": ["GET /v1/balance"], "expires_in": 600}),
        )
        .send()
        .await
        .expect("issue")
        .json()
        .await
        .expect("issued key")
}

fn benches(c: &mut Criterion) {
    let runtime = Runtime::new().expect("tokio runtime");
    let db_dir = tempfile::tempdir().expect("temp dir");
    let http = reqwest::Client::new();
    let (upstream, broker) = runtime.block_on(async {
        let upstream = spawn_upstream().await;
        (
            upstream,
            spawn_broker(upstream, &db_dir.path().join("bench.db")).await,
        )
    });
    let key = runtime.block_on(issue(&http, broker));
    let token = key["token"].as_str().expect("token").to_owned();

    c.bench_function("issue_and_revoke", |b| {
        b.to_async(&runtime).iter(|| async {
            let key = issue(&http, broker).await;
            let id = key["id"].as_str().expect("id");
            let revoked = http
                .delete(format!("http://{broker}/v1/keys/{id}"))
                .bearer_auth(ADMIN)
                .send()
                .await
                .expect("revoke");
            assert_eq!(revoked.status(), 204);
        })
    });

    let mut group = c.benchmark_group("get_balance");
    group.bench_function("upstream_direct", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = http
                .get(format!("http://{upstream}/v1/balance"))
                .send()
                .await
                .expect("get");
            assert_eq!(response.status(), 200);
            response.bytes().await.expect("body")
        })
    });
    group.bench_function("proxied", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = http
                .get(format!("http://{broker}/stripe/v1/balance"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("get");
            assert_eq!(response.status(), 200);
            response.bytes().await.expect("body")
        })
    });
    group.finish();
}

criterion_group!(broker, benches);
criterion_main!(broker);
