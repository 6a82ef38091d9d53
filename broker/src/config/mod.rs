//! Typed configuration; each field doubles as a flag and an environment variable.
//!
//! [`checks`] holds what the broker refuses to start with; [`database`]
//! builds the database URL from its parts.

mod checks;
mod database;
mod error;
mod retention;

pub use checks::{MIN_TOKEN_LEN, weak_token};
pub use database::DatabaseConfig;
pub use error::ConfigError;
pub use retention::{Keep, RetentionConfig};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use url::Url;

use secrecy::SecretString;

/// Everything the broker needs to run. `keylease-broker --help` prints it.
#[derive(Debug, Clone, Args)]
pub struct BrokerConfig {
    /// Address the HTTP server listens on.
    #[arg(long, env = "KEYLEASE_BROKER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Also serve Stripe's API at the root of this address (`/v1/...`, as
    /// `api.stripe.com` does), same rules and audit as `/stripe/...`: for
    /// Stripe's libraries, which take a host, port and protocol but no base path.
    #[arg(long, env = "KEYLEASE_BROKER_STRIPE_LISTEN")]
    pub stripe_listen: Option<SocketAddr>,

    /// Where keys, spend and audit records are kept.
    #[command(flatten)]
    pub db: DatabaseConfig,

    /// Bearer token required by the admin API (`/v1/...`): at least 32 characters, not
    /// an example value. Never logged.
    #[arg(long, env = "KEYLEASE_BROKER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: SecretString,

    /// Stripe secret key the proxy forwards with. Never logged, never returned.
    #[arg(long, env = "KEYLEASE_STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: SecretString,

    /// Base URL of the Stripe API the proxy forwards to (stripe-sim in tests).
    #[arg(
        long,
        env = "KEYLEASE_STRIPE_API_BASE",
        default_value = "https://api.stripe.com"
    )]
    pub stripe_api_base: Url,

    /// Longest `expires_in` a key may ask for (`90s`, `5m`, `24h`).
    #[arg(long, env = "KEYLEASE_BROKER_MAX_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub max_ttl: Duration,

    /// USD value of one unit of each non-USD currency a key may spend, e.g. `eur=1.08,gbp=1.27`.
    #[arg(long, env = "KEYLEASE_BROKER_USD_RATES", default_value = "", value_parser = parse_usd_rates)]
    pub usd_rates: UsdRates,

    /// How long the proxy waits for upstream before answering 504.
    #[arg(long, env = "KEYLEASE_BROKER_UPSTREAM_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,

    /// Reach a plain `http://` upstream on a non-loopback address (stripe-sim in
    /// docker compose). Off: the Stripe API base must be `https://` or loopback.
    #[arg(
        long,
        env = "KEYLEASE_BROKER_INSECURE_UPSTREAM",
        default_value_t = false
    )]
    pub insecure_upstream: bool,

    /// HTTP(S) proxy for upstream calls. The environment's proxy variables
    /// (`HTTPS_PROXY`, …) are ignored: the Stripe secret goes only where this says.
    /// Read as a secret, since it may hold the proxy's credentials: parsed at
    /// start by [`BrokerConfig::upstream_proxy_url`], never echoed.
    #[arg(long, env = "KEYLEASE_BROKER_UPSTREAM_PROXY", hide_env_values = true)]
    pub upstream_proxy: Option<SecretString>,

    /// How long a client has to send a request's headers (and, on a kept-alive
    /// connection, to start its next request) before the connection is closed.
    #[arg(long, env = "KEYLEASE_BROKER_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// Most client connections open at once; further ones wait in the
    /// listen backlog until one closes. Slow or idle connections are closed
    /// by the header timeout, so this bounds memory without starving clients.
    #[arg(long, env = "KEYLEASE_BROKER_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Largest request line and headers, in bytes (at least 8192): larger
    /// ones are answered 431, a long request line included. Bounds what one
    /// slow connection can make the broker hold.
    #[arg(long, env = "KEYLEASE_BROKER_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,

    /// How often requests that named no valid key (an unknown token, vendor
    /// or method, a malformed path) are written to the audit: as one row per
    /// kind with the number of requests, never one durable write each.
    #[arg(long, env = "KEYLEASE_BROKER_UNAUTHENTICATED_AUDIT_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub unauthenticated_audit_interval: Duration,

    /// How long a client has to send a request's body before it is answered 408.
    #[arg(long, env = "KEYLEASE_BROKER_BODY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,

    /// Serve HTTPS with this certificate chain (PEM), on the main address and
    /// `--stripe-listen`, for deployments without a TLS-terminating proxy. With `--tls-key`.
    #[arg(long, env = "KEYLEASE_BROKER_TLS_CERT")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The private key (PEM) of `--tls-cert`. Never logged.
    #[arg(long, env = "KEYLEASE_BROKER_TLS_KEY")]
    pub tls_key: Option<std::path::PathBuf>,

    /// How long rows are kept.
    #[command(flatten)]
    pub retention: RetentionConfig,

    /// How often the broker deletes, in small batches, the rows past their
    /// retention (`keylease-broker tidy` does it on demand).
    #[arg(long, env = "KEYLEASE_BROKER_TIDY_INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    pub tidy_interval: Duration,

    /// Also write every audit record as one JSON line to this file
    /// (appended), or to stdout with `-`, for a log pipeline (docs/retention.md
    /// lists the fields). Written before the answer goes out.
    #[arg(long, env = "KEYLEASE_BROKER_AUDIT_LOG")]
    pub audit_log: Option<std::path::PathBuf>,

    /// Log line format.
    #[arg(long, env = "KEYLEASE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

