//! Staged faults: requests matching a method and path pattern fail in a
//! chosen way. A fault hits the next N matching requests, or, for a storm,
//! a share of them for a while (`fraction`, `duration_ms`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wildmatch::WildMatch;

/// How a matching request fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer `status` without executing (e.g. 500, or 429 with `Stripe-Should-Retry`).
    Status,
    /// Wait `delay_ms`, then execute as usual.
    Delay,
    /// Execute, then close the connection with no response.
    DropAfterCommit,
    /// Close the connection with no response, executing nothing.
    DropBeforeCommit,
    /// Begin executing, fail with `status` (default 500) and commit nothing:
    /// as on Stripe, that answer is saved for the idempotency key and replayed.
    ErrorWhileExecuting,
}

/// A fault as the control API takes it (`POST /_sim/faults`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Only this method (any when absent).
    pub method: Option<String>,
    /// Path pattern; `*` matches any run of characters, `/` included.
    pub path: String,
    /// What happens.
    pub kind: FaultKind,
    /// With `status`: the status to answer (400–599); with `error_while_executing`, 500–599.
    pub status: Option<u16>,
    /// With `delay`: milliseconds to wait.
    pub delay_ms: Option<u64>,
    /// How many requests it hits (default 1; with `duration_ms`, no limit).
    pub count: Option<u32>,
    /// With `status`: the `Stripe-Should-Retry` header (default: true for 409, 429 and 5xx).
    pub should_retry: Option<bool>,
    /// With `status`: a `Retry-After` header, in seconds.
    pub retry_after: Option<u64>,
    /// The share of matching requests it hits, from 0.000001 to 1 (default 1).
    /// Deterministic, so a test run is reproducible: 0.5 hits the 1st, 3rd,
    /// 5th… matching request. A request it passes over goes on to the next
    /// staged fault that matches, if any.
    pub fraction: Option<f64>,
    /// How long it stays staged, in milliseconds from staging; then it is
    /// dropped, hits left or not (default: until `count` is used up).
    pub duration_ms: Option<u64>,
}

/// Shares are counted in millionths, so that which requests a fraction hits
/// is exact integer arithmetic, the same on every run.
const MILLIONTHS: u64 = 1_000_000;

/// A staged fault and what it has done so far.
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    /// Its id, in order of staging.
    pub id: u64,
    /// As staged.
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// Requests it will still hit; `null` when only its `duration_ms` ends it.
    pub remaining: Option<u32>,
    /// Matching requests it has seen, hit or passed over.
    pub matched: u64,
    /// Requests it has hit.
    pub hits: u64,
    /// When its `duration_ms` ends, unix milliseconds by the machine's clock.
    pub expires_at_ms: Option<i64>,
    #[serde(skip)]
    share: u64,
    #[serde(skip)]
    matcher: WildMatch,
}

