//! What the payment activities count: keys issued and revoked, revocations
//! that failed, how long issue and revoke take, and each attempt's outcome.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use temporalio_sdk::activities::ActivityError;

/// Labels of an attempt's outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `charge` or `refund`.
    pub activity: String,
    /// `succeeded`, `cancelled`, or the failure type (`CardDeclined`, …).
    pub outcome: String,
}

/// The activities' metrics; register them once with [`ActivityMetrics::register`].
#[derive(Debug)]
pub struct ActivityMetrics {
    /// Keys issued.
    pub keys_issued: Counter,
    /// Keys revoked.
    pub keys_revoked: Counter,
    /// Revocations that failed within their budget (the TTL covers those keys).
    pub revocation_failures: Counter,
    /// Seconds per key issue call.
    pub issue_seconds: Histogram,
    /// Seconds per revocation, retries included.
    pub revoke_seconds: Histogram,
    /// Seconds an attempt spent on its key: the issue call plus the revocation
    /// (attempts whose key was revoked in band; not those cut short).
    pub lease_seconds: Histogram,
    /// Attempts by activity and outcome.
    pub outcomes: Family<OutcomeLabels, Counter>,
    /// Refund attempts of a compensation that began longer ago than the
    /// overdue threshold: a checkout holding money it should have given back.
    pub refunds_overdue: Counter,
    /// Order checks whose list Stripe could not give to its end (a busy
    /// account): the order's recent PaymentIntents were looked for with
    /// Stripe's search alone.
    pub order_checks_on_search: Counter,
}

impl Default for ActivityMetrics {
    fn default() -> Self {
        // 50 µs to about 13 s, each bucket √2 wider than the last: fine
        // enough to tell a 0.5 ms lease from a 1 ms one.
        let buckets = || exponential_buckets(0.000_05, std::f64::consts::SQRT_2, 37);
        Self {
            keys_issued: Counter::default(),
            keys_revoked: Counter::default(),
            revocation_failures: Counter::default(),
            issue_seconds: Histogram::new(buckets()),
            revoke_seconds: Histogram::new(buckets()),
            lease_seconds: Histogram::new(buckets()),
            outcomes: Family::default(),
            refunds_overdue: Counter::default(),
            order_checks_on_search: Counter::default(),
        }
    }
}

impl ActivityMetrics {
    /// Adds these metrics to `registry` under `keylease_…` names.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "keylease_keys_issued",
            "Keys issued, one per attempt",
            self.keys_issued.clone(),
        );
        registry.register(
            "keylease_keys_revoked",
            "Keys revoked when their attempt ended",
            self.keys_revoked.clone(),
        );
        registry.register(
            "keylease_key_revocation_failures",
            "Revocations that failed within their budget; those keys expire by TTL",
            self.revocation_failures.clone(),
        );
        registry.register(
            "keylease_key_issue_seconds",
            "Time to issue a key",
            self.issue_seconds.clone(),
        );
        registry.register(
            "keylease_key_revoke_seconds",
            "Time to revoke a key, retries included",
            self.revoke_seconds.clone(),
        );
        registry.register(
            "keylease_key_lease_seconds",
            "Time an attempt spent on its key: issue plus revoke",
            self.lease_seconds.clone(),
        );
        registry.register(
            "keylease_activity_outcomes",
            "Attempts by activity and outcome",
            self.outcomes.clone(),
        );
        registry.register(
            "keylease_refund_attempts_overdue",
            "Refund attempts of a checkout compensating for longer than KEYLEASE_REFUND_OVERDUE_AFTER: alert on any increase",
            self.refunds_overdue.clone(),
        );
        registry.register(
            "keylease_order_checks_on_search",
            "Charges whose order check could not read Stripe's list to its end (a busy account, no customer) and relied on Stripe's search for the order's recent PaymentIntents",
            self.order_checks_on_search.clone(),
        );
    }

    /// Counts one attempt of `activity` that ended with `result`.
    pub fn record_outcome<T>(&self, activity: &str, result: &Result<T, ActivityError>) {
        let outcome = match result {
            Ok(_) => "succeeded".to_owned(),
            Err(ActivityError::Application(failure)) => {
                failure.type_name().unwrap_or("Unknown").to_owned()
            }
            Err(ActivityError::Cancelled { .. }) => "cancelled".to_owned(),
            Err(_) => "other".to_owned(),
        };
        self.outcomes
            .get_or_create(&OutcomeLabels {
                activity: activity.to_owned(),
                outcome,
            })
            .inc();
    }
}
