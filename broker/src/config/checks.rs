//! What the broker refuses to start with: a Stripe API base the secret
//! would reach in the clear, a weak admin token, unusable database settings.

use secrecy::ExposeSecret;

use super::{BrokerConfig, ConfigError};

/// Smallest header buffer hyper accepts.
pub const MIN_HEADER_BYTES: usize = 8192;

/// Longest upstream and body timeouts: a request lives far below [`crate::store::tidy::LOST_AFTER`].
pub const MAX_UPSTREAM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

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

/// Whether `url` names this machine.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

impl BrokerConfig {
    /// Refuses a way to Stripe on which the secret could travel in the clear.
    ///
    /// The API base is `https://`, or `http://` on a loopback address, unless
    /// `insecure_upstream` (a simulator on a private network). An upstream
    /// proxy is `https://`, or `http://` on a loopback address; and a plain
    /// `http://` base goes through a proxy only on this machine, since a
    /// proxy forwarding a plain request reads its `Authorization` header.
    /// `insecure_upstream` relaxes neither proxy rule. Messages name the
    /// setting, never a proxy URL (it may hold credentials).
    pub fn check_upstream(&self) -> Result<(), String> {
        let base = &self.stripe_api_base;
        match base.scheme() {
            "https" => {}
            "http" if is_loopback(base) || self.insecure_upstream => {}
            "http" => {
                return Err(format!(
                    "the Stripe API base {base} is plain http on a non-loopback host: use https, \
                     or set KEYLEASE_BROKER_INSECURE_UPSTREAM=true for a simulator on a private network"
                ));
            }
            other => return Err(format!("the Stripe API base must be https, not {other}")),
        }
        let Some(proxy) = self.upstream_proxy_url()? else {
            return Ok(());
        };
        match proxy.scheme() {
            "https" => {}
            "http" if is_loopback(&proxy) => {}
            "http" => {
                return Err(
                    "KEYLEASE_BROKER_UPSTREAM_PROXY is plain http on a non-loopback \
                            host: the secret would reach it unencrypted; use an https:// proxy"
                        .to_owned(),
                );
            }
            _ => return Err("KEYLEASE_BROKER_UPSTREAM_PROXY must be an https:// URL".to_owned()),
        }
        if base.scheme() == "http" && !is_loopback(&proxy) {
            return Err(format!(
                "the Stripe API base {base} is plain http, and KEYLEASE_BROKER_UPSTREAM_PROXY \
                 would read the secret in every request it forwards: use an https base"
            ));
        }
        Ok(())
    }

    /// Refuses settings the broker must not run with: a weak admin token (an admin API
    /// anyone can guess issues keys that spend real money) or unusable database settings.
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Some(why) = weak_token(self.admin_token.expose_secret()) {
            return Err(ConfigError::WeakAdminToken(why));
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Err(ConfigError::Limit(format!(
                "KEYLEASE_BROKER_MAX_HEADER_BYTES (--max-header-bytes) must be at least {MIN_HEADER_BYTES}"
            )));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Limit(
                "KEYLEASE_BROKER_MAX_CONNECTIONS (--max-connections) must be at least 1".to_owned(),
            ));
        }
        if self.unauthenticated_audit_interval.is_zero() {
            return Err(ConfigError::Limit(
                "KEYLEASE_BROKER_UNAUTHENTICATED_AUDIT_INTERVAL must be longer than 0".to_owned(),
            ));
        }
        if self.tidy_interval.is_zero() {
            return Err(ConfigError::Limit(
                "KEYLEASE_BROKER_TIDY_INTERVAL (--tidy-interval) must be longer than 0".to_owned(),
            ));
        }
        // A request in flight past an hour is taken for lost by tidy: its
        // body, a price read and its forwarding stay far below that.
        if self.body_timeout > MAX_UPSTREAM_TIMEOUT {
            return Err(ConfigError::Limit(
                "KEYLEASE_BROKER_BODY_TIMEOUT (--body-timeout) must be at most 10 minutes"
                    .to_owned(),
            ));
        }
        if self.upstream_timeout > MAX_UPSTREAM_TIMEOUT {
            return Err(ConfigError::Limit(
                "KEYLEASE_BROKER_UPSTREAM_TIMEOUT (--upstream-timeout) must be at most 10 minutes"
                    .to_owned(),
            ));
        }
        self.db.url().map(drop)
    }
}

