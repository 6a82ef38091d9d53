//! Keys, spend and audit records in SQL: SQLite or PostgreSQL, through sqlx's `Any` driver.
//!
//! Statements are written once with `?N` placeholders (SQLite's) and turned
//! into `$N` (PostgreSQL's) for a PostgreSQL pool; both mean the N-th bind.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::MigrateDatabase;
use sqlx::{Any, AnyPool, Executor, Row};

use crate::allowlist::EndpointRule;
use crate::group_commit::{Arg, Statement, Writer};
use crate::new_key::NewKey;

/// Whether a key can still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Neither revoked nor expired.
    Active,
    /// Revoked by an admin call.
    Revoked,
    /// Past `expires_at` and never revoked.
    Expired,
}

/// A key as stored (never its token).
#[derive(Debug, Clone)]
pub struct KeyRecord {
    /// `key_…`.
    pub id: String,
    /// The caller's label, e.g. `temporal-<workflowId>-<activityId>`.
    pub label: String,
    /// Which upstream the key is for.
    pub vendor: String,
    /// Daily spend cap in micro-dollars.
    pub daily_cap_micros: i64,
    /// What the key may call.
    pub allowed_endpoints: Vec<EndpointRule>,
    /// The caller's string pairs.
    pub metadata: BTreeMap<String, String>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Objects the key may name besides those created under its label.
    pub allowed_objects: Vec<String>,
    /// The only `Stripe-Account` the key acts as.
    pub stripe_account: Option<String>,
}

/// Keys that live at most this long count their cap over their whole life.
const LIFETIME_CAP_LIMIT_MS: i64 = 24 * 3600 * 1000;

/// The spend period of a key with a lifetime cap.
const LIFETIME_PERIOD: &str = "life";

impl KeyRecord {
    /// The spend period `now` falls in: the key's whole life when it lives at
    /// most 24 h (a fresh cap at UTC midnight would double it), else the UTC day.
    pub fn spend_period(&self, now: DateTime<Utc>) -> String {
        if (self.expires_at - self.created_at).num_milliseconds() <= LIFETIME_CAP_LIMIT_MS {
            LIFETIME_PERIOD.to_owned()
        } else {
            day_of(now)
        }
    }

    /// The spend row of `period` ([`KeyRecord::spend_period`]), as an
    /// object's hold names it: `<key id>/<period>`.
    pub fn spend_row(&self, period: &str) -> String {
        format!("{}/{period}", self.id)
    }

    /// The key's status at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> KeyStatus {
        if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if now >= self.expires_at {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }
}

/// One proxied request, as the audit log keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// When the request arrived.
    pub at: DateTime<Utc>,
    /// The key used, when the token named one.
    pub key_id: Option<String>,
    /// That key's label.
    pub label: Option<String>,
    /// The vendor segment of the path.
    pub vendor: String,
    /// HTTP method.
    pub method: String,
    /// Path below the vendor, without the query.
    pub path: String,
    /// Status answered to the caller.
    pub status: u16,
    /// The broker's error code, when the broker refused or failed the request itself.
    pub code: Option<String>,
    /// USD held against the cap for this request.
    pub reserved_usd: f64,
    /// Time from arrival to answer.
    pub latency_ms: i64,
}

/// Filters of `GET /v1/keys` and `GET /v1/audit`.
#[derive(Debug, Default, Clone)]
pub struct KeyFilter {
    /// Only labels starting with this.
    pub label_prefix: Option<String>,
    /// Only keys in this status.
    pub status: Option<KeyStatus>,
    /// Only this key.
    pub key_id: Option<String>,
    /// At most this many rows.
    pub limit: i64,
}

/// An object seen through the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    /// The label of the key that created it; empty when the broker only looked it up.
    pub label: String,
    /// Its amount in minor units, for objects that move money.
    pub amount: Option<i64>,
    /// Its currency.
    pub currency: Option<String>,
    /// Micro-dollars already held against a key's cap for it.
    pub held_micros: i64,
    /// The spend row that hold was reserved in ([`KeyRecord::spend_row`]).
    pub held_for: Option<String>,
}

