//! The database URL: `--database-url`, with the PostgreSQL parts it leaves
//! out filled in from the `PG*` settings, each percent-encoded.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::error::ConfigError;

/// The database settings: those of the server, and all that
/// `keylease-broker tidy` needs (no token, no Stripe secret).
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseConfig {
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

    /// Open a SQLite file without `PRAGMA integrity_check`. Off: the broker
    /// reads the whole file once at start (a read of it at disk speed, see
    /// docs/storage.md) and refuses a corrupt one, rather than serve caps and
    /// revocations from it.
    #[arg(
        long,
        env = "KEYLEASE_BROKER_SKIP_INTEGRITY_CHECK",
        default_value_t = false
    )]
    pub skip_integrity_check: bool,

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
}

impl DatabaseConfig {
    /// `url` with no `PG*` part and the integrity check on.
    pub fn new(url: &str) -> Self {
        Self {
            database_url: SecretString::from(url),
            skip_integrity_check: false,
            pg_host: None,
            pg_port: None,
            pg_user: None,
            pg_password: None,
            pg_database: None,
        }
    }

    /// The URL of the database to open: `--database-url`, its PostgreSQL parts left out
    /// filled in from the `PG*` settings, each percent-encoded.
    pub fn url(&self) -> Result<SecretString, ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> DatabaseConfig {
        DatabaseConfig::new(url)
    }

    /// A password with every character a URL gives a meaning to, and an escape.
    const HOSTILE: &str = "p@ss:w/rd?#%41 $x&y=z";

    fn database(config: &DatabaseConfig) -> String {
        config.url().unwrap().expose_secret().to_owned()
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
}
