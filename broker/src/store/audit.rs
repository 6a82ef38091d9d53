//! The `audit` table: one row per proxied request, refused ones included.

use super::read::Row;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Backend, KeyFilter, Store, from_millis, millis};
use crate::audit_log::AuditLog;
use crate::group_commit::{Arg, Statement};
use crate::role::Caller;
use crate::usd::micros_to_usd;

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
    /// Status answered to the caller; 0 while a money request is in flight
    /// (a row left so by a crash is a request that may have reached Stripe).
    pub status: u16,
    /// The broker's error code, when the broker refused or failed the request itself.
    pub code: Option<String>,
    /// USD held against the cap for this request.
    pub reserved_usd: f64,
    /// Time from arrival to answer (for a summary, 0).
    pub latency_ms: i64,
    /// How many requests the row stands for: 1, or the number a summary of
    /// requests without a valid key counts ([`crate::unauthenticated`]).
    pub requests: i64,
    /// Who made an admin call: the admin token's id, never the token.
    /// `None` on a proxied request, whose actor is its key.
    pub actor: Option<String>,
}

impl AuditRecord {
    /// This record as the database keeps it: its time to the millisecond.
    pub fn as_stored(&self) -> Self {
        Self {
            at: from_millis(millis(self.at)),
            ..self.clone()
        }
    }
}

/// Which audit rows a listing holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditKind {
    /// Proxied requests (and the summaries of those without a valid key).
    #[default]
    Proxy,
    /// Calls of the admin API (`vendor` `admin`).
    Admin,
    /// Both.
    All,
}

impl AuditKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Proxy => "proxy",
            Self::Admin => "admin",
            Self::All => "all",
        }
    }
}

/// `record`'s values as `record_audit` binds them, `?1` to `?13`.
fn audit_args(record: &AuditRecord, reserved_micros: i64, request_id: Option<&str>) -> Vec<Arg> {
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
        record.requests.into(),
        request_id.into(),
        record.actor.as_deref().into(),
    ]
}

impl Store {
    /// Appends one audit record, or completes the one written under
    /// `request_id` before the request was forwarded: a statement for
    /// [`Store::write`].
    pub fn record_audit(
        &self,
        record: &AuditRecord,
        reserved_micros: i64,
        request_id: Option<&str>,
    ) -> Statement {
        self.statement(
            "INSERT INTO audit (at, key_id, label, vendor, method, path, status, code, reserved_micros, latency_ms, requests, request_id, actor, records_pairs)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 1)
             ON CONFLICT (request_id) DO UPDATE SET status = excluded.status, code = excluded.code,
               reserved_micros = excluded.reserved_micros, latency_ms = excluded.latency_ms",
            audit_args(record, reserved_micros, request_id),
        )
        .with_line(self.log_line(record))
    }