impl ObjectRecord {
    /// An object whose amount the broker has not seen (a Charge a PaymentIntent made).
    pub fn unpriced() -> Self {
        Self {
            label: String::new(),
            amount: None,
            currency: None,
            held_micros: 0,
            held_for: None,
        }
    }

    /// What it holds against spend row `row` ([`KeyRecord::spend_row`]): a
    /// hold reserved by another key, or in an earlier period, was counted
    /// there, and pays for nothing here.
    pub fn held_against(&self, row: &str) -> i64 {
        if self.held_for.as_deref() == Some(row) {
            self.held_micros
        } else {
            0
        }
    }
}

/// A reservation against a key's daily cap, to be kept or released.
#[derive(Debug, Clone)]
pub struct Reservation {
    key_id: String,
    day: String,
    micros: i64,
}

impl Reservation {
    /// The reserved amount in micro-dollars.
    pub fn micros(&self) -> i64 {
        self.micros
    }
}

/// Which database a store is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://path`: one file, one broker process.
    Sqlite,
    /// `postgres://…`: shared by any number of broker processes.
    Postgres,
}

impl Backend {
    /// The backend a database URL names.
    pub fn of(url: &str) -> Result<Self, sqlx::Error> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres)
        } else {
            Err(sqlx::Error::Configuration(
                "the database URL must start with sqlite:// or postgres://".into(),
            ))
        }
    }
}

/// The broker's database.
#[derive(Debug, Clone)]
pub struct Store {
    /// Reads. Writes on SQLite go through the writer's own connection.
    pool: AnyPool,
    backend: Backend,
    writer: Writer,
}

const KEY_COLUMNS: &str = "id, label, vendor, daily_cap_micros, allowed_endpoints, metadata, created_at, expires_at, revoked_at, allowed_objects, stripe_account";

/// SQL for a key's spend period ([`KeyRecord::spend_period`]), given the UTC
/// day bound as `?5`, [`LIFETIME_CAP_LIMIT_MS`] as `?6` and [`LIFETIME_PERIOD`] as `?7`.
const PERIOD_SQL: &str = "CASE WHEN expires_at - created_at <= ?6 THEN ?7 ELSE ?5 END";

/// SQL for a key's status at the time bound as `?1`.
const STATUS_SQL: &str = "CASE WHEN revoked_at IS NOT NULL THEN 'revoked' WHEN expires_at <= ?1 THEN 'expired' ELSE 'active' END";

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn day_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

fn decode_err(err: serde_json::Error) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(err))
}

fn key_from_row(row: &AnyRow) -> Result<KeyRecord, sqlx::Error> {
    let endpoints: String = row.try_get("allowed_endpoints")?;
    let metadata: String = row.try_get("metadata")?;
    Ok(KeyRecord {
        id: row.try_get("id")?,
        label: row.try_get("label")?,
        vendor: row.try_get("vendor")?,
        daily_cap_micros: row.try_get("daily_cap_micros")?,
        allowed_endpoints: serde_json::from_str(&endpoints).map_err(decode_err)?,
        metadata: serde_json::from_str(&metadata).map_err(decode_err)?,
        created_at: from_millis(row.try_get("created_at")?),
        expires_at: from_millis(row.try_get("expires_at")?),
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(from_millis),
        allowed_objects: serde_json::from_str(&row.try_get::<String, _>("allowed_objects")?)
            .map_err(decode_err)?,
        stripe_account: row.try_get("stripe_account")?,
    })
}