/// Least strength of an admin token if its characters were random: its
/// length times the bits of the smallest common alphabet that holds it
/// ([`alphabet`]). `openssl rand -hex 16` (32 hex digits) has 128; 32
/// decimal digits have 106.
pub const MIN_TOKEN_BITS: f64 = 128.0;

/// Least strength of an admin token once its words, repeats and sequences
/// are counted at their rank ([`estimated_bits`]). Far below
/// [`MIN_TOKEN_BITS`], since the short words a random hex or base64 string
/// spells by chance (`bad`, `cafe`, `1999`) cost a random token up to ~20
/// bits; a token made of words or patterns falls far below it.
pub const MIN_PATTERN_BITS: f64 = 80.0;

/// Why `token` is too weak to guard an admin API, if it is.
pub fn weak_token(token: &str) -> Option<&'static str> {
    let lowercase = token.to_ascii_lowercase();
    if PLACEHOLDER_MARKERS.iter().any(|m| lowercase.contains(m)) {
        Some("is a placeholder from the examples")
    } else if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("holds whitespace or control characters")
    } else if token.chars().count() < MIN_TOKEN_LEN {
        Some("is shorter than 32 characters")
    } else if token.chars().count() as f64 * alphabet(token).log2() < MIN_TOKEN_BITS {
        Some("is too easy to guess: too few kinds of character for its length (under 128 bits)")
    } else if estimated_bits(token) < MIN_PATTERN_BITS {
        Some("is too easy to guess: built of words, repeats or sequences")
    } else {
        None
    }
}

/// How many bits a guesser needs for `token`: zxcvbn finds its words,
/// repeats, keyboard runs, sequences and dates and counts each at its rank;
/// the rest counts as random characters of the kinds the token uses
/// (hex, digits, letters, symbols). zxcvbn's own total is capped near 64
/// bits, too low to tell a strong token from a long one, so only its
/// matches are used.
fn estimated_bits(token: &str) -> f64 {
    let per_char = alphabet(token).log2();
    zxcvbn::zxcvbn(token, &[])
        .sequence()
        .iter()
        .map(|found| match found.pattern {
            zxcvbn::matching::patterns::MatchPattern::BruteForce => {
                found.token.chars().count() as f64 * per_char
            }
            _ => (found.guesses.unwrap_or(1).max(1) as f64).log2(),
        })
        .sum()
}

