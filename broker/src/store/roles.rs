//! The `roles`, `role_tokens` and `role_spend` tables: roles, their tokens
//! (hashed), and how much of each role's daily cap brokers have leased.

use std::time::Duration;

use super::read::Row;
use chrono::{DateTime, Utc};

use super::{Backend, Store, decode_err, from_millis, millis};
use crate::group_commit::Statement;
use crate::key::SpendPeriod;
use crate::role::{Caller, Role};

const ROLE_COLUMNS: &str = "name, vendor, label_prefix, allowed_endpoints, max_key_cap_micros, daily_cap_micros, max_expires_in_s, stripe_accounts, allow_allowed_objects, allow_allowed_metadata";

fn role_from_row(row: &Row) -> Result<Role, sqlx::Error> {
    Ok(Role {
        name: row.get("name")?,
        vendor: row.get("vendor")?,
        label_prefix: row.get("label_prefix")?,
        allowed_endpoints: serde_json::from_str(&row.get::<String>("allowed_endpoints")?)
            .map_err(decode_err)?,
        max_key_cap_micros: row.get("max_key_cap_micros")?,
        daily_cap_micros: row.get("daily_cap_micros")?,
        max_expires_in: Duration::from_secs(
            u64::try_from(row.get::<i64>("max_expires_in_s")?).unwrap_or(0),
        ),
        stripe_accounts: serde_json::from_str(&row.get::<String>("stripe_accounts")?)
            .map_err(decode_err)?,
        allow_allowed_objects: row.get::<i64>("allow_allowed_objects")? != 0,
        allow_allowed_metadata: row.get::<i64>("allow_allowed_metadata")? != 0,
    })
}

/// A role token as stored (never the token).
#[derive(Debug, Clone)]
pub struct RoleToken {
    /// `rtok_…`.
    pub id: String,
    /// Its role.
    pub role: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Store {
    /// The SQL condition that `caller`'s role token, bound as `?{token}`, is
    /// live at the time bound as `?{now}` (Unix ms), and of the role bound
    /// as `?{role}` when given: for a role token's write, so that a token
    /// revoked after the call was identified, and before its write commits,
    /// writes nothing. The admin's is true (both still bound: one statement
    /// shape per caller kind, neither an `OR` over a subquery, which kept
    /// PostgreSQL planning each run anew). On PostgreSQL it holds the
    /// token's row (`FOR SHARE`) to the unit's commit: each statement there
    /// sees what committed before it began, so without it a revocation could
    /// commit between two statements of one unit (or after its one statement
    /// began); it now waits for the unit instead. SQLite's writer
    /// transaction already sees every commit before it and holds the file
    /// until its own.
    pub(crate) fn caller_live(
        &self,
        caller: &Caller,
        token: u8,
        now: u8,
        role: Option<u8>,
    ) -> String {
        if caller.token_id().is_none() {
            return format!("(?{token} IS NULL AND ?{now} IS NOT NULL)");
        }
        let lock = match self.backend {
            Backend::Postgres => " FOR SHARE",
            Backend::Sqlite => "",
        };
        let of_role = role.map_or(String::new(), |role| format!(" AND role = ?{role}"));
        format!(
            "EXISTS (SELECT 1 FROM role_tokens WHERE id = ?{token}{of_role}
               AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?{now}){lock})"
        )
    }
}

impl Store {
    /// Stores a new role; `false` if one of that name exists. `with` (the
    /// call's audit row) commits in the same unit.
    pub async fn insert_role(
        &self,
        role: &Role,
        now: DateTime<Utc>,
        with: Vec<Statement>,
    ) -> Result<bool, sqlx::Error> {
        let endpoints = serde_json::to_string(&role.allowed_endpoints).map_err(decode_err)?;
        let accounts = serde_json::to_string(&role.stripe_accounts).map_err(decode_err)?;
        let mut unit = vec![self.statement(
            "INSERT INTO roles (name, vendor, label_prefix, allowed_endpoints, max_key_cap_micros, daily_cap_micros, max_expires_in_s, stripe_accounts, allow_allowed_objects, allow_allowed_metadata, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (name) DO NOTHING",
            vec![
                role.name.as_str().into(),
                role.vendor.as_str().into(),
                role.label_prefix.as_str().into(),
                endpoints.as_str().into(),
                role.max_key_cap_micros.into(),
                role.daily_cap_micros.into(),
                i64::try_from(role.max_expires_in.as_secs()).unwrap_or(i64::MAX).into(),
                accounts.as_str().into(),
                i64::from(role.allow_allowed_objects).into(),
                i64::from(role.allow_allowed_metadata).into(),
                millis(now).into(),
            ],
        )];
        unit.extend(with);
        Ok(self.write(unit).await?.first().copied().unwrap_or(0) == 1)
    }

