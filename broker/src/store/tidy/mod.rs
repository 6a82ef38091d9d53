//! Retention: the rows past their retention, counted and deleted in small
//! batches ([`crate::retention`] runs them).
//!
//! Every rule reads through an index on the age it is about (`audit.at`,
//! `keys.expires_at` and `keys.revoked_at`, `objects.created_at`, …), so a
//! batch costs what it deletes, not what the table holds. What a live key,
//! an open spend period or a request still in flight needs is never
//! selected: see [`KEY_OVER`].

mod cutoffs;

use chrono::{DateTime, Duration, Utc};

pub use cutoffs::{Cutoffs, Tidied};

use super::{Backend, Store, millis};
use crate::group_commit::{Arg, Statement};

/// Most rows of one table one batch deletes (keys with their spend and
/// holds, claims, …).
pub const BATCH: i64 = 50;

/// Most audit rows one batch deletes: the table that grows fastest, each
/// row a few microseconds of the writer's time.
pub const AUDIT_BATCH: i64 = 250;

/// How long a money request's row may stay `in_flight` before tidy marks it
/// `in_flight_lost`: its broker stopped without answering (the request may
/// have reached Stripe). Far beyond any request's life: the upstream
/// timeout is at most 10 minutes ([`crate::config`]).
pub const LOST_AFTER: Duration = Duration::hours(1);

/// The code of a money request's row while it is in flight.
pub const IN_FLIGHT: &str = "in_flight";

/// The code tidy gives a row that stayed [`IN_FLIGHT`] past [`LOST_AFTER`].
pub const IN_FLIGHT_LOST: &str = "in_flight_lost";

/// Whether key `k` is over for good, with `?1` the key cutoff: it ended
/// (revoked or expired) before the cutoff — which is never later than the
/// start of today (UTC), so neither its own spend period nor its role's
/// day is still open — and no money request of it is still in flight
/// (its reservation unsettled). A key that is over never comes back:
/// nothing revives a revoked or expired key, and a request reserves only
/// on a live one.
///
/// Never NULL (a live key's `revoked_at` is), so `NOT` of it is "still needed".
pub const KEY_OVER: &str = "(COALESCE(k.revoked_at, k.expires_at) < ?1 OR k.expires_at < ?1)
    AND NOT EXISTS (SELECT 1 FROM audit a WHERE a.status = 0 AND a.key_id = k.id AND a.code = 'in_flight')";

/// Keys over, as [`KEY_OVER`], found through the indexes on `revoked_at` and `expires_at`.
const KEYS_OVER: &str = "FROM keys k WHERE (k.revoked_at < ?1 OR k.expires_at < ?1) AND {KEY_OVER}";

/// Rows past which a PostgreSQL table's row metric is its planner estimate.
const ESTIMATED_PAST: u64 = 100_000;

/// The tables whose rows the broker counts for `/metrics`.
pub const TABLES: [&str; 10] = [
    "audit",
    "keys",
    "spend",
    "objects",
    "object_pairs",
    "pending_pairs",
    "unowned_pairs",
    "unrecorded_creates",
    "idempotent_requests",
    "role_spend",
];

/// The tables of metadata pairs ([`crate::store::pairs`]), and each one's key.
const PAIR_TABLES: [&str; 4] = [
    "object_pairs",
    "pending_pairs",
    "unowned_pairs",
    "unrecorded_creates",
];
const PAIR_KEYS: [&str; 4] = [
    "vendor, account, kind, name, value, object_id",
    "request_id, name",
    "id",
    "id",
];

/// Audit rows past the cutoff `?1`, never one still in flight.
const AUDIT_PAST: &str = "FROM audit WHERE at < ?1 AND NOT (status = 0 AND code = 'in_flight')";

/// Rows still in flight since before `?1`.
const IN_FLIGHT_SINCE: &str = "FROM audit WHERE status = 0 AND code = 'in_flight' AND at < ?1";

