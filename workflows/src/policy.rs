//! Timeouts and retry policy per activity, with defaults that fit a card payment.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use temporalio_common::RetryPolicy;
use temporalio_sdk::{ActivityCloseTimeouts, ActivityOptions, WorkflowCancellationToken};

use crate::contract::error_types;

/// Retry policy of one activity, as Temporal's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    /// Delay before the first retry.
    #[serde(with = "humantime_serde")]
    pub initial_interval: Duration,
    /// Growth of the delay per retry.
    pub backoff_coefficient: f64,
    /// Cap on the delay.
    #[serde(with = "humantime_serde")]
    pub maximum_interval: Duration,
    /// Attempts in all, 0 for unlimited (bounded by schedule_to_close).
    pub maximum_attempts: u32,
    /// Failure types never retried, beyond those the activities mark non-retryable themselves.
    pub non_retryable_error_types: Vec<String>,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            initial_interval: Duration::from_secs(1),
            backoff_coefficient: 2.0,
            maximum_interval: Duration::from_secs(30),
            maximum_attempts: 5,
            non_retryable_error_types: vec![
                error_types::INVALID_INPUT.to_owned(),
                error_types::CARD_DECLINED.to_owned(),
                error_types::SPEND_CAP_EXCEEDED.to_owned(),
                error_types::KEY_SCOPE_VIOLATION.to_owned(),
            ],
        }
    }
}

/// Timeouts and retries of one activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActivityPolicy {
    /// Time for all attempts together; also sets each key's TTL (× 1.2).
    #[serde(with = "humantime_serde")]
    pub schedule_to_close: Duration,
    /// Time for one attempt.
    #[serde(with = "humantime_serde")]
    pub start_to_close: Duration,
    /// Heartbeat timeout, if the activity should heartbeat.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Option<Duration>,
    /// Retries.
    pub retry: RetrySettings,
}

impl Default for ActivityPolicy {
    fn default() -> Self {
        Self {
            schedule_to_close: Duration::from_secs(5 * 60),
            start_to_close: Duration::from_secs(30),
            heartbeat: None,
            retry: RetrySettings::default(),
        }
    }
}

/// Longest duration any policy setting (or a checkout's fulfilment
/// timeout) may hold: longer ones overflow what Temporal's timers and
/// timeouts carry, and no payment step waits that long.
pub const LONGEST: Duration = Duration::from_secs(366 * 24 * 3600);

/// Shortest `start_to_close` or `schedule_to_close` a policy may set.
pub const SHORTEST_ATTEMPT: Duration = Duration::from_secs(1);

/// Shortest `compensation_backoff_cap`: a long outage must not fill the
/// checkout's history with rounds (Temporal ends a run at 51,200 events).
pub const SHORTEST_BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Refuses `value` (named `field`) past [`LONGEST`].
pub(crate) fn within_longest(field: &str, value: Duration) -> Result<(), String> {
    if value > LONGEST {
        return Err(format!("{field} must be at most 366 days"));
    }
    Ok(())
}

impl RetrySettings {
    /// Refuses settings Temporal would reject when the activity is scheduled,
    /// which would fail the workflow's task on every retry instead of the caller's request.
    fn check(&self, field: &str) -> Result<(), String> {
        if self.initial_interval.is_zero() {
            return Err(format!("{field}.retry.initial_interval must be above 0"));
        }
        within_longest(
            &format!("{field}.retry.initial_interval"),
            self.initial_interval,
        )?;
        within_longest(
            &format!("{field}.retry.maximum_interval"),
            self.maximum_interval,
        )?;
        if !self.backoff_coefficient.is_finite() || self.backoff_coefficient < 1.0 {
            return Err(format!(
                "{field}.retry.backoff_coefficient must be a number of at least 1"
            ));
        }
        if self.maximum_interval < self.initial_interval {
            return Err(format!(
                "{field}.retry.maximum_interval must be at least initial_interval"
            ));
        }
        Ok(())
    }
}

