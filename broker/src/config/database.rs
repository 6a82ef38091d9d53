//! The database URL: `--database-url`, with the PostgreSQL parts it leaves
//! out filled in from the `PG*` settings, each percent-encoded.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{BrokerConfig, ConfigError};

impl BrokerConfig {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_config as config;

    /// A password with every character a URL gives a meaning to, and an escape.
    const HOSTILE: &str = "p@ss:w/rd?#%41 $x&y=z";

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
}