/// An object row (`objects`) no key row names: neither a key of its label
/// nor the key its hold was reserved by is left. One index probe each.
const CLAIM_FREE: &str = "NOT EXISTS (SELECT 1 FROM keys k WHERE k.namespace = objects.label)
    AND NOT EXISTS (SELECT 1 FROM keys k WHERE k.id = objects.held_key)";

/// Object claims made before `?2` that no key left needs, `?1` the key
/// cutoff: those [`CLAIM_FREE`] finds once the keys over are deleted (for
/// the dry run's count, which deletes no key first).
fn claims_past() -> String {
    format!(
        "FROM objects o WHERE o.created_at < ?2
           AND NOT EXISTS (SELECT 1 FROM keys k WHERE k.namespace = o.label AND NOT ({KEY_OVER}))
           AND NOT EXISTS (SELECT 1 FROM keys k WHERE k.id = o.held_key AND NOT ({KEY_OVER}))"
    )
}

/// No money request of the key `column` names is in flight.
fn none_in_flight(column: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM audit a WHERE a.status = 0 AND a.key_id = {column} AND a.code = 'in_flight')"
    )
}

/// [`KEYS_OVER`] with [`KEY_OVER`] in it.
fn keys_over() -> String {
    KEYS_OVER.replace("{KEY_OVER}", KEY_OVER)
}

