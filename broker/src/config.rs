//! Typed configuration; each field doubles as a flag and an environment variable.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use url::Url;

use secrecy::{ExposeSecret, SecretString};

/// Shortest admin token the broker accepts.
pub const MIN_TOKEN_LEN: usize = 32;

/// Parts of the example tokens in `.env.example` and the README; a token holding one was
/// copied, not made. The worker keeps the same list for its broker token.
const PLACEHOLDER_MARKERS: [&str; 5] = [
    "replace-with",
    "replace_me",
    "replace-me",
    "change-me",
    "changeme",
];

/// A setting the broker refuses to start with. The message names the setting, never its value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The admin token is an example value or too short to resist guessing.
    #[error(
        "KEYLEASE_BROKER_ADMIN_TOKEN (--admin-token) {0}; make one with `openssl rand -hex 32`"
    )]
    WeakAdminToken(&'static str),
    /// The database settings do not make a usable URL.
    #[error("KEYLEASE_BROKER_DATABASE_URL (--database-url) {0}")]
    Database(String),
}

/// Everything the broker needs to run. `keylease-broker --help` prints it.
#[derive(Debug, Clone, Args)]
pub struct BrokerConfig {
    /// Address the HTTP server listens on.
    #[arg(long, env = "KEYLEASE_BROKER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Database holding keys, spend and audit records: `sqlite://path` (created if
    /// missing) or `postgres://[user[:password]@][host][:port][/db]`. For PostgreSQL,
    /// the `PG*` settings fill in the parts the URL leaves out (libpq's rule: the URL
    /// wins), so `postgres://` with `PGHOST`, `PGUSER`, `PGPASSWORD`... needs no
    /// percent-encoding. Never logged: it may hold a password.
    #[arg(
        long,
        env = "KEYLEASE_BROKER_DATABASE_URL",
        default_value = "sqlite://keylease-broker.db",
        hide_env_values = true
    )]
    pub database_url: SecretString,

    /// PostgreSQL host, when `--database-url` is `postgres://` without one.
    #[arg(long, env = "PGHOST")]
    pub pg_host: Option<String>,

    /// PostgreSQL port, when `--database-url` is `postgres://` without one.
    #[arg(long, env = "PGPORT")]
    pub pg_port: Option<u16>,

    /// PostgreSQL user, when `--database-url` is `postgres://` without one.
    #[arg(long, env = "PGUSER")]
    pub pg_user: Option<String>,

    /// PostgreSQL password, when `--database-url` is `postgres://` without one: any
    /// characters, no encoding. Never logged.
    #[arg(long, env = "PGPASSWORD", hide_env_values = true)]
    pub pg_password: Option<SecretString>,

    /// PostgreSQL database, when `--database-url` is `postgres://` without one.
    #[arg(long, env = "PGDATABASE")]
    pub pg_database: Option<String>,

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
            pg_host: None,
            pg_port: None,
            pg_user: None,
            pg_password: None,
            pg_database: None,
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

    /// Refuses settings the broker must not run with: a weak admin token (an admin API
    /// anyone can guess issues keys that spend real money) or unusable database settings.
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Some(why) = weak_token(self.admin_token.expose_secret()) {
            return Err(ConfigError::WeakAdminToken(why));
        }
        self.database().map(drop)
    }

    /// The URL of the database to open: `--database-url`, its PostgreSQL parts left out
    /// filled in from the `PG*` settings, each percent-encoded.
    pub fn database(&self) -> Result<SecretString, ConfigError> {
        let given = self.database_url.expose_secret();
        if !(given.starts_with("postgres:") || given.starts_with("postgresql:")) {
            return Ok(self.database_url.clone());
        }
        // The parse error text could quote the URL, and with it a password.
        let url = Url::parse(given)
            .map_err(|_| ConfigError::Database("is not a valid postgres:// URL".into()))?;
        let decoded = |part: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|p| p.into_owned())
                .map_err(|_| ConfigError::Database("has a part that is not UTF-8".into()))
        };
        let user = match url.username() {
            "" => self.pg_user.clone(),
            user => Some(decoded(user)?),
        };
        let password = match url.password() {
            None => self
                .pg_password
                .as_ref()
                .map(|p| p.expose_secret().to_owned()),
            Some(password) => Some(decoded(password)?),
        };
        let query_host = url
            .query_pairs()
            .any(|(key, _)| key == "host" || key == "hostaddr");
        let host = match url.host_str() {
            _ if query_host => None,
            None | Some("") => self.pg_host.as_deref().map(bracket_ipv6),
            Some(host) => Some(host.to_owned()),
        };
        let port = url.port().or(self.pg_port);
        let database = match url.path().trim_start_matches('/') {
            "" => self.pg_database.clone(),
            database => Some(decoded(database)?),
        };
        let encode = |part: &str| utf8_percent_encode(part, NON_ALPHANUMERIC).to_string();

        let mut built = String::from("postgres://");
        if user.is_some() || password.is_some() {
            built.push_str(&encode(user.as_deref().unwrap_or_default()));
            if let Some(password) = &password {
                built.push(':');
                built.push_str(&encode(password));
            }
            built.push('@');
        }
        // A host starting with `/` is a Unix socket folder, as in libpq; sqlx reads it
        // from the `host` query parameter. Query parameters the URL gives (`host`,
        // `sslmode`, ...) are kept as they are, and sqlx lets them win.
        let socket = host.as_deref().filter(|h| h.starts_with('/'));
        built.push_str(match (&host, socket) {
            (Some(host), None) => host,
            _ => "localhost",
        });
        if let Some(port) = port {
            built.push_str(&format!(":{port}"));
        }
        if let Some(database) = &database {
            built.push('/');
            built.push_str(&encode(database));
        }
        let mut query: Vec<String> = url.query().map(str::to_owned).into_iter().collect();
        if let Some(socket) = socket {
            query.push(format!("host={}", encode(socket)));
        }
        if !query.is_empty() {
            built.push('?');
            built.push_str(&query.join("&"));
        }
        Ok(SecretString::from(built))
    }
}

