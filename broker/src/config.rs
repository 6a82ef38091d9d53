//! Typed configuration; each field doubles as a flag and an environment variable.

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

    /// Database holding keys, spend and audit records: `sqlite://path` (created if
    /// missing) or `postgres://user:password@host/db`. Never logged: it may hold a password.
    #[arg(
        long,
        env = "KEYLEASE_BROKER_DATABASE_URL",
        default_value = "sqlite://keylease-broker.db",
        hide_env_values = true
    )]
    pub database_url: SecretString,

    /// Bearer token required by the admin API (`/v1/...`). Never logged.
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
    #[arg(long, env = "KEYLEASE_BROKER_UPSTREAM_PROXY")]
    pub upstream_proxy: Option<Url>,

    /// How long a client has to send a request's headers (and, on a kept-alive
    /// connection, to start its next request) before the connection is closed.
    #[arg(long, env = "KEYLEASE_BROKER_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// How long a client has to send a request's body before it is answered 408.
    #[arg(long, env = "KEYLEASE_BROKER_BODY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,

    /// Log line format.
    #[arg(long, env = "KEYLEASE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

impl BrokerConfig {
    /// A config with the defaults above and the three values that have none.
    pub fn new(
        admin_token: SecretString,
        stripe_secret_key: SecretString,
        stripe_api_base: Url,
    ) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: SecretString::from("sqlite://keylease-broker.db"),
            admin_token,
            stripe_secret_key,
            stripe_api_base,
            max_ttl: Duration::from_secs(24 * 3600),
            usd_rates: UsdRates::default(),
            upstream_timeout: Duration::from_secs(30),
            insecure_upstream: false,
            upstream_proxy: None,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            log_format: LogFormat::Pretty,
        }
    }

    /// Refuses a Stripe API base the secret must not be sent to in the clear:
    /// `https://`, or `http://` on a loopback address, unless `insecure_upstream`.
    pub fn check_upstream(&self) -> Result<(), String> {
        let base = &self.stripe_api_base;
        let loopback = match base.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name == "localhost",
            None => false,
        };
        match base.scheme() {
            "https" => Ok(()),
            "http" if loopback || self.insecure_upstream => Ok(()),
            "http" => Err(format!(
                "the Stripe API base {base} is plain http on a non-loopback host: use https, \
                 or set KEYLEASE_BROKER_INSECURE_UPSTREAM=true for a simulator on a private network"
            )),
            other => Err(format!("the Stripe API base must be https, not {other}")),
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

    #[test]
    fn upstream_must_be_https_unless_loopback() {
        let config = |base: &str, insecure: bool| {
            let mut config = BrokerConfig::new("a".into(), "b".into(), base.parse().unwrap());
            config.insecure_upstream = insecure;
            config.check_upstream()
        };
        assert!(config("https://api.stripe.com", false).is_ok());
        assert!(config("http://127.0.0.1:12111", false).is_ok());
        assert!(config("http://[::1]:12111", false).is_ok());
        assert!(config("http://localhost:12111", false).is_ok());
        assert!(config("http://stripe-sim:12111", false).is_err());
        assert!(config("http://10.0.0.5", false).is_err());
        assert!(config("ftp://127.0.0.1", false).is_err());
        assert!(config("http://stripe-sim:12111", true).is_ok());
    }
}
