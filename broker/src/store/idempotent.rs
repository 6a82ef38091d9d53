//! The `idempotent_requests` table: money requests sent with an
//! Idempotency-Key, so that a library's retry of one is known as Stripe's
//! replay of it ([`crate::routes::proxy`], rule 10).

use chrono::{DateTime, Duration, Utc};

use super::{Store, millis};
use crate::group_commit::Statement;

/// How long after a counted request its retry is taken as Stripe's replay:
/// Stripe keeps an Idempotency-Key at least 24 hours; an hour less leaves
/// room for clocks that disagree. Later, a retry is counted anew.
pub const REPLAY_WINDOW: Duration = Duration::hours(23);

impl Store {
    /// Whether a request of label `label` with `idempotency_key` and
    /// `fingerprint` repeats one already counted within [`REPLAY_WINDOW`] of `now`.
    pub async fn counted_before(
        &self,
        label: &str,
        idempotency_key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        let found = self
            .fetch_optional(
                "SELECT counted FROM idempotent_requests
                 WHERE label = ?1 AND idempotency_key = ?2 AND fingerprint = ?3 AND counted = 1 AND at > ?4",
                &[
                    label.into(),
                    idempotency_key.into(),
                    fingerprint.into(),
                    millis(now - REPLAY_WINDOW).into(),
                ],
            )
            .await?;
        Ok(found.is_some())
    }

    /// Records a money request sent with an Idempotency-Key at `at`, and
    /// whether what it may move is counted: a statement for [`Store::write`],
    /// committed with its settlement.
    pub fn record_idempotent(
        &self,
        label: &str,
        idempotency_key: &str,
        fingerprint: &str,
        counted: bool,
        at: DateTime<Utc>,
    ) -> Statement {
        self.statement(
            "INSERT INTO idempotent_requests (label, idempotency_key, fingerprint, counted, at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (label, idempotency_key) DO UPDATE SET
               fingerprint = excluded.fingerprint, counted = excluded.counted, at = excluded.at",
            vec![
                label.into(),
                idempotency_key.into(),
                fingerprint.into(),
                i64::from(counted).into(),
                millis(at).into(),
            ],
        )
    }
}
