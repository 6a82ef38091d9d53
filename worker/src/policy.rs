//! Retry-policy tuning: the policy file with flag overrides, and what a
//! policy means in time (`keylease-worker policy explain`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use keylease_activities::scope::key_ttl;
use keylease_workflows::{ActivityPolicy, CheckoutPolicy};

use crate::error::WorkerError;

/// Most attempts listed for a policy that retries without end.
const LISTED_ATTEMPTS: usize = 10;

/// Where the checkout's activity policy comes from.
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyArgs {
    /// TOML file with `[charge]` and `[refund]` policies (see docs/checkout-workflow.md); flags below override it.
    #[arg(long, env = "KEYLEASE_POLICY_FILE")]
    pub policy_file: Option<PathBuf>,
    /// Overrides `charge.schedule_to_close`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub charge_schedule_to_close: Option<Duration>,
    /// Overrides `charge.start_to_close`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub charge_start_to_close: Option<Duration>,
    /// Overrides `charge.retry.maximum_attempts` (0: unlimited).
    #[arg(long)]
    pub charge_max_attempts: Option<u32>,
    /// Overrides `refund.schedule_to_close`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub refund_schedule_to_close: Option<Duration>,
    /// Overrides `refund.start_to_close`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub refund_start_to_close: Option<Duration>,
    /// Overrides `refund.retry.maximum_attempts` (0: unlimited).
    #[arg(long)]
    pub refund_max_attempts: Option<u32>,
}

impl PolicyArgs {
    /// The file's policy (defaults without one), with the flags applied.
    pub fn load(&self) -> Result<CheckoutPolicy, WorkerError> {
        let mut policy = match &self.policy_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|err| {
                    WorkerError::Config(format!(
                        "cannot read policy file {}: {err}",
                        path.display()
                    ))
                })?;
                parse_policy(&text).map_err(|err| {
                    WorkerError::Config(format!("policy file {}: {err}", path.display()))
                })?
            }
            None => CheckoutPolicy::default(),
        };
        override_with(
            &mut policy.charge,
            self.charge_schedule_to_close,
            self.charge_start_to_close,
            self.charge_max_attempts,
        );
        override_with(
            &mut policy.refund,
            self.refund_schedule_to_close,
            self.refund_start_to_close,
            self.refund_max_attempts,
        );
        policy
            .check()
            .map_err(|why| WorkerError::Config(format!("policy: {why}")))?;
        Ok(policy)
    }
}

fn override_with(
    policy: &mut ActivityPolicy,
    schedule_to_close: Option<Duration>,
    start_to_close: Option<Duration>,
    attempts: Option<u32>,
) {
    if let Some(value) = schedule_to_close {
        policy.schedule_to_close = value;
    }
    if let Some(value) = start_to_close {
        policy.start_to_close = value;
    }
    if let Some(value) = attempts {
        policy.retry.maximum_attempts = value;
    }
}

/// Parses a policy file; fields left out keep their defaults, unknown ones are refused.
pub fn parse_policy(text: &str) -> Result<CheckoutPolicy, toml::de::Error> {
    toml::from_str(text)
}

/// When one attempt can start, measured from when the activity was scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptWindow {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// If every earlier attempt failed at once.
    pub earliest: Duration,
    /// If every earlier attempt ran until start_to_close.
    pub latest: Duration,
}

/// What an activity policy means in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// `charge` or `refund`.
    pub activity: &'static str,
    /// The attempts that can start.
    pub attempts: Vec<AttemptWindow>,
    /// Whether attempts go on past those listed.
    pub unbounded: bool,
    /// Each attempt's key TTL in seconds.
    pub ttl_seconds: u64,
    /// The longest Temporal can take to give up, if it ever does.
    pub gives_up_after: Option<Duration>,
    /// Settings that do not do what they seem to.
    pub warnings: Vec<String>,
}

/// Temporal's delay before retry `n + 1` (after attempt `n`).
fn backoff(policy: &ActivityPolicy, attempt: u32) -> Duration {
    let retry = &policy.retry;
    let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
    let grown = retry.initial_interval.as_secs_f64() * retry.backoff_coefficient.powi(exponent);
    Duration::from_secs_f64(grown.min(retry.maximum_interval.as_secs_f64()))
}