/// `::1` as `[::1]`, as a URL needs an IPv6 host; any other host as it is.
fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Why `token` is too weak to guard an admin API, if it is.
fn weak_token(token: &str) -> Option<&'static str> {
    let lowercase = token.to_ascii_lowercase();
    if PLACEHOLDER_MARKERS.iter().any(|m| lowercase.contains(m)) {
        Some("is a placeholder from the examples")
    } else if token.chars().count() < MIN_TOKEN_LEN {
        Some("is shorter than 32 characters")
    } else {
        None
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

    /// A password with every character a URL gives a meaning to, and an escape.
    const HOSTILE: &str = "p@ss:w/rd?#%41 $x&y=z";

    fn config(database_url: &str) -> BrokerConfig {
        let mut config = BrokerConfig::new(
            "0123456789abcdef0123456789abcdef".into(),
            "sk_test_x".into(),
            "http://127.0.0.1:9".parse().unwrap(),
        );
        config.database_url = database_url.into();
        config
    }

    fn database(config: &BrokerConfig) -> String {
        config.database().unwrap().expose_secret().to_owned()
    }

    #[test]
    fn pg_settings_fill_in_what_the_url_leaves_out_encoded() {
        let mut config = config("postgres://");
        config.pg_host = Some("postgresql".into());
        config.pg_port = Some(5433);
        config.pg_user = Some("temporal".into());
        config.pg_password = Some(HOSTILE.into());
        config.pg_database = Some("keylease".into());
        let url = database(&config);
        assert_eq!(
            url,
            "postgres://temporal:p%40ss%3Aw%2Frd%3F%23%2541%20%24x%26y%3Dz@postgresql:5433/keylease"
        );
        let parsed = Url::parse(&url).unwrap();
        let password = percent_encoding::percent_decode_str(parsed.password().unwrap());
        assert_eq!(password.decode_utf8().unwrap(), HOSTILE);
        assert_eq!(parsed.host_str(), Some("postgresql"));
    }

    #[test]
    fn the_url_wins_over_pg_settings() {
        let mut config = config("postgres://alice:s%40cret@db.internal:6000/app?sslmode=require");
        config.pg_host = Some("elsewhere".into());
        config.pg_port = Some(5432);
        config.pg_user = Some("bob".into());
        config.pg_password = Some("other".into());
        config.pg_database = Some("other".into());
        assert_eq!(
            database(&config),
            "postgres://alice:s%40cret@db.internal:6000/app?sslmode=require"
        );
    }

    #[test]
    fn sqlite_urls_and_sockets_and_ipv6_hosts() {
        let mut sqlite = config("sqlite://keys.db");
        sqlite.pg_host = Some("ignored".into());
        assert_eq!(database(&sqlite), "sqlite://keys.db");

        let mut socket = config("postgresql:///keylease");
        socket.pg_host = Some("/var/run/postgresql".into());
        assert_eq!(
            database(&socket),
            "postgres://localhost/keylease?host=%2Fvar%2Frun%2Fpostgresql"
        );

        let mut ipv6 = config("postgres://");
        ipv6.pg_host = Some("::1".into());
        assert_eq!(database(&ipv6), "postgres://[::1]");
    }

    #[test]
    fn weak_admin_tokens_are_refused_without_quoting_them() {
        for (token, why) in [
            ("replace-with-a-long-random-token", "placeholder"),
            ("CHANGE-ME-0123456789abcdef0123456789", "placeholder"),
            ("change-me", "placeholder"),
            ("0123456789abcdef0123456789abcde", "shorter than 32"),
            ("", "shorter than 32"),
        ] {
            let mut config = config("sqlite://keys.db");
            config.admin_token = token.into();
            let message = config.check().unwrap_err().to_string();
            assert!(message.contains(why), "{token:?}: {message}");
            assert!(message.contains("openssl rand -hex 32"), "{message}");
            assert!(token.is_empty() || !message.contains(token), "{message}");
        }
        assert!(config("sqlite://keys.db").check().is_ok());
    }

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