impl Fault {
    /// Checks `spec` and stages it under `id` at `now_ms` (unix milliseconds).
    pub fn new(id: u64, spec: FaultSpec, now_ms: i64) -> Result<Self, String> {
        match spec.kind {
            FaultKind::Status if !spec.status.is_some_and(|s| (400..=599).contains(&s)) => {
                return Err("a status fault needs status from 400 to 599".to_owned());
            }
            FaultKind::ErrorWhileExecuting
                if !spec.status.is_none_or(|s| (500..=599).contains(&s)) =>
            {
                return Err(
                    "an error_while_executing fault needs a status from 500 to 599".to_owned(),
                );
            }
            FaultKind::Delay if spec.delay_ms.is_none() => {
                return Err("a delay fault needs delay_ms".to_owned());
            }
            _ => {}
        }
        if spec.count == Some(0) {
            return Err("count must be at least 1".to_owned());
        }
        let fraction = spec.fraction.unwrap_or(1.0);
        // Written so that NaN fails it too.
        if !(1.0 / MILLIONTHS as f64..=1.0).contains(&fraction) {
            return Err(
                "fraction must be from 0.000001 to 1: the share of matching requests to hit"
                    .to_owned(),
            );
        }
        if spec.duration_ms == Some(0) {
            return Err("duration_ms must be at least 1".to_owned());
        }
        let remaining = match (spec.count, spec.duration_ms) {
            (Some(count), _) => Some(count),
            (None, Some(_)) => None,
            (None, None) => Some(1),
        };
        let expires_at_ms = spec
            .duration_ms
            .map(|ms| now_ms.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)));
        Ok(Self {
            id,
            matcher: WildMatch::new(&spec.path),
            share: (fraction * MILLIONTHS as f64).round() as u64,
            spec,
            remaining,
            matched: 0,
            hits: 0,
            expires_at_ms,
        })
    }

    /// Whether the fault applies to `method path`.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.spec
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.matcher.matches(path)
    }

    /// Counts a matching request; whether the fault hits it. With a share
    /// of s, the m-th match is hit when ⌈m·s⌉ passes the hits so far, which
    /// spreads the hits evenly and hits the first match.
    pub fn take(&mut self) -> bool {
        self.matched += 1;
        let due = (self.matched * self.share).div_ceil(MILLIONTHS);
        if self.hits >= due {
            return false;
        }
        self.hits += 1;
        if let Some(remaining) = &mut self.remaining {
            *remaining -= 1;
        }
        true
    }

    /// Whether it has nothing left to do at `now_ms`: its hits used up or its time over.
    pub fn is_spent(&self, now_ms: i64) -> bool {
        self.remaining == Some(0) || self.expires_at_ms.is_some_and(|end| now_ms >= end)
    }

    /// How long a delay fault waits.
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.spec.delay_ms.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A 503 status fault on PaymentIntent creates with `spec`'s other fields.
    fn fault(mut spec: serde_json::Value) -> Result<Fault, String> {
        spec["path"] = json!("/v1/payment_intents");
        spec["kind"] = json!("status");
        spec["status"] = json!(503);
        Fault::new(1, serde_json::from_value(spec).expect("a fault spec"), 0)
    }

    /// Which of the next `n` matching requests the fault hits.
    fn pattern(fault: &mut Fault, n: usize) -> Vec<bool> {
        (0..n).map(|_| fault.take()).collect()
    }

    #[test]
    fn a_half_hits_every_second_request_from_the_first() {
        let mut half = fault(json!({"fraction": 0.5, "count": 3})).unwrap();
        assert_eq!(pattern(&mut half, 5), [true, false, true, false, true]);
        assert_eq!((half.matched, half.hits, half.remaining), (5, 3, Some(0)));
        assert!(half.is_spent(0), "its three hits are used up");
    }

    #[test]
    fn shares_spread_their_hits_evenly() {
        let mut third = fault(json!({"fraction": 0.333333, "count": 3})).unwrap();
        assert_eq!(
            pattern(&mut third, 7),
            [true, false, false, true, false, false, true]
        );
        let mut most = fault(json!({"fraction": 0.75, "count": 6})).unwrap();
        assert_eq!(
            pattern(&mut most, 8),
            [true, true, true, false, true, true, true, false]
        );
        let mut every = fault(json!({"count": 4})).unwrap();
        assert_eq!(pattern(&mut every, 4), [true; 4], "the default share is 1");
    }

    #[test]
    fn a_window_without_count_hits_until_it_ends() {
        let mut storm = fault(json!({"fraction": 0.5, "duration_ms": 10_000})).unwrap();
        assert_eq!(storm.remaining, None, "no limit but its time");
        assert_eq!(storm.expires_at_ms, Some(10_000));
        assert_eq!(pattern(&mut storm, 100).iter().filter(|h| **h).count(), 50);
        assert!(!storm.is_spent(9_999));
        assert!(storm.is_spent(10_000));
    }

    #[test]
    fn count_and_window_end_it_whichever_comes_first() {
        let mut both = fault(json!({"count": 2, "duration_ms": 1_000})).unwrap();
        assert!(!both.is_spent(999));
        assert!(both.is_spent(1_000), "the window ended with hits left");
        pattern(&mut both, 2);
        assert!(both.is_spent(0), "the hits ran out inside the window");
        let without = fault(json!({})).unwrap();
        assert_eq!(
            (without.remaining, without.expires_at_ms),
            (Some(1), None),
            "by default one hit, no window"
        );
    }

    #[test]
    fn senseless_shares_windows_and_counts_are_refused_by_name() {
        for (spec, named) in [
            (json!({"fraction": 0.0}), "fraction"),
            (json!({"fraction": -0.5}), "fraction"),
            (json!({"fraction": 1.5}), "fraction"),
            (json!({"fraction": 0.0000001}), "fraction"),
            (json!({"duration_ms": 0}), "duration_ms"),
            (json!({"count": 0, "duration_ms": 100}), "count"),
        ] {
            let refused = fault(spec.clone()).expect_err(&spec.to_string());
            assert!(refused.contains(named), "{spec}: {refused}");
        }
    }
}