    /// The role named `name`.
    pub async fn role(&self, name: &str) -> Result<Option<Role>, sqlx::Error> {
        let sql = format!("SELECT {ROLE_COLUMNS} FROM roles WHERE name = ?1");
        let row = self.fetch_optional(&sql, &[name.into()]).await?;
        row.as_ref().map(role_from_row).transpose()
    }

    /// Every role, by name, each with what its keys hold in the UTC day of `now`.
    pub async fn roles(&self, now: DateTime<Utc>) -> Result<Vec<(Role, i64)>, sqlx::Error> {
        let sql = format!(
            "SELECT {ROLE_COLUMNS}, COALESCE(role_spend.micros, 0) AS spent_micros FROM roles
             LEFT JOIN role_spend ON role_spend.role = roles.name AND role_spend.period = ?1
             ORDER BY name"
        );
        let day = SpendPeriod::day_of(now).to_string();
        self.fetch_all_aside(&sql, &[day.as_str().into()])
            .await?
            .iter()
            .map(|row| Ok((role_from_row(row)?, row.get("spent_micros")?)))
            .collect()
    }

    /// Stores a token of role `role` under `id`, keeping only its hash.
    pub async fn insert_role_token(
        &self,
        id: &str,
        role: &str,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
        with: Vec<Statement>,
    ) -> Result<(), sqlx::Error> {
        let mut unit = vec![self.statement(
            "INSERT INTO role_tokens (id, role, token_hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            vec![
                id.into(),
                role.into(),
                token_hash.into(),
                millis(now).into(),
                expires_at.map(millis).into(),
            ],
        )];
        unit.extend(with);
        self.write(unit).await?;
        Ok(())
    }

    /// The live role token whose hash is `token_hash`, with its role.
    pub async fn live_role_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(RoleToken, Role)>, sqlx::Error> {
        let sql = format!(
            "SELECT role_tokens.id AS token_id, role_tokens.created_at AS token_created_at,
                    role_tokens.expires_at AS token_expires_at, {ROLE_COLUMNS}
             FROM role_tokens JOIN roles ON roles.name = role_tokens.role
             WHERE token_hash = ?1 AND revoked_at IS NULL
               AND (role_tokens.expires_at IS NULL OR role_tokens.expires_at > ?2)"
        );
        self.fetch_optional(&sql, &[token_hash.into(), millis(now).into()])
            .await?
            .as_ref()
            .map(|row| {
                let role = role_from_row(row)?;
                let token = RoleToken {
                    id: row.get("token_id")?,
                    role: role.name.clone(),
                    created_at: from_millis(row.get("token_created_at")?),
                    expires_at: row.get::<Option<i64>>("token_expires_at")?.map(from_millis),
                };
                Ok((token, role))
            })
            .transpose()
    }

    /// Revokes token `id` of role `role`: `false` if there is no such token.
    pub async fn revoke_role_token(
        &self,
        role: &str,
        id: &str,
        now: DateTime<Utc>,
        with: Vec<Statement>,
    ) -> Result<bool, sqlx::Error> {
        let mut unit = vec![self.statement(
            "UPDATE role_tokens SET revoked_at = COALESCE(revoked_at, ?3) WHERE id = ?1 AND role = ?2",
            vec![id.into(), role.into(), millis(now).into()],
        )];
        unit.extend(with);
        Ok(self.write(unit).await?.first().copied().unwrap_or(0) == 1)
    }

    /// Leases `micros` of role `role`'s daily cap `cap` for `day` to this
    /// broker: one conditional upsert, durable before it returns; `false`
    /// if the day's cap has no room for it ([`crate::role_budget`]).
    pub async fn lease_for_role(
        &self,
        role: &str,
        day: &SpendPeriod,
        micros: i64,
        cap: i64,
    ) -> Result<bool, sqlx::Error> {
        let leased = self
            .write_one(self.statement(
                "INSERT INTO role_spend (role, period, micros) SELECT ?1, ?2, ?3 WHERE ?3 <= ?4
                 ON CONFLICT (role, period) DO UPDATE SET micros = role_spend.micros + excluded.micros
                 WHERE role_spend.micros + excluded.micros <= ?4",
                vec![role.into(), day.as_str().into(), micros.into(), cap.into()],
            ))
            .await?;
        Ok(leased == 1)
    }
}
