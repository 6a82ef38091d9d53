//! Staged faults: the next N requests matching a method and path pattern
//! fail in a chosen way.

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
    /// How many requests it applies to (default 1).
    pub count: Option<u32>,
    /// With `status`: the `Stripe-Should-Retry` header (default: true for 409, 429 and 5xx).
    pub should_retry: Option<bool>,
    /// With `status`: a `Retry-After` header, in seconds.
    pub retry_after: Option<u64>,
}

/// A staged fault and how many more requests it will hit.
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    /// Its id, in order of staging.
    pub id: u64,
    /// As staged.
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// Requests it will still apply to.
    pub remaining: u32,
    #[serde(skip)]
    matcher: WildMatch,
}

impl Fault {
    /// Checks `spec` and stages it under `id`.
    pub fn new(id: u64, spec: FaultSpec) -> Result<Self, String> {
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
        let remaining = spec.count.unwrap_or(1);
        if remaining == 0 {
            return Err("count must be at least 1".to_owned());
        }
        Ok(Self {
            id,
            matcher: WildMatch::new(&spec.path),
            spec,
            remaining,
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

    /// How long a delay fault waits.
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.spec.delay_ms.unwrap_or(0))
    }
}
