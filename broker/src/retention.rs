//! Retention: the broker deletes what no rule needs any more, in the
//! background every `--tidy-interval`, or on demand (`keylease-broker tidy`).
//!
//! A round runs batches of at most [`crate::store::tidy::BATCH`] rows per
//! table until one finds less than a full batch, pausing after each for
//! [`PAUSE_FACTOR`] times as long as it took, so that tidy holds the
//! SQLite writer a tenth of the time at most and requests' commits queue
//! behind at most one small batch; a round still running after a tidy
//! interval pauses only as long as each batch took, so that retention keeps
//! up with a load that writes faster than a gentle round deletes. What each rule keeps is in
//! [`crate::store::tidy`] and docs/retention.md.

use std::time::{Duration, Instant};

use chrono::Utc;

use crate::config::RetentionConfig;
use crate::metrics::{BrokerMetrics, TableLabels};
use crate::state::AppState;
use crate::store::Store;
use crate::store::tidy::{Cutoffs, Tidied};

/// After a batch, tidy waits this many times as long as the batch took.
pub const PAUSE_FACTOR: u32 = 9;

/// Free SQLite pages given back per write.
const VACUUM_PAGES: i64 = 256;

/// What to keep, and how long keys may live.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Audit rows: `None` keeps them all.
    pub audit: Option<Duration>,
    /// Keys after they ended: `None` keeps them all.
    pub keys: Option<Duration>,
    /// The longest TTL a key may have (`--max-ttl`): claims outlive the last
    /// key of their label by at least this.
    pub max_ttl: Duration,
}

impl Retention {
    /// The settings of `config`, for keys living at most `max_ttl`.
    pub fn new(config: &RetentionConfig, max_ttl: Duration) -> Self {
        Self {
            audit: config.audit_retention.0,
            keys: config.key_retention.0,
            max_ttl,
        }
    }

    /// Its cutoffs now.
    pub fn cutoffs(&self) -> Cutoffs {
        Cutoffs::at(Utc::now(), self.audit, self.keys, self.max_ttl)
    }
}

/// How tidy pauses between batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Beside requests: after each batch, [`PAUSE_FACTOR`] times as long as
    /// it took; once a round has run this long (the tidy interval: rows
    /// arrive faster than a gentle round deletes them), as long as it took,
    /// so that retention keeps up with any steady load.
    Gentle(Duration),
    /// Alone (the command): no pause.
    Full,
}

/// One round: batches until nothing past retention is left, then the freed
/// SQLite pages given back. What it deleted; each batch is also counted in
/// `metrics`, when given, as it is deleted.
pub async fn tidy(
    store: &Store,
    retention: &Retention,
    pace: Pace,
    metrics: Option<&BrokerMetrics>,
) -> Result<Tidied, sqlx::Error> {
    let round = Instant::now();
    let mut total = Tidied::default();
    loop {
        let started = Instant::now();
        let batch = store.tidy_batch(&retention.cutoffs()).await?;
        if let Some(metrics) = metrics {
            count_deleted(metrics, &batch);
        }
        total.add(&batch);
        // Keys deleted free their claims for the next batch.
        if !batch.full() && batch.keys == 0 {
            break;
        }
        pause(pace, round, started).await;
    }
    let mut free = u64::MAX;
    loop {
        let started = Instant::now();
        let left = store.vacuum_some(VACUUM_PAGES).await?;
        // Not an incremental file, or nothing more given back.
        if left == 0 || left >= free {
            break;
        }
        free = left;
        pause(pace, round, started).await;
    }
    Ok(total)
}

/// The pause after a batch started at `batch`, in a round started at `round`.
async fn pause(pace: Pace, round: Instant, batch: Instant) {
    if let Pace::Gentle(catch_up_after) = pace {
        let factor = if round.elapsed() < catch_up_after {
            PAUSE_FACTOR
        } else {
            1
        };
        tokio::time::sleep(batch.elapsed() * factor).await;
    }
}

/// Tidies every `interval`, the first time one interval after the start (a
/// starting broker has its requests to serve first), counting what it
/// deleted and what each table holds.
pub async fn every(state: AppState, retention: Retention, interval: Duration) {
    let store = state.store();
    let metrics = state.metrics();
    loop {
        tokio::time::sleep(interval).await;
        match tidy(store, &retention, Pace::Gentle(interval), Some(metrics)).await {
            Ok(done) => {
                if done.deleted() > 0 || done.lost > 0 {
                    tracing::info!(
                        audit = done.audit,
                        keys = done.keys,
                        spend = done.spend,
                        objects = done.objects,
                        pairs = done.pairs,
                        idempotent_requests = done.idempotent_requests,
                        role_spend = done.role_spend,
                        marked_lost = done.lost,
                        "tidy deleted rows past retention"
                    );
                }
            }
            Err(err) => tracing::warn!(error = %err, "tidy failed; trying again next interval"),
        }
        match store.table_rows().await {
            Ok(tables) => {
                for (table, rows) in tables {
                    let rows = i64::try_from(rows).unwrap_or(i64::MAX);
                    metrics
                        .table_rows
                        .get_or_create(&TableLabels { table })
                        .set(rows);
                }
            }
            Err(err) => tracing::warn!(error = %err, "could not count the tables' rows"),
        }
    }
}

fn count_deleted(metrics: &BrokerMetrics, done: &Tidied) {
    for (table, rows) in [
        ("audit", done.audit),
        ("keys", done.keys),
        ("spend", done.spend),
        ("objects", done.objects),
        ("object_pairs", done.pairs),
        ("idempotent_requests", done.idempotent_requests),
        ("role_spend", done.role_spend),
    ] {
        metrics
            .rows_deleted
            .get_or_create(&TableLabels { table })
            .inc_by(rows);
    }
}