    /// The audit row of an admin call, written only if `caller`'s role
    /// token (if it has one) is live at `now`: a statement for
    /// [`Store::write`], to commit with the call's own write.
    pub fn record_audit_if_live(
        &self,
        record: &AuditRecord,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Statement {
        let live = self.caller_live(caller, 14, 15, None);
        let mut args = audit_args(record, 0, None);
        args.extend([caller.token_id().into(), millis(now).into()]);
        self.statement(
            &format!(
                "INSERT INTO audit (at, key_id, label, vendor, method, path, status, code, reserved_micros, latency_ms, requests, request_id, actor, records_pairs)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 1 WHERE {live}"
            ),
            args,
        )
        .with_line(self.log_line(record))
    }

    /// The audit log's line of `record`, when there is a log and the record
    /// is final (a money request's row in flight is logged once answered).
    fn log_line(&self, record: &AuditRecord) -> Option<Vec<u8>> {
        (record.status != 0 && self.audit_log().is_some())
            .then(|| AuditLog::line(&record.as_stored()))
    }

    /// The audit row of an admin call on key `key_id`, written only if that
    /// key exists and `caller`'s role token (if it has one) is live at
    /// `now`: a statement for [`Store::write`], to commit with the call's
    /// own write.
    pub fn record_admin_call_on_key(
        &self,
        record: &AuditRecord,
        key_id: &str,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Statement {
        let live = self.caller_live(caller, 10, 11, None);
        self.statement(
            &format!(
                "INSERT INTO audit (at, key_id, label, vendor, method, path, status, code, reserved_micros, latency_ms, requests, actor, records_pairs)
                 SELECT ?1, ?2, label, ?3, ?4, ?5, ?6, ?7, 0, ?8, 1, ?9, 1 FROM keys WHERE id = ?2 AND {live}"
            ),
            vec![
                millis(record.at).into(),
                key_id.into(),
                record.vendor.as_str().into(),
                record.method.as_str().into(),
                record.path.as_str().into(),
                i64::from(record.status).into(),
                record.code.as_deref().into(),
                record.latency_ms.into(),
                record.actor.as_deref().into(),
                caller.token_id().into(),
                millis(now).into(),
            ],
        )
        .with_line(self.log_line(record))
    }

    /// Audit records of `kind` matching `filter` (key id, label prefix), newest first.
    pub async fn audit(
        &self,
        filter: &KeyFilter,
        kind: AuditKind,
    ) -> Result<Vec<AuditRecord>, sqlx::Error> {
        let rows = self.audit_rows(filter, kind, None).await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Final audit records of `kind` matching `filter` that come after
    /// `after` in the order a collector follows ([`Cursor`]), oldest first,
    /// each with its cursor. A row still in flight is left out until it is
    /// answered (or marked lost); on PostgreSQL so is a row whose
    /// transaction is not older than every one still running, since one of
    /// those may yet commit a row that sorts before it.
    pub async fn audit_after(
        &self,
        filter: &KeyFilter,
        kind: AuditKind,
        after: Cursor,
    ) -> Result<Vec<(Cursor, AuditRecord)>, sqlx::Error> {
        let rows = self.audit_rows(filter, kind, Some(after)).await?;
        rows.iter()
            .map(|row| {
                let cursor = Cursor {
                    seq: row.get("seq")?,
                    id: row.get("id")?,
                };
                Ok((cursor, record_from_row(row)?))
            })
            .collect()
    }

    async fn audit_rows(
        &self,
        filter: &KeyFilter,
        kind: AuditKind,
        after: Option<Cursor>,
    ) -> Result<Vec<Row>, sqlx::Error> {
        // A role token's view reads only its role's keys' rows; the admin's
        // query stays the plain scan.
        let of_role = if filter.role.is_some() {
            "AND key_id IN (SELECT id FROM keys WHERE role = ?5)"
        } else {
            "AND ?5 IS NULL"
        };
        let (from, order) = match (after, self.backend) {
            (None, _) => ("AND ?6 IS NULL AND ?7 IS NULL", "id DESC"),
            (Some(_), Backend::Sqlite) => {
                ("AND seq IS NOT NULL AND (seq, id) > (?6, ?7)", "seq, id")
            }
            (Some(_), Backend::Postgres) => (
                "AND seq IS NOT NULL AND (seq, id) > (?6, ?7)
                 AND seq < pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
                "seq, id",
            ),
        };
        let sql = format!(
            "SELECT id, seq, at, key_id, label, vendor, method, path, status, code, reserved_micros, latency_ms, requests, actor FROM audit
             WHERE (?1 IS NULL OR key_id = ?1)
               AND (?2 IS NULL OR substr(label, 1, length(?2)) = ?2)
               AND (?4 = 'all' OR (?4 = 'admin') = (vendor = 'admin'))
               {of_role} {from}
             ORDER BY {order} LIMIT ?3"
        );
        let args = [
            filter.key_id.as_deref().into(),
            filter.label_prefix.as_deref().into(),
            filter.limit.into(),
            kind.as_str().into(),
            filter.role.as_deref().into(),
            after.map(|after| after.seq).into(),
            after.map(|after| after.id).into(),
        ];
        self.fetch_all_aside(&sql, &args).await
    }
}

fn record_from_row(row: &Row) -> Result<AuditRecord, sqlx::Error> {
    Ok(AuditRecord {
        at: from_millis(row.get("at")?),
        key_id: row.get("key_id")?,
        label: row.get("label")?,
        vendor: row.get("vendor")?,
        method: row.get("method")?,
        path: row.get("path")?,
        status: u16::try_from(row.get::<i64>("status")?).unwrap_or(0),
        code: row.get("code")?,
        reserved_usd: micros_to_usd(row.get("reserved_micros")?),
        latency_ms: row.get("latency_ms")?,
        requests: row.get("requests")?,
        actor: row.get("actor")?,
    })
}

/// Where a collector following the audit is: the `seq` and `id` of the
/// last row it read (`0-0` before the first). Rows are read in `(seq, id)`
/// order, `seq` being given when a row is final (migration 0012 says how).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    seq: i64,
    id: i64,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.seq, self.id)
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;

    /// `<seq>-<id>` as [`Cursor`]'s `Display` writes it, or `0` for the start.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || "`after` must be a cursor the audit returned (`next`), or 0".to_owned();
        let number = |part: &str| {
            part.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0 && part.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(bad)
        };
        match text.split_once('-') {
            None if text == "0" => Ok(Self::default()),
            None => Err(bad()),
            Some((seq, id)) => Ok(Self {
                seq: number(seq)?,
                id: number(id)?,
            }),
        }
    }
}
