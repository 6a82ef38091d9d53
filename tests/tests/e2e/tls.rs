//! Issue 23: the worker outside the demo. It reaches Temporal as the CLI
//! and every SDK do (mTLS, an API key, through a TLS front to the dev
//! server), says in one line which setting is wrong when it cannot, stops
//! with the command when its namespace refuses to register `OrderId`, and
//! reaches a broker serving TLS with a private CA only when told to trust it.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use keylease_testkit::bins::binary;
use keylease_testkit::ports::free_addr;
use keylease_testkit::process::run_refusing;
use keylease_tests::process::WorkerProcess;
use keylease_tests::stack::{ADMIN_TOKEN, STRIPE_SECRET, Stack, WORKER_TOKEN, test_policy, unique};
use keylease_tests::temporal::DedicatedDevServer;
use keylease_tests::tls::{FrontRules, TemporalFront, TestPki};
use keylease_workflows::CheckoutOutcome;
use tokio::process::{Child, Command};

use crate::faults::{client_at, settle, start_checkouts};

/// The API key the fronts that ask for one accept.
const API_KEY: &str = "tmprl-e2e-api-key-0b7c41d9e2f85a36";

/// A front to `stack`'s dev server over TLS with `pki`'s server certificate;
/// it asks for a client certificate of `pki`'s CA with `mtls`, and for
/// [`API_KEY`] with `api_key`.
async fn front(stack: &Stack, pki: &TestPki, mtls: bool, api_key: bool) -> TemporalFront {
    let client_ca = mtls.then_some(pki.ca.as_path());
    let rules = FrontRules {
        tls: Some(pki.acceptor(client_ca, &[b"h2"])),
        api_key: api_key.then(|| API_KEY.to_owned()),
        refuse: Vec::new(),
    };
    TemporalFront::start(&stack.temporal.address, rules).await
}

fn path(file: &Path) -> String {
    file.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_reaches_temporal_with_a_client_certificate_and_with_an_api_key() {
    let stack = Stack::spawn("temporal-tls").await;
    let pki = TestPki::new("keylease e2e Temporal CA");
    let mtls = front(&stack, &pki, true, false).await;
    let keyed = front(&stack, &pki, false, true).await;
    let broker = format!("http://{}", stack.broker);
    let proxy = format!("{broker}/stripe");
    let ca = path(&pki.ca);
    let (cert, key) = (path(&pki.client_cert), path(&pki.client_key));
    // mTLS from a profile of the Temporal CLI's configuration file, the
    // address from TEMPORAL_ADDRESS over it, as every SDK merges them.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("temporal.toml");
    let profile = format!(
        "[profile.prod]\naddress = \"127.0.0.1:1\"\nnamespace = \"default\"\n\n[profile.prod.tls]\n\
         client_cert_path = \"{cert}\"\nclient_key_path = \"{key}\"\nserver_ca_cert_path = \"{ca}\"\n"
    );
    std::fs::write(&config, profile).unwrap();
    let config = path(&config);
    let mtls_queue = unique("tls-mtls");
    let mtls_worker = WorkerProcess::spawn_at(
        &mtls.addr.to_string(),
        &mtls_queue,
        &broker,
        &proxy,
        &[
            ("TEMPORAL_CONFIG_FILE", &config),
            ("TEMPORAL_PROFILE", "prod"),
        ],
    );
    let keyed_queue = unique("tls-api-key");
    let keyed_worker = WorkerProcess::spawn_at(
        &keyed.addr.to_string(),
        &keyed_queue,
        &broker,
        &proxy,
        &[
            ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", &ca),
            ("TEMPORAL_API_KEY", API_KEY),
        ],
    );
    for (queue, worker) in [(&mtls_queue, &mtls_worker), (&keyed_queue, &keyed_worker)] {
        // Checkouts are started straight on the dev server; only the worker goes through the front.
        let client = client_at(&stack.temporal.address, queue).await;
        let checkouts = start_checkouts(&client, queue, queue, 1, &test_policy()).await;
        let outcomes = settle(&checkouts).await;
        assert!(
            matches!(outcomes[0], CheckoutOutcome::Completed { .. }),
            "{queue}: {:?}\n{}",
            outcomes[0],
            worker.log_text()
        );
    }
    assert!(
        !keyed_worker.log_text().contains(API_KEY),
        "the API key is never logged"
    );
    mtls_worker.stop().await;
    keyed_worker.stop().await;
    stack.stop().await;
}

/// `keylease-worker run` against the front at `temporal` with `stack`'s
/// broker and `env`, expected to stop at start; what it printed.
async fn refused_run(stack: &Stack, temporal: &str, env: &[(&str, &str)]) -> Output {
    let broker = format!("http://{}", stack.broker);
    run_refusing(
        Command::new(binary("keylease-worker"))
            .arg("run")
            .env_clear()
            .env("TEMPORAL_ADDRESS", temporal)
            .env("KEYLEASE_TASK_QUEUE", unique("tls-refused"))
            .env("KEYLEASE_BROKER_URL", &broker)
            .env("KEYLEASE_PROXY_URL", format!("{broker}/stripe"))
            .env("KEYLEASE_BROKER_TOKEN", WORKER_TOKEN)
            .env("KEYLEASE_LOG_FORMAT", "json")
            .envs(env.iter().copied()),
    )
    .await
}

/// A start the worker must refuse: what is wrong, the front it meets, the
/// worker's settings, and the setting its error line must name.
type Refusal<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str);