/// `?first`, `?first+1`, … for `count` binds.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("?{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// How many rows each rule would delete at `cutoffs`, deleting nothing.
    pub async fn count_tidy(&self, cutoffs: &Cutoffs) -> Result<Tidied, sqlx::Error> {
        let lost = self
            .count(
                &format!("SELECT COUNT(*) {IN_FLIGHT_SINCE}"),
                &[millis(cutoffs.lost).into()],
            )
            .await?;
        let mut counted = Tidied {
            lost,
            ..Tidied::default()
        };
        if let Some(audit) = cutoffs.audit {
            counted.audit = self
                .count(
                    &format!("SELECT COUNT(*) {AUDIT_PAST}"),
                    &[millis(audit).into()],
                )
                .await?;
        }
        if let (Some(keys), Some(claims)) = (cutoffs.keys, cutoffs.claims) {
            let over = keys_over();
            counted.keys = self
                .count(&format!("SELECT COUNT(*) {over}"), &[millis(keys).into()])
                .await?;
            counted.spend = self
                .count(
                    &format!("SELECT COUNT(*) FROM spend WHERE key_id IN (SELECT k.id {over})"),
                    &[millis(keys).into()],
                )
                .await?;
            counted.holds = self
                .count(
                    &format!("SELECT COUNT(*) FROM objects WHERE held_key IN (SELECT k.id {over})"),
                    &[millis(keys).into()],
                )
                .await?;
            counted.objects = self
                .count(
                    &format!("SELECT COUNT(*) {}", claims_past()),
                    &[millis(keys).into(), millis(claims).into()],
                )
                .await?;
        }
        if let Some(pairs) = cutoffs.pairs {
            for table in PAIR_TABLES {
                counted.pairs += self
                    .count(
                        &format!("SELECT COUNT(*) FROM {table} WHERE created_at < ?1"),
                        &[millis(pairs).into()],
                    )
                    .await?;
            }
        }
        if let Some(idempotent) = cutoffs.idempotent {
            counted.idempotent_requests = self
                .count(
                    "SELECT COUNT(*) FROM idempotent_requests WHERE at < ?1",
                    &[millis(idempotent).into()],
                )
                .await?;
        }
        if let Some(day) = &cutoffs.role_day {
            counted.role_spend = self
                .count(
                    "SELECT COUNT(*) FROM role_spend WHERE period < ?1",
                    &[day.as_str().into()],
                )
                .await?;
        }
        Ok(counted)
    }

    /// One batch of every rule at `cutoffs`: at most [`BATCH`] rows of each
    /// table ([`AUDIT_BATCH`] audit rows), all in one write, so a batch
    /// costs the writer one commit.
    pub async fn tidy_batch(&self, cutoffs: &Cutoffs) -> Result<Tidied, sqlx::Error> {
        type Slot = fn(&mut Tidied) -> &mut u64;
        let mut unit: Vec<(Slot, Statement)> = vec![(
            |t| &mut t.lost,
            self.statement(
                &format!(
                    "UPDATE audit SET code = '{IN_FLIGHT_LOST}'
                     WHERE id IN (SELECT id {IN_FLIGHT_SINCE} LIMIT ?2)"
                ),
                vec![millis(cutoffs.lost).into(), BATCH.into()],
            ),
        )];
        if let Some(audit) = cutoffs.audit {
            unit.push((
                |t| &mut t.audit,
                self.statement(
                    &format!("DELETE FROM audit WHERE id IN (SELECT id {AUDIT_PAST} LIMIT ?2)"),
                    vec![millis(audit).into(), AUDIT_BATCH.into()],
                ),
            ));
        }
        if let (Some(keys), Some(claims)) = (cutoffs.keys, cutoffs.claims) {
            let ids = self.keys_over(keys).await?;
            if !ids.is_empty() {
                let list = placeholders(1, ids.len());
                let args: Vec<Arg> = ids.iter().map(|id| id.as_str().into()).collect();
                // Checked again in the write: a reservation read the key live
                // just before it ended may have committed since.
                let holds = format!(
                    "UPDATE objects SET held_key = NULL, held_period = NULL, held_micros = 0
                     WHERE held_key IN ({list}) AND {}",
                    none_in_flight("objects.held_key")
                );
                unit.push((|t| &mut t.holds, self.statement(&holds, args.clone())));
                let spend = format!(
                    "DELETE FROM spend WHERE key_id IN ({list}) AND {}",
                    none_in_flight("spend.key_id")
                );
                unit.push((|t| &mut t.spend, self.statement(&spend, args.clone())));
                let keys = format!(
                    "DELETE FROM keys WHERE id IN ({list}) AND {}",
                    none_in_flight("keys.id")
                );
                unit.push((|t| &mut t.keys, self.statement(&keys, args)));
            }
            // Claims whose label has no key row left (the key rule above
            // deletes keys first; a later batch of the round takes their
            // claims), read beside the writer and checked again in the write:
            // a key of the label issued since (a retry) keeps them.
            let mut by_vendor: std::collections::BTreeMap<String, Vec<String>> = Default::default();
            for (vendor, id) in self.claims_free(claims).await? {
                by_vendor.entry(vendor).or_default().push(id);
            }
            for (vendor, ids) in by_vendor {
                let sql = format!(
                    "DELETE FROM objects WHERE vendor = ?1 AND object_id IN ({}) AND {CLAIM_FREE}",
                    placeholders(2, ids.len())
                );
                let mut args: Vec<Arg> = vec![vendor.as_str().into()];
                args.extend(ids.iter().map(|id| Arg::from(id.as_str())));
                unit.push((|t| &mut t.objects, self.statement(&sql, args)));
            }
        }
        if let Some(pairs) = cutoffs.pairs {
            for (table, key) in PAIR_TABLES.iter().zip(PAIR_KEYS) {
                let sql = format!(
                    "DELETE FROM {table} WHERE ({key}) IN
                       (SELECT {key} FROM {table} WHERE created_at < ?1 LIMIT ?2)"
                );
                unit.push((
                    |t| &mut t.pairs,
                    self.statement(&sql, vec![millis(pairs).into(), BATCH.into()]),
                ));
            }
        }
        if let Some(idempotent) = cutoffs.idempotent {
            unit.push((
                |t| &mut t.idempotent_requests,
                self.statement(
                    "DELETE FROM idempotent_requests WHERE (label, idempotency_key) IN
                       (SELECT label, idempotency_key FROM idempotent_requests WHERE at < ?1 LIMIT ?2)",
                    vec![millis(idempotent).into(), BATCH.into()],
                ),
            ));
        }
        if let Some(day) = &cutoffs.role_day {
            unit.push((
                |t| &mut t.role_spend,
                self.statement(
                    "DELETE FROM role_spend WHERE (role, period) IN
                       (SELECT role, period FROM role_spend WHERE period < ?1 LIMIT ?2)",
                    vec![day.as_str().into(), BATCH.into()],
                ),
            ));
        }
        let (slots, statements): (Vec<Slot>, Vec<Statement>) = unit.into_iter().unzip();
        let rows = self.write(statements).await?;
        let mut done = Tidied::default();
        for (slot, rows) in slots.into_iter().zip(rows) {
            *slot(&mut done) += rows;
        }
        Ok(done)
    }

    /// Up to [`BATCH`] object claims made before `claims` whose label has
    /// no key left, read beside the writer.
    async fn claims_free(
        &self,
        claims: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, sqlx::Error> {
        let sql = format!(
            "SELECT vendor, object_id FROM objects WHERE created_at < ?1 AND {CLAIM_FREE} LIMIT ?2"
        );
        let rows = sqlx::query_as(self.sql(&sql))
            .bind(millis(claims))
            .bind(BATCH)
            .fetch_all(&self.pool)
            .await;
        self.observe(rows)
    }

    /// Up to [`BATCH`] keys over before `cutoff` ([`KEY_OVER`]).
    async fn keys_over(&self, cutoff: DateTime<Utc>) -> Result<Vec<String>, sqlx::Error> {
        let sql = format!("SELECT k.id {} LIMIT ?2", keys_over());
        let ids = sqlx::query_scalar(self.sql(&sql))
            .bind(millis(cutoff))
            .bind(BATCH)
            .fetch_all(&self.pool)
            .await;
        self.observe(ids)
    }

    /// Rows each of [`TABLES`] holds: counted, except a PostgreSQL table
    /// its statistics put past [`ESTIMATED_PAST`] rows, whose estimate is
    /// taken (a count would read the whole table every interval).
    pub async fn table_rows(&self) -> Result<Vec<(&'static str, u64)>, sqlx::Error> {
        let mut rows = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            if self.backend == Backend::Postgres {
                let estimate = self
                    .count(
                        "SELECT GREATEST(COALESCE(MAX(reltuples), 0), 0)::bigint FROM pg_class WHERE oid = to_regclass(?1)",
                        &[table.into()],
                    )
                    .await?;
                if estimate > ESTIMATED_PAST {
                    rows.push((table, estimate));
                    continue;
                }
            }
            rows.push((
                table,
                self.count(&format!("SELECT COUNT(*) FROM {table}"), &[])
                    .await?,
            ));
        }
        Ok(rows)
    }

    /// Gives up to `pages` free pages of a SQLite file back to the file
    /// system (`auto_vacuum = INCREMENTAL`, see [`Store::connect`]); the free
    /// pages left. Nothing on PostgreSQL, whose autovacuum does this.
    pub async fn vacuum_some(&self, pages: i64) -> Result<u64, sqlx::Error> {
        if self.backend != Backend::Sqlite {
            return Ok(0);
        }
        self.write_one(Statement::new(
            format!("PRAGMA incremental_vacuum({pages})"),
            Vec::new(),
        ))
        .await?;
        self.count("PRAGMA freelist_count", &[]).await
    }

    /// The one number `sql` reads, with `args` bound.
    async fn count(&self, sql: &str, args: &[Arg]) -> Result<u64, sqlx::Error> {
        let mut query = sqlx::query_scalar::<_, i64>(self.sql(sql));
        for arg in args {
            query = match arg {
                Arg::Int(value) => query.bind(*value),
                Arg::Text(value) => query.bind(value.clone()),
            };
        }
        let count = self.observe(query.fetch_one(&self.pool).await)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests;
