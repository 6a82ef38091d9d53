//! The `keys` table: issued keys (only their tokens' hashes), looked up,
//! listed with their spend, and revoked.

use super::read::Row;
use chrono::{DateTime, Utc};

use super::spend::PERIOD_SQL;
use super::{AuditRecord, Store, decode_err, from_millis, millis};
use crate::group_commit::Statement;
use crate::key::{KeyRecord, KeyRole, KeyStatus, LIFETIME_CAP_LIMIT_MS, SpendPeriod};
use crate::new_key::NewKey;
use crate::role::Caller;

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
    /// Only keys this role issued (a role token's view).
    pub role: Option<String>,
}

const KEY_COLUMNS: &str = "id, label, vendor, daily_cap_micros, allowed_endpoints, metadata, created_at, expires_at, revoked_at, allowed_objects, stripe_account, allowed_metadata, role, issued_by, (SELECT daily_cap_micros FROM roles WHERE roles.name = keys.role) AS role_cap_micros";

/// SQL for a key's status ([`KeyRecord::status`]) at the time bound as `?1`.
const STATUS_SQL: &str = "CASE WHEN revoked_at IS NOT NULL THEN 'revoked' WHEN expires_at <= ?1 THEN 'expired' ELSE 'active' END";

fn key_from_row(row: &Row) -> Result<KeyRecord, sqlx::Error> {
    let endpoints: String = row.get("allowed_endpoints")?;
    let metadata: String = row.get("metadata")?;
    Ok(KeyRecord {
        id: row.get("id")?,
        label: row.get("label")?,
        vendor: row.get("vendor")?,
        daily_cap_micros: row.get("daily_cap_micros")?,
        allowed_endpoints: serde_json::from_str(&endpoints).map_err(decode_err)?,
        metadata: serde_json::from_str(&metadata).map_err(decode_err)?,
        created_at: from_millis(row.get("created_at")?),
        expires_at: from_millis(row.get("expires_at")?),
        revoked_at: row.get::<Option<i64>>("revoked_at")?.map(from_millis),
        allowed_objects: serde_json::from_str(&row.get::<String>("allowed_objects")?)
            .map_err(decode_err)?,
        stripe_account: row.get("stripe_account")?,
        allowed_metadata: serde_json::from_str(&row.get::<String>("allowed_metadata")?)
            .map_err(decode_err)?,
        role: row
            .get::<Option<String>>("role")?
            .map(|name| -> Result<KeyRole, sqlx::Error> {
                Ok(KeyRole {
                    name,
                    // A role is never deleted; were its row gone, nothing more may be held.
                    daily_cap_micros: row.get::<Option<i64>>("role_cap_micros")?.unwrap_or(0),
                })
            })
            .transpose()?,
        issued_by: row.get("issued_by")?,
    })
}

/// What a key revoke did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// This call revoked the key.
    Now,
    /// It already was, and keeps its first revocation time.
    Already,
    /// There is no such key.
    NoKey,
    /// The caller's role token was revoked or expired before the write: nothing written.
    CallerGone,
}

