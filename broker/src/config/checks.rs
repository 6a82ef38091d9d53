//! What the broker refuses to start with: a Stripe API base the secret
//! would reach in the clear, a weak admin token, unusable database settings.

use secrecy::ExposeSecret;

use super::{BrokerConfig, ConfigError};

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

impl BrokerConfig {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(database_url: &str) -> BrokerConfig {
        let mut config = BrokerConfig::new(
            "0123456789abcdef0123456789abcdef".into(),
            "sk_test_x".into(),
            "http://127.0.0.1:9".parse().unwrap(),
        );
        config.database_url = database_url.into();
        config
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