impl ActivityPolicy {
    /// Refuses a policy Temporal cannot schedule: `field` names it in the message.
    pub fn check(&self, field: &str) -> Result<(), String> {
        // No Stripe call fits in less: an attempt cut shorter can charge or
        // refund at Stripe and never see the answer.
        if self.start_to_close < SHORTEST_ATTEMPT {
            return Err(format!("{field}.start_to_close must be at least 1s"));
        }
        if self.schedule_to_close < SHORTEST_ATTEMPT {
            return Err(format!("{field}.schedule_to_close must be at least 1s"));
        }
        within_longest(
            &format!("{field}.schedule_to_close"),
            self.schedule_to_close,
        )?;
        within_longest(&format!("{field}.start_to_close"), self.start_to_close)?;
        if let Some(heartbeat) = self.heartbeat {
            within_longest(&format!("{field}.heartbeat"), heartbeat)?;
        }
        self.retry.check(field)
    }
}

impl CheckoutPolicy {
    /// Refuses a policy Temporal cannot schedule, naming the field, so that
    /// a checkout carrying it is never started.
    pub fn check(&self) -> Result<(), String> {
        self.charge.check("charge")?;
        self.refund.check("refund")?;
        self.reconcile.check("reconcile")?;
        within_longest("search_window", self.search_window)?;
        if self.compensation_backoff_cap < SHORTEST_BACKOFF_CAP {
            return Err("compensation_backoff_cap must be at least 30s".to_owned());
        }
        within_longest("compensation_backoff_cap", self.compensation_backoff_cap)?;
        if self.settle_every < SHORTEST_ATTEMPT {
            return Err("settle_every must be at least 1s".to_owned());
        }
        if self.settle_every > LONGEST_SETTLE_EVERY {
            return Err("settle_every must be at most 1 day".to_owned());
        }
        within_longest("settle_within", self.settle_within)?;
        if self.settle_within < self.settle_every {
            return Err("settle_within must be at least settle_every".to_owned());
        }
        if self.settle_within.as_secs_f64() / self.settle_every.as_secs_f64() > MOST_SETTLE_READS {
            return Err(format!(
                "settle_within must be at most {MOST_SETTLE_READS} times settle_every (each read adds to the run's history)"
            ));
        }
        Ok(())
    }
}

impl ActivityPolicy {
    /// Temporal's activity options for this policy under an explicit activity id.
    pub fn options(
        &self,
        activity_id: &str,
        cancellation: Option<WorkflowCancellationToken>,
    ) -> ActivityOptions {
        let retry = &self.retry;
        ActivityOptions::with_close_timeouts(ActivityCloseTimeouts::ScheduleAndStartToClose {
            schedule_to_close: self.schedule_to_close,
            start_to_close: self.start_to_close,
        })
        .activity_id(activity_id.to_owned())
        .maybe_heartbeat_timeout(self.heartbeat)
        .maybe_cancellation_token(cancellation)
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(retry.initial_interval)
                .backoff_coefficient(retry.backoff_coefficient)
                .maximum_interval(retry.maximum_interval)
                .maximum_attempts(retry.maximum_attempts)
                .non_retryable_error_types(retry.non_retryable_error_types.clone())
                .build(),
        )
        .build()
    }
}

/// Policies of the checkout's activities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckoutPolicy {
    /// For `charge`.
    pub charge: ActivityPolicy,
    /// For `refund`, the compensation.
    pub refund: ActivityPolicy,
    /// For `reconcile`, which looks up a charge whose outcome is unknown.
    pub reconcile: ActivityPolicy,
    /// How long Stripe's search may lag behind a charge (Stripe: "under a
    /// minute" normally); `reconcile` concludes "not charged" only after it.
    #[serde(with = "humantime_serde")]
    pub search_window: Duration,
    /// Longest wait between two rounds of the compensation (each round is
    /// `refund` with its own policy): a refund is retried until Stripe
    /// answers, however long the outage. Left out of the serialized policy
    /// at its default, so that workers older than it still read the input.
    #[serde(
        with = "humantime_serde",
        skip_serializing_if = "is_default_backoff_cap"
    )]
    pub compensation_backoff_cap: Duration,
    /// How often the checkout reads a payment still `processing` (a bank
    /// debit settles in days) after the charge's own budget: a durable
    /// timer between reads. Left out of the serialized policy at its default.
    #[serde(
        with = "humantime_serde",
        skip_serializing_if = "is_default_settle_every"
    )]
    pub settle_every: Duration,
    /// How long the checkout waits for a `processing` payment to settle
    /// before it fails `ChargeOutcomeUnknown` for an operator. Left out of
    /// the serialized policy at its default.
    #[serde(
        with = "humantime_serde",
        skip_serializing_if = "is_default_settle_within"
    )]
    pub settle_within: Duration,
}