impl Store {
    /// Stores a new key under `id`, keeping only the hash of its token;
    /// `with` (the call's audit row) commits in the same unit. A key of a
    /// role token is written only if that token is still live in the same
    /// statement (`None` otherwise, and nothing is written but `with`).
    pub async fn insert_key(
        &self,
        id: &str,
        token_hash: &str,
        key: &NewKey,
        issuer: &Caller,
        now: DateTime<Utc>,
        with: Vec<Statement>,
    ) -> Result<Option<KeyRecord>, sqlx::Error> {
        let expires_at = now
            + chrono::Duration::from_std(key.expires_in)
                .map_err(|e| sqlx::Error::Encode(e.into()))?;
        let endpoints = serde_json::to_string(&key.allowed_endpoints).map_err(decode_err)?;
        let metadata = serde_json::to_string(&key.metadata).map_err(decode_err)?;
        let objects = serde_json::to_string(&key.allowed_objects).map_err(decode_err)?;
        let allowed_metadata = serde_json::to_string(&key.allowed_metadata).map_err(decode_err)?;
        let live = self.caller_live(issuer, 14, 8, Some(13));
        let mut unit = vec![self.statement(
            &format!(
                "INSERT INTO keys (id, token_hash, label, vendor, daily_cap_micros, allowed_endpoints, metadata, created_at, expires_at, allowed_objects, stripe_account, allowed_metadata, role, issued_by, namespace)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15
                 WHERE {live}"
            ),
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
                allowed_metadata.as_str().into(),
                issuer.role_name().into(),
                issuer.token_id().into(),
                crate::key::namespace(issuer.role_name(), &key.label)
                    .as_ref()
                    .into(),
            ],
        )];
        unit.extend(with);
        if self.write(unit).await?.first() != Some(&1) {
            // The role token was revoked or expired before the key was written.
            return Ok(None);
        }
        Ok(Some(KeyRecord {
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
            allowed_metadata: key.allowed_metadata.clone(),
            role: issuer.role().map(|role| KeyRole {
                name: role.name.clone(),
                daily_cap_micros: role.daily_cap_micros,
            }),
            issued_by: issuer.token_id().map(str::to_owned),
        }))
    }

    /// The key with this id.
    pub async fn key(&self, id: &str) -> Result<Option<KeyRecord>, sqlx::Error> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM keys WHERE id = ?1");
        let row = self.fetch_optional(&sql, &[id.into()]).await?;
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
        let args = [
            token_hash.into(),
            path_object.map(|(vendor, _)| vendor).into(),
            path_object.map(|(_, id)| id).into(),
        ];
        let row = self.fetch_optional(&sql, &args).await?;
        row.as_ref()
            .map(|row| Ok((key_from_row(row)?, row.get("path_object_label")?)))
            .transpose()
    }

    /// Keys matching `filter`, newest first, each with what it has spent in its period at `now`.
    pub async fn list_keys(
        &self,
        filter: &KeyFilter,
        now: DateTime<Utc>,
    ) -> Result<Vec<(KeyRecord, i64)>, sqlx::Error> {
        // One query for the page: the period's spend comes with each key.
        let sql = format!(
            "SELECT {KEY_COLUMNS}, COALESCE(spend.micros, 0) AS spent_micros FROM keys
             LEFT JOIN spend ON spend.key_id = keys.id AND spend.period = {PERIOD_SQL}
             WHERE (?2 IS NULL OR substr(label, 1, length(?2)) = ?2)
               AND (?3 IS NULL OR {STATUS_SQL} = ?3)
               AND (?8 IS NULL OR role = ?8)
             ORDER BY created_at DESC, id LIMIT ?4"
        );
        let args = [
            millis(now).into(),
            filter.label_prefix.as_deref().into(),
            filter.status.map(KeyStatus::as_str).into(),
            filter.limit.into(),
            SpendPeriod::day_of(now).to_string().as_str().into(),
            LIFETIME_CAP_LIMIT_MS.into(),
            SpendPeriod::LIFE.into(),
            filter.role.as_deref().into(),
        ];
        let rows = self.fetch_all_aside(&sql, &args).await?;
        rows.iter()
            .map(|row| Ok((key_from_row(row)?, row.get("spent_micros")?)))
            .collect()
    }

    /// Revokes one key for `caller`, with the call's audit row `record`, in
    /// one unit: neither is written if the caller's role token is no longer
    /// live when it commits (it was identified before: a revocation of the
    /// token answered in between must leave the key as it was).
    pub async fn revoke(
        &self,
        id: &str,
        caller: &Caller,
        record: &AuditRecord,
        now: DateTime<Utc>,
    ) -> Result<Revoked, sqlx::Error> {
        let token = caller.token_id();
        let live = self.caller_live(caller, 3, 2, None);
        let unit = vec![
            self.statement(
                &format!(
                    "UPDATE keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL AND {live}"
                ),
                vec![id.into(), millis(now).into(), token.into()],
            ),
            self.record_admin_call_on_key(record, id, caller, now),
        ];
        let written = self.write(unit).await?;
        Ok(match written.as_slice() {
            [revoked, 1] if *revoked > 0 => Revoked::Now,
            [_, 1] => Revoked::Already,
            // Its audit row was not written: no such key, or the caller's token is gone.
            _ => match self.key(id).await? {
                None => Revoked::NoKey,
                Some(_) => Revoked::CallerGone,
            },
        })
    }

    /// Revokes every active key whose label starts with `prefix` (of the
    /// caller's role, for a role token), with the call's audit row `record`
    /// in one unit; how many, or `None` if the caller's role token is no
    /// longer live when it commits (then nothing is written).
    pub async fn revoke_by_prefix(
        &self,
        prefix: &str,
        caller: &Caller,
        record: &AuditRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, sqlx::Error> {
        let token = caller.token_id();
        let live = self.caller_live(caller, 4, 1, None);
        let unit = vec![
            self.statement(
                &format!(
                    "UPDATE keys SET revoked_at = ?1
                     WHERE revoked_at IS NULL AND expires_at > ?1 AND substr(label, 1, length(?2)) = ?2
                       AND (?3 IS NULL OR role = ?3) AND {live}"
                ),
                vec![
                    millis(now).into(),
                    prefix.into(),
                    caller.role_name().into(),
                    token.into(),
                ],
            ),
            self.record_audit_if_live(record, caller, now),
        ];
        Ok(match self.write(unit).await?.as_slice() {
            [revoked, 1] => Some(*revoked),
            _ => None,
        })
    }
}
