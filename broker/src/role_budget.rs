//! A role's daily cap, leased to each broker in slices.
//!
//! Every reservation of a role's key must also fit the role's daily cap,
//! which all brokers on the database share. Counting each reservation on
//! the role's one `role_spend` row would make that row a lock every charge
//! of a fleet waits on, through its commit (measured on PostgreSQL with 50
//! keys on two brokers: 40% fewer creates a second). Instead a broker
//! leases a slice of the day's cap (one conditional update of the row,
//! durable before any of it is used) and takes reservations from what it
//! leased, in memory. What a release gives back returns to the broker's
//! lease, never to the row.
//!
//! So the sum of every broker's leases never passes the cap, and no broker
//! reserves more than it leased: a role's keys together never move more
//! than its daily cap. What a broker leased and did not use when it stops
//! or crashes stays counted: the cap can go partly unused (at most a slice
//! per broker, a thirty-second of the cap, or one request's worth when
//! that is more), never passed.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::key::{KeyRole, SpendPeriod};
use crate::store::Store;

/// A slice is this part of the role's daily cap (or the request, if larger).
const SLICES_PER_DAY: i64 = 32;

/// What this broker holds of each role's daily cap, and may still reserve.
#[derive(Debug, Default)]
pub struct RoleBudget {
    /// Unreserved micro-dollars leased, by role and UTC day.
    leased: Mutex<HashMap<(String, String), i64>>,
    /// One lease at a time, so that concurrent requests do not each lease.
    leasing: tokio::sync::Mutex<()>,
}

impl RoleBudget {
    /// Takes `micros` from what this broker leased of `role`'s cap for
    /// `day`, leasing a slice first when that is short; `false` (nothing
    /// taken) when the day's cap has no room.
    pub async fn take(
        &self,
        store: &Store,
        role: &KeyRole,
        day: &SpendPeriod,
        micros: i64,
    ) -> Result<bool, sqlx::Error> {
        if self.take_leased(role, day, micros) {
            return Ok(true);
        }
        let _one_lease = self.leasing.lock().await;
        // Another request may have leased while this one waited.
        if self.take_leased(role, day, micros) {
            return Ok(true);
        }
        let short = micros - self.leased_now(role, day);
        let slice = (role.daily_cap_micros / SLICES_PER_DAY).max(short);
        for lease in [slice, short] {
            if store
                .lease_for_role(&role.name, day, lease, role.daily_cap_micros)
                .await?
            {
                self.give_back(role, day, lease);
                return Ok(self.take_leased(role, day, micros));
            }
            if lease == short {
                break;
            }
        }
        Ok(false)
    }

    /// Returns `micros` to this broker's lease: a reservation released, or
    /// one taken for a request that reserved nothing on its key.
    pub fn give_back(&self, role: &KeyRole, day: &SpendPeriod, micros: i64) {
        let mut leased = self.lock();
        // Yesterday's leases are of no more use.
        leased.retain(|(_, leased_day), _| leased_day == day.as_str());
        *leased
            .entry((role.name.clone(), day.as_str().to_owned()))
            .or_default() += micros;
    }

    fn take_leased(&self, role: &KeyRole, day: &SpendPeriod, micros: i64) -> bool {
        let mut leased = self.lock();
        match leased.get_mut(&(role.name.clone(), day.as_str().to_owned())) {
            Some(left) if *left >= micros => {
                *left -= micros;
                true
            }
            _ => false,
        }
    }

    fn leased_now(&self, role: &KeyRole, day: &SpendPeriod) -> i64 {
        self.lock()
            .get(&(role.name.clone(), day.as_str().to_owned()))
            .copied()
            .unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), i64>> {
        // A panic while holding it leaves whole numbers behind: still usable.
        self.leased
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