/// [`CheckoutPolicy::settle_every`]'s default: an hour.
pub const DEFAULT_SETTLE_EVERY: Duration = Duration::from_secs(3600);

/// [`CheckoutPolicy::settle_within`]'s default: 30 days (SEPA debits take
/// up to 14 business days; ACH up to 4).
pub const DEFAULT_SETTLE_WITHIN: Duration = Duration::from_secs(30 * 24 * 3600);

/// Longest `settle_every`: a payment that settled (or a cancel) waits at
/// most this long for the checkout to see it.
pub const LONGEST_SETTLE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Most reads of a settling payment a policy may ask for
/// (`settle_within / settle_every`): each adds about a dozen events to the
/// run's history, which Temporal ends at 51,200.
pub const MOST_SETTLE_READS: f64 = 2000.0;

fn is_default_settle_every(every: &Duration) -> bool {
    *every == DEFAULT_SETTLE_EVERY
}

fn is_default_settle_within(within: &Duration) -> bool {
    *within == DEFAULT_SETTLE_WITHIN
}

/// [`CheckoutPolicy::compensation_backoff_cap`]'s default: five minutes.
pub const DEFAULT_COMPENSATION_BACKOFF_CAP: Duration = Duration::from_secs(5 * 60);

fn is_default_backoff_cap(cap: &Duration) -> bool {
    *cap == DEFAULT_COMPENSATION_BACKOFF_CAP
}

impl Default for CheckoutPolicy {
    fn default() -> Self {
        Self {
            charge: ActivityPolicy::default(),
            refund: ActivityPolicy::default(),
            reconcile: ActivityPolicy::reconcile(),
            search_window: Duration::from_secs(90),
            compensation_backoff_cap: DEFAULT_COMPENSATION_BACKOFF_CAP,
            settle_every: DEFAULT_SETTLE_EVERY,
            settle_within: DEFAULT_SETTLE_WITHIN,
        }
    }
}

impl ActivityPolicy {
    /// `reconcile`'s default: retried every few seconds for ten minutes,
    /// since finding nothing is retried until the search window has passed.
    pub fn reconcile() -> Self {
        Self {
            schedule_to_close: Duration::from_secs(10 * 60),
            start_to_close: Duration::from_secs(30),
            heartbeat: None,
            retry: RetrySettings {
                initial_interval: Duration::from_secs(2),
                backoff_coefficient: 1.5,
                maximum_interval: Duration::from_secs(10),
                maximum_attempts: 0,
                non_retryable_error_types: RetrySettings::default().non_retryable_error_types,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_settings_are_left_out_at_their_defaults_and_bounded() {
        let default = serde_json::to_value(CheckoutPolicy::default()).expect("serializes");
        assert!(default.get("settle_every").is_none());
        assert!(default.get("settle_within").is_none());
        assert_eq!(CheckoutPolicy::default().check(), Ok(()));

        let every_second_for_a_year = CheckoutPolicy {
            settle_every: Duration::from_secs(1),
            settle_within: Duration::from_secs(365 * 24 * 3600),
            ..CheckoutPolicy::default()
        };
        let refused = every_second_for_a_year.check().expect_err("too many reads");
        assert!(refused.starts_with("settle_within"), "{refused}");

        let tight = CheckoutPolicy {
            settle_every: Duration::from_millis(500),
            settle_within: Duration::from_secs(60),
            ..CheckoutPolicy::default()
        };
        assert_eq!(
            tight.check(),
            Err("settle_every must be at least 1s".to_owned())
        );
        for (every, within, refused) in [
            (
                100 * 24 * 3600,
                366 * 24 * 3600,
                "settle_every must be at most 1 day",
            ),
            (3600, 0, "settle_within must be at least settle_every"),
        ] {
            let policy = CheckoutPolicy {
                settle_every: Duration::from_secs(every),
                settle_within: Duration::from_secs(within),
                ..CheckoutPolicy::default()
            };
            assert_eq!(policy.check(), Err(refused.to_owned()));
        }

        let set = CheckoutPolicy {
            settle_every: Duration::from_secs(2),
            settle_within: Duration::from_secs(3600),
            ..CheckoutPolicy::default()
        };
        let round_trip: CheckoutPolicy =
            serde_json::from_value(serde_json::to_value(&set).expect("serializes"))
                .expect("parses");
        assert_eq!(round_trip, set);
        assert_eq!(set.check(), Ok(()));
    }
}