/// Lays out `policy`'s attempts as Temporal schedules them, assuming a worker
/// picks up each attempt as soon as it is due.
pub fn explain(
    activity: &'static str,
    policy: &ActivityPolicy,
    broker_max_ttl: Duration,
) -> Explanation {
    let schedule_to_close =
        (!policy.schedule_to_close.is_zero()).then_some(policy.schedule_to_close);
    let max_attempts = policy.retry.maximum_attempts;
    let mut warnings = Vec::new();
    let mut attempts = Vec::new();
    let (mut earliest, mut latest) = (Duration::ZERO, Duration::ZERO);
    let mut unbounded = false;
    for attempt in 1.. {
        // Temporal starts no retry that would begin after schedule_to_close.
        if schedule_to_close.is_some_and(|limit| attempt > 1 && earliest >= limit) {
            break;
        }
        attempts.push(AttemptWindow {
            attempt,
            earliest,
            latest,
        });
        if max_attempts != 0 && attempt >= max_attempts {
            break;
        }
        if schedule_to_close.is_none() && max_attempts == 0 && attempts.len() >= LISTED_ATTEMPTS {
            unbounded = true;
            break;
        }
        let delay = backoff(policy, attempt);
        earliest += delay;
        latest += policy.start_to_close + delay;
    }

    let last = attempts.last().copied().unwrap_or(AttemptWindow {
        attempt: 1,
        earliest: Duration::ZERO,
        latest: Duration::ZERO,
    });
    let gives_up_after = match schedule_to_close {
        Some(limit) => Some(limit.min(last.latest + policy.start_to_close)),
        None if unbounded => None,
        None => Some(last.latest + policy.start_to_close),
    };
    let ttl = key_ttl(
        schedule_to_close,
        Some(policy.start_to_close),
        broker_max_ttl,
    );

    if let Some(limit) = schedule_to_close {
        if policy.start_to_close > limit {
            warnings.push(format!(
                "start_to_close ({}) is above schedule_to_close ({}): an attempt can be cut short by schedule_to_close",
                human(policy.start_to_close),
                human(limit)
            ));
        }
        if max_attempts != 0 && (attempts.len() as u32) < max_attempts {
            warnings.push(format!(
                "the retry schedule does not fit: only {} of {max_attempts} attempts can start within schedule_to_close ({})",
                attempts.len(),
                human(limit)
            ));
        }
        let slow_fit = attempts.iter().filter(|a| a.latest < limit).count();
        if slow_fit < attempts.len() {
            warnings.push(format!(
                "if attempts run until start_to_close, only {slow_fit} of them start within schedule_to_close ({})",
                human(limit)
            ));
        }
        if ttl.clamped {
            warnings.push(format!(
                "the key TTL (schedule_to_close x 1.2) is above the broker's maximum ({}s): keys are cut to it and can expire before Temporal gives up",
                broker_max_ttl.as_secs()
            ));
        }
    } else if max_attempts == 0 {
        warnings.push(
            "unlimited attempts and no schedule_to_close: Temporal retries forever".to_owned(),
        );
    }
    if schedule_to_close.is_none() {
        warnings.push(
            "no schedule_to_close: each key lives for its attempt's deadline x 1.2, not for the activity's whole schedule".to_owned(),
        );
    }
    Explanation {
        activity,
        attempts,
        unbounded,
        ttl_seconds: ttl.seconds,
        gives_up_after,
        warnings,
    }
}