/// The size of the smallest alphabet of common kinds that holds every
/// character of `token`: hex digits, decimal digits, lowercase or
/// uppercase letters and digits, or all printable ASCII.
fn alphabet(token: &str) -> f64 {
    let all = |test: fn(&char) -> bool| token.chars().all(|c| test(&c));
    if all(char::is_ascii_digit) {
        10.0
    } else if all(|c| c.is_ascii_digit() || ('a'..='f').contains(c))
        || all(|c| c.is_ascii_digit() || ('A'..='F').contains(c))
    {
        16.0
    } else if all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        || all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        36.0
    } else if all(char::is_ascii_alphanumeric) {
        62.0
    } else {
        95.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_config as config;

    /// A helper's attack: with a body timeout of an hour a live request
    /// could outlast the hour after which tidy takes it for lost.
    #[test]
    fn a_request_cannot_be_given_an_hour() {
        let mut slow_body = config("sqlite://x.db");
        slow_body.body_timeout = std::time::Duration::from_secs(3600);
        assert!(
            slow_body
                .check()
                .unwrap_err()
                .to_string()
                .contains("--body-timeout")
        );
        let mut slow_upstream = config("sqlite://x.db");
        slow_upstream.upstream_timeout = std::time::Duration::from_secs(601);
        assert!(
            slow_upstream
                .check()
                .unwrap_err()
                .to_string()
                .contains("--upstream-timeout")
        );
        let mut fine = config("sqlite://x.db");
        fine.body_timeout = MAX_UPSTREAM_TIMEOUT;
        fine.upstream_timeout = MAX_UPSTREAM_TIMEOUT;
        assert!(fine.check().is_ok());
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

    /// Issue 20: the admin-token rule checked length alone: `a` x 32,
    /// 32 digits, `password` x 4 and 32 spaces were accepted, the last
    /// never usable (HTTP trims it).
    #[test]
    fn an_admin_token_must_carry_real_entropy() {
        for (token, why) in [
            ("a".repeat(32), "too easy"),
            ("7".repeat(40), "too easy"),
            ("12345678901234567890123456789012".to_owned(), "too easy"),
            ("83920174650128374659102837465019".to_owned(), "too easy"),
            ("password".repeat(4), "too easy"),
            ("0123456789abcdef0123456789abcdef".to_owned(), "too easy"),
            (" ".repeat(32), "whitespace"),
            (format!(" {}", "9f".repeat(20)), "whitespace"),
            (format!("{}\t", "9f".repeat(20)), "whitespace"),
        ] {
            let mut config = config("sqlite://keys.db");
            config.admin_token = token.as_str().into();
            let message = config.check().unwrap_err().to_string();
            assert!(message.contains(why), "{token:?}: {message}");
            assert!(
                token.trim().is_empty() || !message.contains(token.trim()),
                "{message}"
            );
        }
    }

    /// What the docs tell operators to run passes, every time: 40 random
    /// tokens each of `openssl rand -hex 16` (128 bits), `-hex 32` and `-base64 32`.
    #[test]
    fn random_tokens_of_128_bits_or_more_pass() {
        use base64::Engine;
        for _ in 0..40 {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).unwrap();
            for token in [
                hex::encode(&bytes[..16]),
                hex::encode(bytes),
                base64::engine::general_purpose::STANDARD.encode(bytes),
            ] {
                assert_eq!(weak_token(&token), None, "{token}");
                let bits = estimated_bits(&token);
                assert!(
                    bits >= MIN_PATTERN_BITS + 20.0,
                    "{token}: {bits:.1} bits, too near the limit"
                );
            }
        }
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

    /// Adversarial finding (issue 20): with `KEYLEASE_BROKER_UPSTREAM_PROXY`
    /// set to a plain-http proxy elsewhere, the proxy received
    /// `Authorization: Bearer sk_…`. The secret now reaches a proxy only over
    /// TLS, or on this machine.
    #[test]
    fn an_upstream_proxy_never_sees_the_secret_in_the_clear() {
        let config = |base: &str, proxy: &str, insecure: bool| {
            let mut config = BrokerConfig::new("a".into(), "b".into(), base.parse().unwrap());
            config.upstream_proxy = Some(proxy.into());
            config.insecure_upstream = insecure;
            config.check_upstream()
        };
        assert!(config("https://api.stripe.com", "https://proxy.corp:3128", false).is_ok());
        assert!(config("https://api.stripe.com", "http://127.0.0.1:3128", false).is_ok());
        assert!(config("http://127.0.0.1:12111", "http://localhost:3128", false).is_ok());
        for (base, proxy, insecure) in [
            ("https://api.stripe.com", "http://proxy.corp:3128", false),
            ("https://api.stripe.com", "http://10.0.0.5:3128", true),
            ("https://api.stripe.com", "socks5://proxy.corp:1080", false),
            ("http://127.0.0.1:12111", "https://proxy.corp:3128", false),
            ("http://stripe-sim:12111", "https://proxy.corp:3128", true),
        ] {
            let refused = config(base, proxy, insecure).unwrap_err();
            assert!(
                refused.contains("KEYLEASE_BROKER_UPSTREAM_PROXY"),
                "{refused}"
            );
            assert!(
                !refused.contains("proxy.corp"),
                "never quotes the proxy: {refused}"
            );
        }
        let with_password = config(
            "https://api.stripe.com",
            "http://user:hunter2@proxy.corp:3128",
            false,
        )
        .unwrap_err();
        assert!(!with_password.contains("hunter2"), "{with_password}");
        // Adversarial finding: a URL the parser refuses (an unencoded `/` in
        // the password, a bad port) was printed whole, password and all.
        for unparsable in [
            "https://user:S3CR/ET@proxy.corp.example:3128",
            "http://u:S3CRETPW@[fe80::1%25lo]:3128",
        ] {
            let refused = config("https://api.stripe.com", unparsable, false).unwrap_err();
            assert!(
                refused.contains("KEYLEASE_BROKER_UPSTREAM_PROXY"),
                "{refused}"
            );
            assert!(!refused.contains("S3CR"), "{refused}");
        }
    }
}