/// Exit 1 and one `keylease-worker:` line on stderr, naming `setting`; the
/// line, for more checks.
fn one_error_line(case: &str, output: &Output, setting: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{case}: {stderr}");
    let lines: Vec<_> = stderr
        .lines()
        .filter(|line| line.starts_with("keylease-worker:"))
        .collect();
    assert_eq!(lines.len(), 1, "{case}: one error line: {stderr}");
    assert!(
        lines[0].contains(setting),
        "{case}: names {setting}: {}",
        lines[0]
    );
    lines[0].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_ca_an_expired_client_certificate_or_a_missing_api_key_stops_the_worker_in_one_line()
 {
    let stack = Stack::spawn("temporal-tls-refused").await;
    let pki = TestPki::new("keylease e2e Temporal CA");
    let stranger = TestPki::new("a CA nobody trusts");
    let (mtls_front, keyed_front) = (
        front(&stack, &pki, true, false).await,
        front(&stack, &pki, false, true).await,
    );
    let (mtls, keyed) = (mtls_front.addr.to_string(), keyed_front.addr.to_string());
    let (ca, wrong_ca) = (path(&pki.ca), path(&stranger.ca));
    let (cert, key) = (path(&pki.client_cert), path(&pki.client_key));
    let expired = path(&pki.expired_client_cert);
    let plain_keyed = format!("http://{keyed}");
    let cases: [Refusal; 6] = [
        (
            "an http:// address with an API key (the SDK would keep it plain)",
            &plain_keyed,
            vec![
                ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", &ca),
                ("TEMPORAL_API_KEY", API_KEY),
            ],
            "TEMPORAL_ADDRESS",
        ),
        (
            "a CA that did not issue the server's certificate",
            &keyed,
            vec![
                ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", &wrong_ca),
                ("TEMPORAL_API_KEY", API_KEY),
            ],
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
        ),
        (
            "an expired client certificate",
            &mtls,
            vec![
                ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", &ca),
                ("TEMPORAL_TLS_CLIENT_CERT_PATH", &expired),
                ("TEMPORAL_TLS_CLIENT_KEY_PATH", &key),
            ],
            "TEMPORAL_TLS_CLIENT_CERT_PATH",
        ),
        (
            "no API key",
            &keyed,
            vec![("TEMPORAL_TLS_SERVER_CA_CERT_PATH", &ca)],
            "TEMPORAL_API_KEY",
        ),
        (
            "a wrong API key",
            &keyed,
            vec![
                ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", &ca),
                ("TEMPORAL_API_KEY", "tmprl-not-the-key"),
            ],
            "TEMPORAL_API_KEY",
        ),
        (
            "a certificate given as the client key",
            &mtls,
            vec![
                ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", &ca),
                ("TEMPORAL_TLS_CLIENT_CERT_PATH", &cert),
                ("TEMPORAL_TLS_CLIENT_KEY_PATH", &cert),
            ],
            "TEMPORAL_TLS_CLIENT_KEY",
        ),
    ];
    for (case, temporal, env, setting) in cases {
        let output = refused_run(&stack, temporal, &env).await;
        let line = one_error_line(case, &output, setting);
        assert!(
            !line.contains("tmprl-"),
            "{case}: no API key printed: {line}"
        );
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_in_the_environment_never_carries_the_token_to_a_plain_http_broker() {
    let stack = Stack::spawn("no-proxy").await;
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let output = Command::new(binary("keylease-worker"))
        .args(["policy", "explain"])
        .env_clear()
        .env("KEYLEASE_BROKER_URL", format!("http://{}", stack.broker))
        .env("KEYLEASE_BROKER_TOKEN", WORKER_TOKEN)
        .env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .env("ALL_PROXY", &proxy_url)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("role keylease-worker"),
        "answered by the broker itself: {stdout}"
    );
    let reached = tokio::time::timeout(Duration::from_millis(100), proxy.accept()).await;
    assert!(reached.is_err(), "the proxy was never connected to");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_that_refuses_to_register_order_id_stops_the_worker_with_the_command() {
    let temporal = tokio::task::spawn_blocking(DedicatedDevServer::spawn_plain)
        .await
        .expect("start a plain dev server");
    let stack = Stack::spawn("registration-refused").await;
    let rules = FrontRules {
        refuse: vec!["/temporal.api.operatorservice.v1.OperatorService/AddSearchAttributes".into()],
        ..FrontRules::default()
    };
    let front = TemporalFront::start(&temporal.address, rules).await;
    let output = refused_run(&stack, &front.addr.to_string(), &[]).await;
    let line = one_error_line("registration refused", &output, "OrderId");
    assert!(
        line.contains(
            "temporal operator search-attribute create --namespace default --name OrderId --type Keyword"
        ),
        "{line}"
    );
    stack.stop().await;
}

/// `keylease-broker` serving HTTPS with `pki`'s server certificate, on a
/// free port, in front of `stack`'s stripe-sim; waits until it answers.
async fn tls_broker(stack: &Stack, pki: &TestPki, db: &Path) -> (Child, String) {
    let addr = free_addr();
    let mut child = Command::new(binary("keylease-broker"))
        .env_clear()
        .env("KEYLEASE_BROKER_LISTEN", addr.to_string())
        .env("KEYLEASE_BROKER_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("KEYLEASE_STRIPE_SECRET_KEY", STRIPE_SECRET)
        .env("KEYLEASE_STRIPE_API_BASE", format!("http://{}", stack.sim))
        .env(
            "KEYLEASE_BROKER_DATABASE_URL",
            format!("sqlite://{}", db.display()),
        )
        .env("KEYLEASE_BROKER_TLS_CERT", &pki.server_cert)
        .env("KEYLEASE_BROKER_TLS_KEY", &pki.server_key)
        .kill_on_drop(true)
        .spawn()
        .expect("start keylease-broker");
    let base = format!("https://localhost:{}", addr.port());
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).unwrap()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while !http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_ok_and(|answer| answer.status().is_success())
    {
        assert!(child.try_wait().unwrap().is_none(), "the broker exited");
        assert!(
            tokio::time::Instant::now() < until,
            "broker not serving TLS in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, base)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_serving_tls_with_a_private_ca_is_reached_only_with_keylease_broker_ca() {
    let stack = Stack::spawn("broker-tls").await;
    let pki = TestPki::new("keylease e2e broker CA");
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, base) = tls_broker(&stack, &pki, &dir.path().join("broker.db")).await;
    let ca = path(&pki.ca);
    // The worker's role, made by `role setup` over TLS as an operator would.
    let setup = Command::new(binary("keylease-worker"))
        .args(["role", "setup"])
        .env_clear()
        .env("KEYLEASE_BROKER_URL", &base)
        .env("KEYLEASE_BROKER_CA", &ca)
        .env("KEYLEASE_BROKER_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("KEYLEASE_WORKER_TOKEN", WORKER_TOKEN)
        .output()
        .await
        .unwrap();
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );

    let queue = unique("broker-tls");
    let untrusted = run_refusing(
        Command::new(binary("keylease-worker"))
            .arg("run")
            .env_clear()
            .env("TEMPORAL_ADDRESS", &stack.temporal.address)
            .env("KEYLEASE_TASK_QUEUE", &queue)
            .env("KEYLEASE_BROKER_URL", &base)
            .env("KEYLEASE_PROXY_URL", format!("{base}/stripe"))
            .env("KEYLEASE_BROKER_TOKEN", WORKER_TOKEN),
    )
    .await;
    let line = one_error_line(
        "no KEYLEASE_BROKER_CA",
        &untrusted,
        "cannot reach the broker",
    );
    assert!(line.contains("KEYLEASE_BROKER_CA"), "{line}");

    // A private key pasted where the CA goes: one line, the key never echoed.
    let key_pem = std::fs::read_to_string(&pki.server_key).unwrap();
    let pasted = refused_run(
        &stack,
        &stack.temporal.address,
        &[("KEYLEASE_BROKER_CA", &key_pem)],
    )
    .await;
    one_error_line("a key as KEYLEASE_BROKER_CA", &pasted, "KEYLEASE_BROKER_CA");
    let printed = String::from_utf8_lossy(&pasted.stderr);
    assert!(!printed.contains("PRIVATE KEY"), "{printed}");

    let worker = WorkerProcess::spawn_at(
        &stack.temporal.address,
        &queue,
        &base,
        &format!("{base}/stripe"),
        &[("KEYLEASE_BROKER_CA", &ca)],
    );
    let client = client_at(&stack.temporal.address, &queue).await;
    let checkouts = start_checkouts(&client, &queue, &queue, 1, &test_policy()).await;
    let outcomes = settle(&checkouts).await;
    assert!(
        matches!(outcomes[0], CheckoutOutcome::Completed { .. }),
        "{:?}\n{}",
        outcomes[0],
        worker.log_text()
    );
    worker.stop().await;
    broker.kill().await.unwrap();
    stack.stop().await;
}
