//! How long the broker keeps what it no longer needs ([`crate::retention`]).

use std::time::Duration;

/// A retention: rows are kept this long, or for ever (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep(pub Option<Duration>);

impl std::str::FromStr for Keep {
    type Err = String;

    /// `off`, or a duration of at least a second (`90d`, `12h`).
    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim().eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        let span = humantime::parse_duration(text.trim())
            .map_err(|err| format!("`{text}` is neither `off` nor a duration ({err})"))?;
        if span < Duration::from_secs(1) {
            return Err(format!(
                "`{text}` is shorter than a second: give a duration, or `off`"
            ));
        }
        Ok(Self(Some(span)))
    }
}

/// The retention settings, shared by the server and `keylease-broker tidy`.
#[derive(Debug, Clone, clap::Args)]
pub struct RetentionConfig {
    /// How long audit rows are kept in the database: older ones are deleted
    /// (a row of a request still in flight never is). `off` keeps them all.
    /// `--audit-log` sends every row to a log pipeline as well.
    #[arg(long, env = "KEYLEASE_BROKER_AUDIT_RETENTION", default_value = "90d")]
    pub audit_retention: Keep,

    /// How long a key is kept after it expired or was revoked, with its
    /// spend rows and holds (never before the UTC day it ended is over, nor
    /// while a request of it is in flight); object claims and idempotent
    /// requests follow it (docs/retention.md). `off` keeps them all.
    #[arg(long, env = "KEYLEASE_BROKER_KEY_RETENTION", default_value = "30d")]
    pub key_retention: Keep,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            audit_retention: Keep(Some(Duration::from_secs(90 * 86_400))),
            key_retention: Keep(Some(Duration::from_secs(30 * 86_400))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_or_a_duration_of_a_second_or_more() {
        assert_eq!("off".parse(), Ok(Keep(None)));
        assert_eq!("OFF".parse(), Ok(Keep(None)));
        assert_eq!(
            "90d".parse(),
            Ok(Keep(Some(Duration::from_secs(90 * 86_400))))
        );
        assert_eq!("1s".parse(), Ok(Keep(Some(Duration::from_secs(1)))));
        for bad in ["", "0s", "500ms", "never", "-1d", "30"] {
            assert!(bad.parse::<Keep>().is_err(), "{bad}");
        }
    }
}
