//! A closed-loop load generator, as `wrk` is: each connection sends its next
//! request when the last answer has arrived, over one kept-alive HTTP/1.1
//! connection, and every answer's latency is kept.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{SendRequest, handshake};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What one connection does, again and again.
#[derive(Debug, Clone)]
pub enum Op {
    /// One request; an answer with `expect` counts as a success.
    Request {
        /// GET or POST.
        method: Method,
        /// Path and query.
        path: String,
        /// Sent as `Authorization: Bearer`.
        token: String,
        /// A form body, for a POST.
        form: Option<String>,
        /// The status a success answers.
        expect: StatusCode,
    },
    /// `POST /v1/keys` then `DELETE /v1/keys/{id}`: one iteration is the pair.
    IssueRevoke {
        /// The admin token, or a role's.
        issuer: String,
        /// The key request's JSON.
        key: String,
    },
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Iterations started in the measured window.
    pub count: u64,
    /// Of those, how many did not answer as expected.
    pub errors: u64,
    /// The measured window.
    pub seconds: f64,
    /// Latencies of the iterations, in microseconds, sorted.
    latencies: Vec<u32>,
    /// CPU seconds the process under test used in the measured window, when measured.
    pub cpu_seconds: Option<f64>,
}

impl Stats {
    /// Milliseconds of the measured process's CPU per iteration, when measured.
    pub fn cpu_ms_per_op(&self) -> Option<f64> {
        self.cpu_seconds
            .map(|cpu| cpu * 1000.0 / self.count.max(1) as f64)
    }

    /// Iterations a second.
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.seconds
    }

    /// Two runs over the same window (two brokers loaded at once) as one.
    pub fn merged(mut self, other: Stats) -> Stats {
        self.count += other.count;
        self.errors += other.errors;
        self.latencies.extend(other.latencies);
        self.latencies.sort_unstable();
        self
    }

    /// The `q` quantile of the latency, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let at = ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len());
        f64::from(self.latencies[at - 1]) / 1000.0
    }
}

/// Runs `ops` (one per connection) against `addr`: `warmup`, then `measure`.
pub async fn run(addr: SocketAddr, ops: Vec<Op>, warmup: Duration, measure: Duration) -> Stats {
    run_measuring(addr, ops, warmup, measure, None).await
}

/// [`run`], also taking the CPU time process `pid` spent in the measured window.
pub async fn run_measuring(
    addr: SocketAddr,
    ops: Vec<Op>,
    warmup: Duration,
    measure: Duration,
    pid: Option<u32>,
) -> Stats {
    let begin = Instant::now() + Duration::from_millis(200);
    let counted_from = begin + warmup;
    let until = counted_from + measure;
    let cpu = pid.map(|pid| {
        tokio::spawn(async move {
            tokio::time::sleep_until(counted_from.into()).await;
            let before = cpu_seconds(pid);
            tokio::time::sleep_until(until.into()).await;
            cpu_seconds(pid) - before
        })
    });
    let mut tasks = Vec::new();
    for op in ops {
        tasks.push(tokio::spawn(connection(
            addr,
            op,
            begin,
            counted_from,
            until,
        )));
    }
    let mut stats = Stats {
        seconds: measure.as_secs_f64(),
        ..Stats::default()
    };
    for task in tasks {
        let (latencies, errors) = task.await.expect("load connection task");
        stats.count += latencies.len() as u64;
        stats.errors += errors;
        stats.latencies.extend(latencies);
    }
    stats.latencies.sort_unstable();
    if let Some(cpu) = cpu {
        stats.cpu_seconds = Some(cpu.await.expect("CPU sampler"));
    }
    stats
}

/// User and system CPU seconds process `pid` has used (`/proc/<pid>/stat`).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let ticks: f64 =
        fields[11].parse::<f64>().unwrap_or(0.0) + fields[12].parse::<f64>().unwrap_or(0.0);
    // Linux reports them in USER_HZ, 100 a second on every architecture it runs.
    ticks / 100.0
}

async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, connection) = handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    sender
}

async fn connection(
    addr: SocketAddr,
    op: Op,
    begin: Instant,
    counted_from: Instant,
    until: Instant,
) -> (Vec<u32>, u64) {
    let mut sender = connect(addr).await;
    tokio::time::sleep_until(begin.into()).await;
    let mut latencies = Vec::with_capacity(64 * 1024);
    let mut errors = 0;
    loop {
        let started = Instant::now();
        if started >= until {
            break;
        }
        let ok = once(&mut sender, &op).await;
        if started >= counted_from {
            let micros = started.elapsed().as_micros();
            latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
            errors += u64::from(!ok);
        }
        if !ok && sender.is_closed() {
            sender = connect(addr).await;
        }
    }
    (latencies, errors)
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    method: Method,
    path: &str,
    token: &str,
    body: Option<(&'static str, String)>,
) -> Option<(StatusCode, Bytes)> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "127.0.0.1")
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    let body = match body {
        Some((content_type, body)) => {
            request = request.header(header::CONTENT_TYPE, content_type);
            Full::new(Bytes::from(body))
        }
        None => Full::new(Bytes::new()),
    };
    sender.ready().await.ok()?;
    let response = sender
        .send_request(request.body(body).expect("request"))
        .await
        .ok()?;
    let status = response.status();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, body))
}

async fn once(sender: &mut SendRequest<Full<Bytes>>, op: &Op) -> bool {
    match op {
        Op::Request {
            method,
            path,
            token,
            form,
            expect,
        } => {
            let body = form
                .as_ref()
                .map(|form| ("application/x-www-form-urlencoded", form.clone()));
            matches!(send(sender, method.clone(), path, token, body).await, Some((status, _)) if status == *expect)
        }
        Op::IssueRevoke { issuer, key } => {
            let body = Some(("application/json", key.clone()));
            let Some((StatusCode::CREATED, issued)) =
                send(sender, Method::POST, "/v1/keys", issuer, body).await
            else {
                return false;
            };
            let Ok(issued) = serde_json::from_slice::<serde_json::Value>(&issued) else {
                return false;
            };
            let Some(id) = issued["id"].as_str() else {
                return false;
            };
            let path = format!("/v1/keys/{id}");
            matches!(
                send(sender, Method::DELETE, &path, issuer, None).await,
                Some((StatusCode::NO_CONTENT, _))
            )
        }
    }
}
