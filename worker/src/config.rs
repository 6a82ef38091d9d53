//! Typed configuration: every field is a flag and an environment variable.

use std::time::Duration;

use clap::{Args, ValueEnum};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::error::WorkerError;

/// Shortest broker token the worker accepts: the broker refuses shorter admin tokens.
pub const MIN_TOKEN_LEN: usize = 32;

/// Parts of the example tokens in `.env.example` and the README; the broker refuses the
/// same ones (`keylease_broker::config`), and the e2e test `weak_tokens` runs both binaries.
const PLACEHOLDER_MARKERS: [&str; 5] = [
    "replace-with",
    "replace_me",
    "replace-me",
    "change-me",
    "changeme",
];

/// Refuses a broker token copied from the examples or shorter than 32 characters: the
/// message says what is wrong and how to make one, never the token.
pub fn check_broker_token(token: &SecretString) -> Result<(), WorkerError> {
    let token = token.expose_secret();
    let lowercase = token.to_ascii_lowercase();
    let why = if PLACEHOLDER_MARKERS.iter().any(|m| lowercase.contains(m)) {
        "is a placeholder from the examples"
    } else if token.chars().count() < MIN_TOKEN_LEN {
        "is shorter than 32 characters"
    } else {
        return Ok(());
    };
    Err(WorkerError::Config(format!(
        "KEYLEASE_BROKER_TOKEN (--broker-token) {why}; make one with `openssl rand -hex 32` \
         and give the broker the same as KEYLEASE_BROKER_ADMIN_TOKEN"
    )))
}

/// Parses a broker URL: `http://` or `https://` with a host, so that a
/// scheme-less `broker:8080` (which parses as a URL of scheme `broker`) is
/// refused at start, naming the flag, rather than on the first key issue.
pub fn http_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|err| format!("not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http:// or https:// URL with a host".to_owned());
    }
    Ok(url)
}

/// How the worker reaches the broker: the same flags on every subcommand that calls it.
#[derive(Debug, Clone, Default, Args)]
pub struct BrokerTransport {
    /// Allow plain `http://` broker and proxy URLs to hosts other than this
    /// one (a private network, such as compose's); otherwise they must be
    /// `https://`, since the broker token travels on every call.
    #[arg(long, env = "KEYLEASE_BROKER_INSECURE")]
    pub broker_insecure: bool,
    /// A CA to trust for the broker's `https://` certificate besides the
    /// usual web roots (a private CA): a PEM file's path, or the PEM itself.
    /// Read at start; an error names the setting, never its value.
    #[arg(long, env = "KEYLEASE_BROKER_CA", hide_env_values = true)]
    pub broker_ca: Option<String>,
}

/// Whether `url` names this host (a loopback address, or `localhost`): a
/// secret sent there in clear text crosses no network.
pub fn on_this_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

impl BrokerTransport {
    /// Refuses a plain `http://` URL (given as `setting`) to a host other
    /// than this one, unless `--broker-insecure`: the broker token (and
    /// vault tokens) would travel in clear text.
    pub fn check(&self, setting: &str, url: &Url) -> Result<(), WorkerError> {
        if url.scheme() == "http" && !on_this_host(url) && !self.broker_insecure {
            return Err(WorkerError::Config(format!(
                "{setting} is plain http to {}: the broker token would travel in clear text; use https://, or set KEYLEASE_BROKER_INSECURE=true on a private network",
                url.host_str().unwrap_or("-")
            )));
        }
        Ok(())
    }

    /// The certificates of `KEYLEASE_BROKER_CA` (none when unset or
    /// empty): PEM text if it holds a PEM header, else a PEM file's path.
    pub fn roots(&self) -> Result<Vec<reqwest::Certificate>, WorkerError> {
        let Some(text) = self.broker_ca.as_deref().filter(|text| !text.is_empty()) else {
            return Ok(Vec::new());
        };
        let refused =
            |why: String| WorkerError::Config(format!("KEYLEASE_BROKER_CA (--broker-ca) {why}"));
        let pem = if text.contains("-----BEGIN") {
            text.as_bytes().to_vec()
        } else {
            std::fs::read(text).map_err(|err| refused(format!("{text}: cannot read it: {err}")))?
        };
        let roots = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|roots| !roots.is_empty())
            .ok_or_else(|| refused("holds no PEM certificate".to_owned()))?;
        // A PEM block of garbage parses here and fails only when a client is built.
        roots
            .iter()
            .fold(reqwest::Client::builder(), |builder, root| {
                builder.add_root_certificate(root.clone())
            })
            .build()
            .map_err(|_| refused("holds a certificate that cannot be used".to_owned()))?;
        Ok(roots)
    }
}