/// `90s`, `2m15s`, `1h`: whole seconds, humantime style, no spaces.
fn human(duration: Duration) -> String {
    if duration.subsec_millis() != 0 {
        return format!("{}ms", duration.as_millis());
    }
    humantime::format_duration(Duration::from_secs(duration.as_secs()))
        .to_string()
        .replace(' ', "")
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: key TTL {}s per attempt",
            self.activity, self.ttl_seconds
        )?;
        writeln!(f, "  attempt  earliest start  latest start")?;
        for window in &self.attempts {
            writeln!(
                f,
                "  {:<7}  {:<14}  {}",
                window.attempt,
                human(window.earliest),
                human(window.latest)
            )?;
        }
        if self.unbounded {
            writeln!(f, "  …        (attempts go on without end)")?;
        }
        match self.gives_up_after {
            Some(after) => writeln!(
                f,
                "  Temporal gives up at the latest {} after scheduling",
                human(after)
            )?,
            None => writeln!(f, "  Temporal never gives up")?,
        }
        if self.warnings.is_empty() {
            writeln!(f, "  no warnings")
        } else {
            self.warnings
                .iter()
                .try_for_each(|w| writeln!(f, "  warning: {w}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use keylease_workflows::RetrySettings;

    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn windows(explanation: &Explanation) -> Vec<(u64, u64)> {
        explanation
            .attempts
            .iter()
            .map(|w| (w.earliest.as_secs(), w.latest.as_secs()))
            .collect()
    }

    #[test]
    fn the_default_policy_by_hand() {
        // Backoffs 1, 2, 4, 8 s; attempts of up to 30 s.
        // earliest: 0, 1, 1+2=3, 3+4=7, 7+8=15
        // latest:   0, 30+1=31, 31+30+2=63, 63+30+4=97, 97+30+8=135
        // gives up: min(300, 135 + 30) = 165 s.
        let explained = explain("charge", &ActivityPolicy::default(), DAY);
        assert_eq!(
            windows(&explained),
            [(0, 0), (1, 31), (3, 63), (7, 97), (15, 135)]
        );
        assert_eq!(explained.gives_up_after, Some(secs(165)));
        assert_eq!(explained.ttl_seconds, 360);
        assert!(explained.warnings.is_empty(), "{:?}", explained.warnings);
        let text = explained.to_string();
        assert!(
            text.contains("  5        15s             2m15s\n"),
            "{text}"
        );
        assert!(
            text.contains("gives up at the latest 2m45s after scheduling"),
            "{text}"
        );
    }

    #[test]
    fn a_schedule_that_cannot_fit() {
        // schedule_to_close 20 s, attempts of up to 10 s, backoff 4, 8, 10 (capped), 10 s.
        // earliest: 0, 4, 12, 22 → the 4th would start after 20 s: 3 attempts.
        // latest:   0, 14, 32 → only 2 start within 20 s if attempts run long.
        let policy = ActivityPolicy {
            schedule_to_close: secs(20),
            start_to_close: secs(10),
            heartbeat: None,
            retry: RetrySettings {
                initial_interval: secs(4),
                backoff_coefficient: 2.0,
                maximum_interval: secs(10),
                maximum_attempts: 6,
                ..RetrySettings::default()
            },
        };
        let explained = explain("refund", &policy, DAY);
        assert_eq!(windows(&explained), [(0, 0), (4, 14), (12, 32)]);
        assert_eq!(explained.gives_up_after, Some(secs(20)));
        assert_eq!(explained.ttl_seconds, 24);
        assert_eq!(explained.warnings.len(), 2, "{:?}", explained.warnings);
        assert!(explained.warnings[0].contains("only 3 of 6 attempts"));
        assert!(explained.warnings[1].contains("only 2 of them"));
    }

    #[test]
    fn start_to_close_above_schedule_to_close_and_a_ttl_above_the_broker_maximum() {
        let policy = ActivityPolicy {
            schedule_to_close: secs(3600),
            start_to_close: secs(7200),
            retry: RetrySettings {
                maximum_attempts: 1,
                ..RetrySettings::default()
            },
            ..ActivityPolicy::default()
        };
        let explained = explain("charge", &policy, secs(3600));
        assert_eq!(explained.ttl_seconds, 3600, "cut to the broker's maximum");
        assert_eq!(explained.gives_up_after, Some(secs(3600)));
        assert!(
            explained
                .warnings
                .iter()
                .any(|w| w.contains("start_to_close (2h) is above schedule_to_close (1h)"))
        );
        assert!(
            explained
                .warnings
                .iter()
                .any(|w| w.contains("above the broker's maximum (3600s)"))
        );
    }

    #[test]
    fn unlimited_attempts_without_schedule_to_close_retry_forever() {
        let policy = ActivityPolicy {
            schedule_to_close: Duration::ZERO,
            retry: RetrySettings {
                maximum_attempts: 0,
                ..RetrySettings::default()
            },
            ..ActivityPolicy::default()
        };
        let explained = explain("charge", &policy, DAY);
        assert!(explained.unbounded);
        assert_eq!(explained.attempts.len(), LISTED_ATTEMPTS);
        assert_eq!(explained.gives_up_after, None);
        assert_eq!(
            explained.ttl_seconds, 36,
            "the attempt's deadline (start_to_close 30 s) x 1.2"
        );
        assert!(
            explained
                .warnings
                .iter()
                .any(|w| w.contains("retries forever"))
        );
        assert!(explained.to_string().contains("Temporal never gives up"));
    }

    #[test]
    fn files_and_flags_make_the_policy() {
        let policy = parse_policy(
            "[charge]\nschedule_to_close = \"2m\"\n[charge.retry]\nmaximum_attempts = 3\n[refund]\nheartbeat = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(policy.charge.schedule_to_close, secs(120));
        assert_eq!(policy.charge.retry.maximum_attempts, 3);
        assert_eq!(
            policy.charge.start_to_close,
            secs(30),
            "unset fields keep their defaults"
        );
        assert_eq!(policy.refund.heartbeat, Some(secs(5)));
        assert!(
            parse_policy("[charge]\nschedule_to_clos = \"2m\"\n").is_err(),
            "a misspelt field is refused"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "[charge]\nschedule_to_close = \"2m\"\n").unwrap();
        let args = PolicyArgs {
            policy_file: Some(path),
            charge_max_attempts: Some(2),
            refund_start_to_close: Some(secs(5)),
            ..PolicyArgs::default()
        };
        let loaded = args.load().unwrap();
        assert_eq!(loaded.charge.schedule_to_close, secs(120));
        assert_eq!(loaded.charge.retry.maximum_attempts, 2);
        assert_eq!(loaded.refund.start_to_close, secs(5));
        let missing = PolicyArgs {
            policy_file: Some("/nonexistent/policy.toml".into()),
            ..PolicyArgs::default()
        };
        assert!(matches!(missing.load(), Err(WorkerError::Config(_))));
    }
}
