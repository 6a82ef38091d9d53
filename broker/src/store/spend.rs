//! The `spend` table: what each key holds against its cap in each spend
//! period ([`crate::key::KeyRecord::spend_period`]), reserved atomically.

use chrono::{DateTime, Utc};

use super::{Store, millis};
use crate::group_commit::Statement;
use crate::key::{KeyRecord, KeyRole, SpendPeriod};

/// SQL for a key's spend period ([`KeyRecord::spend_period`]), given the UTC
/// day bound as `?5`, [`crate::key::LIFETIME_CAP_LIMIT_MS`] as `?6` and
/// [`SpendPeriod::LIFE`] as `?7`.
pub(super) const PERIOD_SQL: &str = "CASE WHEN expires_at - created_at <= ?6 THEN ?7 ELSE ?5 END";

/// A reservation against a key's cap, to be kept or released.
#[derive(Debug, Clone)]
pub struct Reservation {
    key_id: String,
    period: SpendPeriod,
    micros: i64,
    /// The role whose daily cap it was also taken from, and the UTC day.
    role: Option<(KeyRole, SpendPeriod)>,
}

impl Reservation {
    /// The reserved amount in micro-dollars.
    pub fn micros(&self) -> i64 {
        self.micros
    }

    /// The role whose daily cap it was also taken from, and the UTC day.
    pub fn role(&self) -> Option<&(KeyRole, SpendPeriod)> {
        self.role.as_ref()
    }
}

impl Store {
    /// What `key` has spent (or holds in flight) in its period at `now`, in micro-dollars.
    pub async fn spent(&self, key: &KeyRecord, now: DateTime<Utc>) -> Result<i64, sqlx::Error> {
        let period = key.spend_period(now).to_string();
        let row = self
            .fetch_optional(
                "SELECT micros FROM spend WHERE key_id = ?1 AND period = ?2",
                &[key.id.as_str().into(), period.as_str().into()],
            )
            .await?;
        row.map_or(Ok(0), |row| row.get("micros"))
    }

    /// Atomically holds `micros` against the key's cap in `period` (the one
    /// the request was valued in: see [`KeyRecord::spend_period`]); `None`
    /// if that would pass the cap, or if the key is no longer live at `now`.
    ///
    /// One conditional upsert checks the key's state, checks the cap and adds,
    /// so concurrent requests on one key can never together pass the cap, and
    /// a key revoked while its request was arriving reserves nothing.
    ///
    /// A key issued under a role has taken the same amount from its role's
    /// daily cap first ([`crate::role_budget`]); the reservation remembers
    /// the role and UTC `day` it took from, so that a release gives it back.
    ///
    /// `with` are committed in the same unit (the request's audit row), so
    /// what is written before forwarding costs one commit.
    pub async fn reserve(
        &self,
        key: &KeyRecord,
        micros: i64,
        period: &SpendPeriod,
        day: &SpendPeriod,
        now: DateTime<Utc>,
        with: Vec<Statement>,
    ) -> Result<Option<Reservation>, sqlx::Error> {
        let mut unit = vec![self.statement(
                "INSERT INTO spend (key_id, period, micros) SELECT ?1, ?2, ?3 WHERE ?3 <= ?4
                   AND EXISTS (SELECT 1 FROM keys WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?5)
                 ON CONFLICT (key_id, period) DO UPDATE SET micros = spend.micros + excluded.micros
                 WHERE spend.micros + excluded.micros <= ?4",
                vec![
                    key.id.as_str().into(),
                    period.as_str().into(),
                    micros.into(),
                    key.daily_cap_micros.into(),
                    millis(now).into(),
                ],
        )];
        let role = key.role.as_ref().map(|role| (role.clone(), day.clone()));
        unit.extend(with);
        let reserved = self.write(unit).await?.first().copied().unwrap_or(0);
        Ok((reserved == 1).then(|| Reservation {
            key_id: key.id.clone(),
            period: period.clone(),
            micros,
            role,
        }))
    }

    /// Gives a reservation back to its key, for a request upstream refused:
    /// a statement for [`Store::write`]. (Its role's part goes back to the
    /// broker's lease: [`crate::role_budget::RoleBudget::give_back`].)
    pub fn release(&self, reservation: &Reservation) -> Statement {
        self.statement(
            "UPDATE spend SET micros = micros - ?3 WHERE key_id = ?1 AND period = ?2",
            vec![
                reservation.key_id.as_str().into(),
                reservation.period.as_str().into(),
                reservation.micros.into(),
            ],
        )
    }
}
