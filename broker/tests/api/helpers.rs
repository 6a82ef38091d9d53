//! Spawns a broker and a recording upstream, and speaks to them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use keylease_broker::BrokerConfig;
use secrecy::SecretString;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_TOKEN: &str = "admin-test-token-3f9a-0c6e8d21b7a4";

/// The PostgreSQL server the tests create their databases on (`scripts/start-postgres.sh` starts it).
const DEFAULT_POSTGRES_URL: &str = "postgres://keylease:keylease@127.0.0.1:5432/postgres";

/// Which database a test broker runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary folder.
    Sqlite,
    /// A new database on the test PostgreSQL server (`KEYLEASE_TEST_POSTGRES_URL`).
    Postgres,
}

/// A database of its own for one test.
pub async fn fresh_database(backend: Backend, dir: &TempDir) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}/broker.db", dir.path().display()),
        Backend::Postgres => {
            use sqlx::Connection;
            let admin = std::env::var("KEYLEASE_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
            let mut connection = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|err| panic!("no PostgreSQL at {admin} ({err}): run scripts/start-postgres.sh (make test does)"));
            let name = format!("broker_test_{}", hex_suffix());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut connection)
                .await
                .unwrap();
            let (base, _) = admin
                .rsplit_once('/')
                .expect("a database URL ends in /database");
            format!("{base}/{name}")
        }
    }
}

/// 16 hex digits no other test shares.
fn hex_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    format!(
        "{:x}{:x}",
        nanos ^ u64::from(std::process::id()),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
pub const STRIPE_SECRET: &str = "sk_test_broker_secret_77c1";

/// A request as upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: String,
}

/// An answer upstream gives to the next request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
    pub body: Value,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            delay: Duration::ZERO,
            body: json!({"error": {"type": "scripted"}}),
        }
    }
}

#[derive(Default)]
struct UpstreamLog {
    received: Mutex<Vec<Received>>,
    replies: Mutex<VecDeque<Reply>>,
}

/// A stand-in for Stripe that records each request and answers 200 unless scripted.
pub struct TestUpstream {
    pub addr: SocketAddr,
    log: Arc<UpstreamLog>,
}

impl TestUpstream {
    pub async fn spawn() -> Self {
        let log = Arc::new(UpstreamLog::default());
        let app = Router::new().fallback(record).with_state(log.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, log }
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.received.lock().unwrap().clone()
    }

    /// Queues answers for the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.log.replies.lock().unwrap().extend(replies);
    }
}