/// Where Temporal is, how to reach it, and which queue to use. The
/// connection settings are the Temporal CLI's and every SDK's (environment
/// configuration): a profile of the TOML file (`TEMPORAL_CONFIG_FILE`,
/// `TEMPORAL_PROFILE`), then the `TEMPORAL_*` variables, then these flags,
/// each overriding the one before; [`crate::connect`] resolves them.
#[derive(Debug, Clone, Args)]
pub struct TemporalArgs {
    /// Temporal frontend address (`host:port`, or a URL); default: the
    /// profile's, else 127.0.0.1:7233.
    #[arg(long, env = "TEMPORAL_ADDRESS")]
    pub temporal_address: Option<String>,
    /// Temporal namespace; default: the profile's, else `default`.
    #[arg(long, env = "TEMPORAL_NAMESPACE")]
    pub namespace: Option<String>,
    /// API key (Temporal Cloud): sent as a bearer token, and turns TLS on. Never logged.
    #[arg(long, env = "TEMPORAL_API_KEY", hide_env_values = true)]
    pub api_key: Option<SecretString>,
    /// Client certificate (PEM file) for mTLS; with `--tls-key`.
    #[arg(long, env = "TEMPORAL_TLS_CLIENT_CERT_PATH")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Private key (PEM file) of the client certificate. Never logged.
    #[arg(long, env = "TEMPORAL_TLS_CLIENT_KEY_PATH")]
    pub tls_key: Option<std::path::PathBuf>,
    /// CA (PEM file) that issued the server's certificate, when not a public one.
    #[arg(long, env = "TEMPORAL_TLS_SERVER_CA_CERT_PATH")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Name the server's certificate is checked against, when not the address's host.
    #[arg(long, env = "TEMPORAL_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
    /// Profile of the Temporal configuration file to use (default: `default`).
    #[arg(long, env = "TEMPORAL_PROFILE")]
    pub profile: Option<String>,
    /// Task queue the worker polls and checkouts are started on.
    #[arg(long, env = "KEYLEASE_TASK_QUEUE", default_value = keylease_workflows::TASK_QUEUE)]
    pub task_queue: String,
    /// Compression of the gRPC calls to Temporal.
    #[arg(long, env = "KEYLEASE_TEMPORAL_COMPRESSION", value_enum, default_value_t = Compression::None)]
    pub temporal_compression: Compression,
}

/// Compression of the gRPC calls to Temporal.
///
/// None by default: the SDK's own default, gzip, spent about a fifth of the
/// worker's CPU under checkout load (issue 24, fifth sitting: a new deflate
/// state allocated and zeroed for each message, its pages faulted in and
/// given back), and the Temporal server as much again undoing it, for
/// messages of a few kilobytes. Gzip is for a link slow enough that those
/// bytes cost more than the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    /// Sent and answered uncompressed.
    None,
    /// Requests gzipped, gzipped answers accepted.
    Gzip,
}

impl TemporalArgs {
    /// The `default` namespace of the server at `address` and `task_queue`
    /// (TLS only if the environment asks for it): for tests and the bench.
    pub fn at(address: &str, task_queue: &str) -> Self {
        Self {
            temporal_address: Some(address.to_owned()),
            namespace: Some("default".to_owned()),
            api_key: None,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            tls_server_name: None,
            profile: None,
            task_queue: task_queue.to_owned(),
            temporal_compression: Compression::None,
        }
    }
}