impl BrokerConfig {
    /// The upstream proxy as a URL; the error names the setting, never its
    /// value (a proxy URL may hold a password).
    pub fn upstream_proxy_url(&self) -> Result<Option<Url>, String> {
        use secrecy::ExposeSecret;
        self.upstream_proxy
            .as_ref()
            .map(|proxy| {
                Url::parse(proxy.expose_secret()).map_err(|err| {
                    format!("KEYLEASE_BROKER_UPSTREAM_PROXY (--upstream-proxy) is not a URL: {err}")
                })
            })
            .transpose()
    }

    /// A config with the defaults above and the three values that have none.
    pub fn new(
        admin_token: SecretString,
        stripe_secret_key: SecretString,
        stripe_api_base: Url,
    ) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            stripe_listen: None,
            db: DatabaseConfig::new("sqlite://keylease-broker.db"),
            admin_token,
            stripe_secret_key,
            stripe_api_base,
            max_ttl: Duration::from_secs(24 * 3600),
            usd_rates: UsdRates::default(),
            upstream_timeout: Duration::from_secs(30),
            insecure_upstream: false,
            upstream_proxy: None,
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_header_bytes: 16 * 1024,
            unauthenticated_audit_interval: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            tls_cert: None,
            tls_key: None,
            retention: RetentionConfig::default(),
            tidy_interval: Duration::from_secs(60),
            audit_log: None,
            log_format: LogFormat::Pretty,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines, for a terminal.
    Pretty,
}

/// USD value of one major unit of each configured currency (lowercase ISO 4217).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsdRates(pub BTreeMap<String, f64>);

/// Parses `eur=1.08,gbp=1.27`; an empty string means no rates.
pub fn parse_usd_rates(text: &str) -> Result<UsdRates, String> {
    let mut rates = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (currency, rate) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{pair}` is not `currency=rate`"))?;
        let currency = currency.trim().to_ascii_lowercase();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(format!("`{currency}` is not a three-letter currency code"));
        }
        let rate: f64 = rate
            .trim()
            .parse()
            .map_err(|_| format!("rate for {currency} is not a number"))?;
        if !rate.is_finite() || rate <= 0.0 {
            return Err(format!("rate for {currency} must be a positive number"));
        }
        rates.insert(currency, rate);
    }
    Ok(UsdRates(rates))
}

/// A config for unit tests: an `openssl rand -hex 32` admin token, a loopback Stripe, `database_url`.
#[cfg(test)]
pub(crate) fn test_config(database_url: &str) -> BrokerConfig {
    let mut config = BrokerConfig::new(
        "5d0c6a1f93e84b27c1f0a9d3e6b85472c9e1a0f3b7d46e28a5c9f10b3e7d2a64".into(),
        "sk_test_x".into(),
        "http://127.0.0.1:9".parse().unwrap(),
    );
    config.db = DatabaseConfig::new(database_url);
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates_and_rejects_nonsense() {
        let rates = parse_usd_rates("eur=1.08, GBP=1.27").unwrap();
        assert_eq!(rates.0.get("eur"), Some(&1.08));
        assert_eq!(rates.0.get("gbp"), Some(&1.27));
        assert!(parse_usd_rates("").unwrap().0.is_empty());
        assert!(parse_usd_rates("eur").is_err());
        assert!(parse_usd_rates("euro=1").is_err());
        assert!(parse_usd_rates("eur=-1").is_err());
        assert!(parse_usd_rates("eur=abc").is_err());
    }
}