async fn record(State(log): State<Arc<UpstreamLog>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    log.received.lock().unwrap().push(Received {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let reply = log.replies.lock().unwrap().pop_front();
    match reply {
        Some(reply) => {
            tokio::time::sleep(reply.delay).await;
            (
                StatusCode::from_u16(reply.status).unwrap(),
                axum::Json(reply.body),
            )
                .into_response()
        }
        None => (
            [("request-id", "req_test"), ("connection", "keep-alive")],
            axum::Json(json!({"id": "pi_test", "object": "payment_intent"})),
        )
            .into_response(),
    }
}

/// A broker running in this test's runtime.
pub struct TestBroker {
    pub addr: SocketAddr,
    pub upstream: TestUpstream,
    pub http: reqwest::Client,
    pub database_url: String,
    _db_dir: Arc<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// A key as issued: its id and token.
#[derive(Debug, Clone)]
pub struct Issued {
    pub id: String,
    pub token: String,
}

pub fn config(upstream: &TestUpstream, database_url: &str) -> BrokerConfig {
    let mut config = BrokerConfig::new(
        SecretString::from(ADMIN_TOKEN),
        SecretString::from(STRIPE_SECRET),
        format!("http://{}", upstream.addr).parse().unwrap(),
    );
    config.database_url = database_url.into();
    config.usd_rates = keylease_broker::config::parse_usd_rates("eur=1.10,jpy=0.01").unwrap();
    config
}

impl TestBroker {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Spawns a broker on `backend` whose config `tweak` may change.
    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut BrokerConfig)) -> Self {
        let upstream = TestUpstream::spawn().await;
        let db_dir = Arc::new(tempfile::tempdir().unwrap());
        let database_url = fresh_database(backend, &db_dir).await;
        let mut config = config(&upstream, &database_url);
        tweak(&mut config);
        let mut broker = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream,
            http: reqwest::Client::new(),
            database_url,
            _db_dir: db_dir,
            stop: None,
            task: None,
        };
        broker.start(config).await;
        broker
    }

    async fn start(&mut self, config: BrokerConfig) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        self.stop = Some(stop);
        self.task = Some(tokio::spawn(async move {
            keylease_broker::run(listener, config, async {
                stopped.await.ok();
            })
            .await
            .unwrap();
        }));
    }

    /// Starts a second broker on the same database and upstream; returns its address.
    pub async fn sibling(&self) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = config(&self.upstream, &self.database_url);
        tokio::spawn(async move {
            keylease_broker::run(listener, config, std::future::pending())
                .await
                .unwrap()
        });
        addr
    }

    /// Stops the broker and starts a new one on the same database file.
    pub async fn restart(&mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap();
        let config = config(&self.upstream, &self.database_url);
        self.start(config).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// An admin call; returns status and JSON body (Null when empty).
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        json_of(response).await
    }

    pub async fn issue_raw(&self, body: Value) -> (u16, Value) {
        self.admin(reqwest::Method::POST, "/v1/keys", Some(body))
            .await
    }

    /// Issues a key that must succeed.
    pub async fn issue(
        &self,
        label: &str,
        endpoints: &[&str],
        cap_usd: f64,
        expires_in: Value,
    ) -> Issued {
        let (status, body) = self
            .issue_raw(json!({
                "label": label,
                "vendor": "stripe",
                "daily_usd_cap": cap_usd,
                "allowed_endpoints": endpoints,
                "expires_in": expires_in,
            }))
            .await;
        assert_eq!(status, 201, "{body}");
        Issued {
            id: body["id"].as_str().unwrap().to_owned(),
            token: body["token"].as_str().unwrap().to_owned(),
        }
    }

    /// Issues a key with `extra` fields (`allowed_objects`, `stripe_account`), valid for 60 s.
    pub async fn issue_with(
        &self,
        label: &str,
        endpoints: &[&str],
        cap_usd: f64,
        extra: Value,
    ) -> Issued {
        let mut request = json!({
            "label": label,
            "vendor": "stripe",
            "daily_usd_cap": cap_usd,
            "allowed_endpoints": endpoints,
            "expires_in": 60,
        });
        for (field, value) in extra.as_object().expect("extra fields are an object") {
            request[field] = value.clone();
        }
        let (status, body) = self.issue_raw(request).await;
        assert_eq!(status, 201, "{body}");
        Issued {
            id: body["id"].as_str().unwrap().to_owned(),
            token: body["token"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn key(&self, id: &str) -> Value {
        let (status, body) = self
            .admin(reqwest::Method::GET, &format!("/v1/keys/{id}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// A proxied form POST under `/stripe`.
    pub async fn stripe_post(
        &self,
        token: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/stripe{path}")))
            .bearer_auth(token)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn stripe_get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/stripe{path}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

/// Status and JSON body of a response (Null when the body is empty).
pub async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, body)
}

/// The error code of an API error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

/// Sends `request_line` byte for byte, so that no client library normalizes
/// the path first; returns the status code.
pub async fn raw_status(addr: SocketAddr, method: &str, path: &str, token: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The broker binary, run as an operator runs it, with its JSON log collected.
pub struct BrokerProcess {
    pub child: tokio::process::Child,
    pub base: String,
    pub log: Arc<Mutex<String>>,
    pub reader: JoinHandle<()>,
}

impl BrokerProcess {
    /// Starts `keylease-broker` on a free port at trace level, in front of `upstream`.
    pub async fn spawn(upstream: &TestUpstream, database_url: &str) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_keylease-broker"))
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .env("RUST_LOG", "trace")
            .env("KEYLEASE_BROKER_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("KEYLEASE_STRIPE_SECRET_KEY", STRIPE_SECRET)
            .env(
                "KEYLEASE_STRIPE_API_BASE",
                format!("http://{}", upstream.addr),
            )
            .env("KEYLEASE_BROKER_DATABASE_URL", database_url)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (address_tx, address_rx) = oneshot::channel::<String>();
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let collected = log.clone();
        let reader = tokio::spawn(async move {
            let mut address_tx = Some(address_tx);
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Ok(entry) = serde_json::from_str::<Value>(&line)
                    && let Some(address) = entry["fields"]["address"].as_str()
                    && let Some(tx) = address_tx.take()
                {
                    tx.send(address.to_owned()).unwrap();
                }
                let mut log = collected.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let address = tokio::time::timeout(Duration::from_secs(30), address_rx)
            .await
            .unwrap()
            .unwrap();
        Self {
            child,
            base: format!("http://{address}"),
            log,
            reader,
        }
    }

    /// Sends SIGTERM and waits (up to 30 s) for the process to exit.
    pub async fn terminate(child: &mut tokio::process::Child) -> std::process::ExitStatus {
        let pid = child.id().unwrap().to_string();
        let killed = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(killed.success());
        tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .unwrap()
            .unwrap()
    }
}

/// Polls `check` until it returns true or `deadline` passes.
pub async fn eventually<F, Fut>(deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + deadline;
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    loop {
        poll.tick().await;
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "condition not met within {deadline:?}"
        );
    }
}