/// Everything `keylease-worker run` needs.
#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    /// Temporal connection.
    #[command(flatten)]
    pub temporal: TemporalArgs,
    /// The broker's vault-key API (issue and revoke), e.g. `http://127.0.0.1:8080`.
    #[arg(long, env = "KEYLEASE_BROKER_URL", value_parser = http_url)]
    pub broker_url: Url,
    /// The broker's Stripe proxy, e.g. `http://127.0.0.1:8080/stripe`.
    #[arg(long, env = "KEYLEASE_PROXY_URL", value_parser = http_url)]
    pub proxy_url: Url,
    /// Bearer token of the broker's key API: at least 32 characters, not an example
    /// value. Never logged.
    #[arg(long, env = "KEYLEASE_BROKER_TOKEN", hide_env_values = true)]
    pub broker_token: SecretString,
    /// How the broker is reached.
    #[command(flatten)]
    pub transport: BrokerTransport,
    /// How this worker appears in Temporal (pollers, activity attempts); default
    /// `keylease-worker:<pid>@<host name>`, which tells containers (all pid 1) apart.
    #[arg(long, env = "TEMPORAL_WORKER_IDENTITY")]
    pub identity: Option<String>,
    /// Most payment activities run at once by this worker.
    #[arg(
        long,
        env = "KEYLEASE_MAX_CONCURRENT_ACTIVITIES",
        default_value_t = 100
    )]
    pub max_concurrent_activities: usize,
    /// The broker's longest key TTL; longer TTLs are cut to it with a warning.
    #[arg(long, env = "KEYLEASE_BROKER_MAX_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub broker_max_ttl: Duration,
    /// On SIGTERM or Ctrl-C, how long running activities may finish (and revoke their keys).
    #[arg(long, env = "KEYLEASE_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// Where to serve `/metrics` (Prometheus: Keylease's and the Temporal SDK's) and `/healthz`, e.g. `0.0.0.0:9464`.
    #[arg(long, env = "KEYLEASE_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// How long a checkout's compensation may go on before each further
    /// refund attempt counts in `keylease_refund_attempts_overdue_total` (alert on it).
    #[arg(long, env = "KEYLEASE_REFUND_OVERDUE_AFTER", default_value = "15m", value_parser = humantime::parse_duration)]
    pub refund_overdue_after: Duration,
    /// How long a revocation is retried before it is left to the key's TTL.
    #[arg(long, env = "KEYLEASE_REVOKE_BUDGET", default_value = "2s", value_parser = humantime::parse_duration)]
    pub revoke_budget: Duration,
}

/// The log filter when `RUST_LOG` is unset: `info`, less the span the SDK
/// opens for each history event it applies. Its `#[instrument]` is at
/// `info` and formats the whole event into the span whether or not anything
/// is logged in it: 4% of the worker's CPU under checkout load (issue 24,
/// fifth sitting). `RUST_LOG=info` brings it back.
pub const DEFAULT_LOG_FILTER: &str =
    "info,temporalio_sdk_core::worker::workflow::machines::workflow_machines=warn";

/// The log filter of a worker: `RUST_LOG`, else [`DEFAULT_LOG_FILTER`].
pub fn log_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER))
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::EnvFilter;

    use super::DEFAULT_LOG_FILTER;

    /// The default filter parses (`EnvFilter::new` drops a directive it
    /// cannot read), keeps `info` and turns off only the SDK's span of each
    /// history event.
    #[test]
    fn the_default_log_filter_leaves_out_only_the_sdks_span_of_each_event() {
        let filter = EnvFilter::try_new(DEFAULT_LOG_FILTER).unwrap();
        let subscriber = tracing_subscriber::fmt().with_env_filter(filter).finish();
        tracing::subscriber::with_default(subscriber, || {
            let event = tracing::info_span!(
                target: "temporalio_sdk_core::worker::workflow::machines::workflow_machines",
                "handle_event"
            );
            assert!(event.is_disabled());
            let stream = tracing::info_span!(
                target: "temporalio_sdk_core::worker::workflow::workflow_stream",
                "instantiate_or_update"
            );
            assert!(!stream.is_disabled());
            let ours = tracing::info_span!(target: "keylease_activities::charge", "charge");
            assert!(!ours.is_disabled());
            let warning = tracing::enabled!(
                target: "temporalio_sdk_core::worker::workflow::machines::workflow_machines",
                tracing::Level::WARN
            );
            assert!(warning);
        });
    }
}