/// Pool settings for `backend`, at most `connections` connections.
fn pool_options(backend: Backend, connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        // A SQLite connection is a file handle that cannot go stale, so the
        // ping before each use (one more round trip to its thread) buys
        // nothing; a PostgreSQL server may have dropped the connection.
        .test_before_acquire(backend == Backend::Postgres)
        .after_connect(move |connection, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers run beside the single writer, and
                    // `synchronous = FULL` (SQLite's default, said outright)
                    // fsyncs every commit before it returns, so what the
                    // broker has answered survives a power loss. The busy
                    // timeout covers the migrations and any other process.
                    connection
                        .execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;")
                        .await?;
                }
                Ok(())
            })
        })
}

impl Store {
    /// Opens the database at `url` (a SQLite file is created if missing) and applies the embedded migrations.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        if backend == Backend::Sqlite && !Any::database_exists(url).await? {
            Any::create_database(url).await?;
        }
        let pool = pool_options(backend, 8).connect(url).await?;
        let writer = match backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
                Writer::batched(pool_options(backend, 1).connect(url).await?)
            }
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres").run(&pool).await?;
                Writer::direct(pool.clone())
            }
        };
        Ok(Self {
            pool,
            backend,
            writer,
        })
    }

    /// `sql` in this backend's syntax with `args`, to be committed by [`Store::write`].
    fn statement(&self, sql: &str, args: Vec<Arg>) -> Statement {
        Statement::new(self.sql(sql).0, args)
    }

    /// Commits `unit` (group-committed with other requests' writes on SQLite):
    /// all of it or none, and durable before this returns. The rows each statement affected.
    pub async fn write(&self, unit: Vec<Statement>) -> Result<Vec<u64>, sqlx::Error> {
        self.writer.write(unit).await
    }

    /// Commits one statement; the rows it affected.
    async fn write_one(&self, statement: Statement) -> Result<u64, sqlx::Error> {
        Ok(self
            .write(vec![statement])
            .await?
            .first()
            .copied()
            .unwrap_or(0))
    }

    /// `statement` in this backend's placeholder syntax.
    fn sql(&self, statement: &str) -> sqlx::AssertSqlSafe<String> {
        match self.backend {
            Backend::Sqlite => sqlx::AssertSqlSafe(statement.to_owned()),
            Backend::Postgres => sqlx::AssertSqlSafe(statement.replace('?', "$")),
        }
    }

    /// Stores a new key under `id`, keeping only the hash of its token.
    pub async fn insert_key(
        &self,
        id: &str,
        token_hash: &str,
        key: &NewKey,
        now: DateTime<Utc>,
    ) -> Result<KeyRecord, sqlx::Error> {
        let expires_at = now
            + chrono::Duration::from_std(key.expires_in)
                .map_err(|e| sqlx::Error::Encode(e.into()))?;
        let endpoints = serde_json::to_string(&key.allowed_endpoints).map_err(decode_err)?;
        let metadata = serde_json::to_string(&key.metadata).map_err(decode_err)?;
        let objects = serde_json::to_string(&key.allowed_objects).map_err(decode_err)?;
        self.write_one(self.statement(
            "INSERT INTO keys (id, token_hash, label, vendor, daily_cap_micros, allowed_endpoints, metadata, created_at, expires_at, allowed_objects, stripe_account)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            vec![
                id.into(),
                token_hash.into(),
                key.label.as_str().into(),
                key.vendor.as_str().into(),
                key.daily_cap_micros.into(),
                endpoints.as_str().into(),
                metadata.as_str().into(),
                millis(now).into(),
                millis(expires_at).into(),
                objects.as_str().into(),
                key.stripe_account.as_deref().into(),
            ],
        ))
        .await?;
        Ok(KeyRecord {
            id: id.to_owned(),
            label: key.label.clone(),
            vendor: key.vendor.clone(),
            daily_cap_micros: key.daily_cap_micros,
            allowed_endpoints: key.allowed_endpoints.clone(),
            metadata: key.metadata.clone(),
            created_at: from_millis(millis(now)),
            expires_at: from_millis(millis(expires_at)),
            revoked_at: None,
            allowed_objects: key.allowed_objects.clone(),
            stripe_account: key.stripe_account.clone(),
        })
    }

    /// The key with this id.
    pub async fn key(&self, id: &str) -> Result<Option<KeyRecord>, sqlx::Error> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM keys WHERE id = ?1");
        let row = sqlx::query(self.sql(&sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// The key whose token hashes to `token_hash`, and in the same read the
    /// label of the `(vendor, id)` object a request names in its path, when
    /// the broker has seen that object (a label never changes once recorded).
    pub async fn key_by_token_hash(
        &self,
        token_hash: &str,
        path_object: Option<(&str, &str)>,
    ) -> Result<Option<(KeyRecord, Option<String>)>, sqlx::Error> {
        let sql = format!(
            "SELECT {KEY_COLUMNS},
               (SELECT label FROM objects WHERE vendor = ?2 AND object_id = ?3) AS path_object_label
             FROM keys WHERE token_hash = ?1"
        );
        let row = sqlx::query(self.sql(&sql))
            .bind(token_hash)
            .bind(path_object.map(|(vendor, _)| vendor))
            .bind(path_object.map(|(_, id)| id))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(|row| Ok((key_from_row(row)?, row.try_get("path_object_label")?)))
            .transpose()
    }

    /// Keys matching `filter`, newest first, each with what it has spent in its period at `now`.
    pub async fn list_keys(
        &self,
        filter: &KeyFilter,
        now: DateTime<Utc>,
    ) -> Result<Vec<(KeyRecord, i64)>, sqlx::Error> {
        // One query for the page: the day's spend comes with each key.
        let sql = format!(
            "SELECT {KEY_COLUMNS}, COALESCE(spend.micros, 0) AS spent_micros FROM keys
             LEFT JOIN spend ON spend.key_id = keys.id AND spend.day = {PERIOD_SQL}
             WHERE (?2 IS NULL OR substr(label, 1, length(?2)) = ?2)
               AND (?3 IS NULL OR {STATUS_SQL} = ?3)
             ORDER BY created_at DESC, id LIMIT ?4"
        );
        let status = filter.status.map(|s| match s {
            KeyStatus::Active => "active",
            KeyStatus::Revoked => "revoked",
            KeyStatus::Expired => "expired",
        });
        let rows = sqlx::query(self.sql(&sql))
            .bind(millis(now))
            .bind(filter.label_prefix.as_deref())
            .bind(status)
            .bind(filter.limit)
            .bind(day_of(now))
            .bind(LIFETIME_CAP_LIMIT_MS)
            .bind(LIFETIME_PERIOD)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((key_from_row(row)?, row.try_get("spent_micros")?)))
            .collect()
    }

    /// Revokes one key: `None` if there is no such key, else whether this call
    /// revoked it (`false`: it already was, and keeps its first revocation time).
    pub async fn revoke(&self, id: &str, now: DateTime<Utc>) -> Result<Option<bool>, sqlx::Error> {
        let revoked = self
            .write_one(self.statement(
                "UPDATE keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                vec![id.into(), millis(now).into()],
            ))
            .await?;
        if revoked > 0 {
            return Ok(Some(true));
        }
        Ok(self.key(id).await?.map(|_| false))
    }

    /// Revokes every active key whose label starts with `prefix`; returns how many.
    pub async fn revoke_by_prefix(
        &self,
        prefix: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, sqlx::Error> {
        self.write_one(self.statement(
            "UPDATE keys SET revoked_at = ?1
             WHERE revoked_at IS NULL AND expires_at > ?1 AND substr(label, 1, length(?2)) = ?2",
            vec![millis(now).into(), prefix.into()],
        ))
        .await
    }

    /// What `key` has spent (or holds in flight) in its period at `now`, in micro-dollars.
    pub async fn spent(&self, key: &KeyRecord, now: DateTime<Utc>) -> Result<i64, sqlx::Error> {
        let spent: Option<i64> =
            sqlx::query_scalar(self.sql("SELECT micros FROM spend WHERE key_id = ?1 AND day = ?2"))
                .bind(&key.id)
                .bind(key.spend_period(now))
                .fetch_optional(&self.pool)
                .await?;
        Ok(spent.unwrap_or(0))
    }

    /// Atomically holds `micros` against the key's cap in `period` (the one
    /// the request was valued in: see [`KeyRecord::spend_period`]); `None`
    /// if that would pass the cap, or if the key is no longer live at `now`.
    ///
    /// One conditional upsert checks the key's state, checks the cap and adds,
    /// so concurrent requests on one key can never together pass the cap, and
    /// a key revoked while its request was arriving reserves nothing.
    pub async fn reserve(
        &self,
        key: &KeyRecord,
        micros: i64,
        period: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Reservation>, sqlx::Error> {
        let day = period.to_owned();
        let reserved = self
            .write_one(self.statement(
                "INSERT INTO spend (key_id, day, micros) SELECT ?1, ?2, ?3 WHERE ?3 <= ?4
                   AND EXISTS (SELECT 1 FROM keys WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?5)
                 ON CONFLICT (key_id, day) DO UPDATE SET micros = spend.micros + excluded.micros
                 WHERE spend.micros + excluded.micros <= ?4",
                vec![
                    key.id.as_str().into(),
                    day.as_str().into(),
                    micros.into(),
                    key.daily_cap_micros.into(),
                    millis(now).into(),
                ],
            ))
            .await?;
        Ok((reserved == 1).then(|| Reservation {
            key_id: key.id.clone(),
            day,
            micros,
        }))
    }

    /// Gives a reservation back, for a request upstream refused: a statement for [`Store::write`].
    pub fn release(&self, reservation: &Reservation) -> Statement {
        self.statement(
            "UPDATE spend SET micros = micros - ?3 WHERE key_id = ?1 AND day = ?2",
            vec![
                reservation.key_id.as_str().into(),
                reservation.day.as_str().into(),
                reservation.micros.into(),
            ],
        )
    }

    /// The object `id` of `vendor`, if the broker has seen it.
    pub async fn object(
        &self,
        vendor: &str,
        id: &str,
    ) -> Result<Option<ObjectRecord>, sqlx::Error> {
        let row = sqlx::query(self.sql(
            "SELECT label, amount, currency, held_micros, held_for FROM objects WHERE vendor = ?1 AND object_id = ?2",
        ))
        .bind(vendor)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(ObjectRecord {
                label: row.try_get("label")?,
                amount: row.try_get("amount")?,
                currency: row.try_get("currency")?,
                held_micros: row.try_get("held_micros")?,
                held_for: row.try_get("held_for")?,
            })
        })
        .transpose()
    }

    /// Records an object the first time it is seen; a later sighting changes nothing.
    pub async fn record_object(
        &self,
        vendor: &str,
        id: &str,
        object: &ObjectRecord,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        self.write_one(self.record_object_statement(vendor, id, object, now))
            .await?;
        Ok(())
    }

    /// [`Store::record_object`] as a statement for [`Store::write`].
    pub fn record_object_statement(
        &self,
        vendor: &str,
        id: &str,
        object: &ObjectRecord,
        now: DateTime<Utc>,
    ) -> Statement {
        self.statement(
            "INSERT INTO objects (vendor, object_id, label, amount, currency, held_micros, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (vendor, object_id) DO NOTHING",
            vec![
                vendor.into(),
                id.into(),
                object.label.as_str().into(),
                object.amount.into(),
                object.currency.as_deref().into(),
                object.held_micros.into(),
                millis(now).into(),
            ],
        )
    }

    /// After upstream accepted a valued request: the object now holds `add_micros`
    /// more against spend row `row` (a hold of another row is replaced, not
    /// added to), and is worth `amount` of `currency`. A statement for [`Store::write`].
    pub fn hold_for_object(
        &self,
        vendor: &str,
        id: &str,
        add_micros: i64,
        row: &str,
        amount: i64,
        currency: &str,
    ) -> Statement {
        self.statement(
            "UPDATE objects SET held_micros = CASE WHEN held_for = ?6 THEN held_micros ELSE 0 END + ?3,
                    held_for = ?6, amount = ?4, currency = ?5
             WHERE vendor = ?1 AND object_id = ?2",
            vec![
                vendor.into(),
                id.into(),
                add_micros.into(),
                amount.into(),
                currency.into(),
                row.into(),
            ],
        )
    }

    /// Appends one audit record: a statement for [`Store::write`].
    pub fn record_audit(&self, record: &AuditRecord, reserved_micros: i64) -> Statement {
        self.statement(
            "INSERT INTO audit (at, key_id, label, vendor, method, path, status, code, reserved_micros, latency_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            vec![
                millis(record.at).into(),
                record.key_id.as_deref().into(),
                record.label.as_deref().into(),
                record.vendor.as_str().into(),
                record.method.as_str().into(),
                record.path.as_str().into(),
                i64::from(record.status).into(),
                record.code.as_deref().into(),
                reserved_micros.into(),
                record.latency_ms.into(),
            ],
        )
    }

    /// Audit records matching `filter` (key id, label prefix), newest first.
    pub async fn audit(&self, filter: &KeyFilter) -> Result<Vec<AuditRecord>, sqlx::Error> {
        let rows = sqlx::query(self.sql("SELECT at, key_id, label, vendor, method, path, status, code, reserved_micros, latency_ms FROM audit
             WHERE (?1 IS NULL OR key_id = ?1)
               AND (?2 IS NULL OR substr(label, 1, length(?2)) = ?2)
             ORDER BY id DESC LIMIT ?3"))
        .bind(filter.key_id.as_deref())
        .bind(filter.label_prefix.as_deref())
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditRecord {
                    at: from_millis(row.try_get("at")?),
                    key_id: row.try_get("key_id")?,
                    label: row.try_get("label")?,
                    vendor: row.try_get("vendor")?,
                    method: row.try_get("method")?,
                    path: row.try_get("path")?,
                    status: u16::try_from(row.try_get::<i64, _>("status")?).unwrap_or(0),
                    code: row.try_get("code")?,
                    reserved_usd: crate::money::micros_to_usd(row.try_get("reserved_micros")?),
                    latency_ms: row.try_get("latency_ms")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(created_at: &str, ttl_hours: i64) -> KeyRecord {
        let created_at: DateTime<Utc> = created_at.parse().unwrap();
        KeyRecord {
            id: "key_1".to_owned(),
            label: "temporal-wf-charge".to_owned(),
            vendor: "stripe".to_owned(),
            daily_cap_micros: 0,
            allowed_endpoints: Vec::new(),
            metadata: BTreeMap::new(),
            created_at,
            expires_at: created_at + chrono::Duration::hours(ttl_hours),
            revoked_at: None,
            allowed_objects: Vec::new(),
            stripe_account: None,
        }
    }

    #[test]
    fn a_key_of_a_day_or_less_gets_no_fresh_cap_at_midnight() {
        let short = key("2026-11-28T23:59:00Z", 24);
        let before: DateTime<Utc> = "2026-11-28T23:59:30Z".parse().unwrap();
        let after: DateTime<Utc> = "2026-11-29T00:00:30Z".parse().unwrap();
        assert_eq!(short.spend_period(before), short.spend_period(after));
        let long = key("2026-11-28T23:59:00Z", 48);
        assert_ne!(long.spend_period(before), long.spend_period(after));
        assert_eq!(long.spend_period(after), "2026-11-29");
    }
}
