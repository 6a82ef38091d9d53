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
use keylease_testkit::BrokerSettings;
use secrecy::SecretString;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_TOKEN: &str = "admin-test-token-3f9a-0c6e8d21b7a4";

/// Which database a test broker runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary folder.
    Sqlite,
    /// A new database on the test PostgreSQL server (`KEYLEASE_TEST_POSTGRES_URL`).
    Postgres,
}

/// A database of its own for one test, gone when the test is done.
pub struct TestDatabase {
    /// Its URL, for `BrokerConfig::database_url`.
    pub url: String,
    _dir: TempDir,
    _postgres: Option<keylease_testkit::postgres::TestDatabase>,
}

impl TestDatabase {
    /// A SQLite file in a folder of its own, or a new PostgreSQL database.
    pub async fn create(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (url, postgres) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/broker.db", dir.path().display()), None),
            Backend::Postgres => {
                let database =
                    keylease_testkit::postgres::TestDatabase::create("broker_test").await;
                (database.url().to_owned(), Some(database))
            }
        };
        Self {
            url,
            _dir: dir,
            _postgres: postgres,
        }
    }
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
    /// Its `--stripe-listen` address: Stripe's API at the root.
    pub stripe_root: SocketAddr,
    pub upstream: TestUpstream,
    pub http: reqwest::Client,
    pub database_url: String,
    _database: TestDatabase,
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
    config.db = keylease_broker::config::DatabaseConfig::new(database_url);
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
        let database = TestDatabase::create(backend).await;
        let database_url = database.url.clone();
        let mut config = config(&upstream, &database_url);
        tweak(&mut config);
        let mut broker = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stripe_root: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream,
            http: reqwest::Client::new(),
            database_url,
            _database: database,
            stop: None,
            task: None,
        };
        broker.start(config).await;
        broker
    }

    async fn start(&mut self, config: BrokerConfig) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let stripe_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.stripe_root = stripe_listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        self.stop = Some(stop);
        self.task = Some(tokio::spawn(async move {
            keylease_broker::run_on(listener, Some(stripe_listener), config, async {
                stopped.await.ok();
            })
            .await
            .unwrap();
        }));
    }

    /// Starts a second broker on the same database and upstream; returns its address.
    pub async fn sibling(&self) -> SocketAddr {
        self.sibling_with(|_| {}).await
    }

    /// [`TestBroker::sibling`], with its config changed by `tweak`.
    pub async fn sibling_with(&self, tweak: impl FnOnce(&mut BrokerConfig)) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = config(&self.upstream, &self.database_url);
        tweak(&mut config);
        tokio::spawn(async move {
            keylease_broker::run(listener, config, std::future::pending())
                .await
                .unwrap()
        });
        addr
    }

    /// Stops the broker and starts a new one on the same database file.
    pub async fn restart(&mut self) {
        self.restart_with(|_| {}).await;
    }

    /// [`TestBroker::restart`], with the new broker's config changed by `tweak`.
    pub async fn restart_with(&mut self, tweak: impl FnOnce(&mut BrokerConfig)) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap();
        let mut config = config(&self.upstream, &self.database_url);
        tweak(&mut config);
        self.start(config).await;
    }

    /// A $10 PaymentIntent create with `token` that Stripe answers (as
    /// `pi`) only after `delay`: the task of its answer's status, once the
    /// request has reached Stripe (its reservation and in-flight row written).
    pub async fn charge_in_flight(
        &self,
        token: &str,
        pi: &str,
        delay: Duration,
    ) -> JoinHandle<reqwest::StatusCode> {
        let before = self.upstream.received().len();
        self.upstream.script([Reply {
            delay,
            body: json!({"id": pi, "object": "payment_intent", "amount": 1000, "currency": "usd"}),
            ..Reply::status(200)
        }]);
        let http = self.http.clone();
        let url = self.url("/stripe/v1/payment_intents");
        let token = token.to_owned();
        let charge = tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .form(&[("amount", "1000"), ("currency", "usd")])
                .send()
                .await
                .unwrap()
                .status()
        });
        keylease_testkit::poll::eventually(
            Duration::from_secs(10),
            "the charge at Stripe",
            || async { (self.upstream.received().len() > before).then_some(()) },
        )
        .await;
        charge
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `/metrics` as text (it needs no token).
    pub async fn metrics(&self) -> String {
        let response = self.http.get(self.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
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

/// The broker binary, as the tests of it run it: this build's, at trace level.
pub fn broker_settings() -> BrokerSettings {
    BrokerSettings::new(
        env!("CARGO_BIN_EXE_keylease-broker"),
        ADMIN_TOKEN,
        STRIPE_SECRET,
    )
    .log_filter("trace")
}

/// The broker binary on a SQLite file of its own, in front of a recording
/// upstream, logging at info: for tests that measure the process or kill it.
pub async fn spawn_broker_process() -> (TestUpstream, TestDatabase, keylease_testkit::BrokerProcess)
{
    let upstream = TestUpstream::spawn().await;
    let database = TestDatabase::create(Backend::Sqlite).await;
    let broker = keylease_testkit::BrokerProcess::spawn(
        broker_settings().log_filter("info"),
        upstream.addr,
        &database.url,
    )
    .await;
    (upstream, database, broker)
}
