//! Polling with a deadline, instead of a fixed sleep.

use std::future::Future;
use std::time::Duration;

/// How often [`eventually`] asks again.
const POLL: Duration = Duration::from_millis(50);

/// Polls `check` until it returns `Some`, and returns that; panics naming
/// `what` once `deadline` has passed. A condition without a value returns
/// `cond.then_some(())`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    let mut poll = tokio::time::interval(POLL);
    loop {
        poll.tick().await;
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{what}: not within {deadline:?}"
        );
    }
}
