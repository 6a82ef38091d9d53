//! What a tidy keeps and what it did: the cutoffs of each rule at a
//! moment, and the rows each rule deleted.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{AUDIT_BATCH, BATCH, LOST_AFTER};
use crate::key::SpendPeriod;
use crate::store::idempotent::REPLAY_WINDOW;

/// When rows stop being kept.
#[derive(Debug, Clone)]
pub struct Cutoffs {
    /// Audit rows from before this go (`None`: audit retention is off).
    pub audit: Option<DateTime<Utc>>,
    /// Keys that ended before this go, with what only they need (`None`: off).
    pub keys: Option<DateTime<Utc>>,
    /// Object claims made before this go, once no key of their label is left.
    pub claims: Option<DateTime<Utc>>,
    /// Idempotent requests recorded before this go.
    pub idempotent: Option<DateTime<Utc>>,
    /// Recorded and pending metadata pairs older than this go: as claims
    /// do, and never within a day (a lookup reads minutes back, and a
    /// create's pending pairs outlive any request).
    pub pairs: Option<DateTime<Utc>>,
    /// Role spend of UTC days before this one goes: never yesterday's or today's.
    pub role_day: Option<SpendPeriod>,
    /// Rows in flight since before this are marked lost.
    pub lost: DateTime<Utc>,
}

impl Cutoffs {
    /// The cutoffs at `now` for `audit` and `keys` retention (`None`: off),
    /// keys living at most `max_ttl`.
    pub fn at(
        now: DateTime<Utc>,
        audit: Option<std::time::Duration>,
        keys: Option<std::time::Duration>,
        max_ttl: std::time::Duration,
    ) -> Self {
        let ago =
            |span: std::time::Duration| now - Duration::from_std(span).unwrap_or(Duration::MAX / 2);
        let today = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map(|midnight| midnight.and_utc())
            .unwrap_or(now);
        let key_cutoff = keys.map(|keys| ago(keys).min(today));
        Self {
            audit: audit.map(ago),
            keys: key_cutoff,
            claims: keys.map(|keys| ago(keys.saturating_add(max_ttl))),
            idempotent: keys.map(|keys| ago(keys).min(now - REPLAY_WINDOW)),
            pairs: keys.map(|keys| ago(keys.saturating_add(max_ttl)).min(now - Duration::days(1))),
            // Never yesterday's: a request valued on a day takes its role
            // lease for that day minutes later (a price read from Stripe
            // first), and a day's row deleted then would start it at 0.
            role_day: keys.map(|keys| SpendPeriod::day_of(ago(keys).min(now - Duration::days(2)))),
            lost: now - LOST_AFTER,
        }
    }
}

/// Rows of each table a tidy deleted, or would delete.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tidied {
    /// Audit rows.
    pub audit: u64,
    /// Keys.
    pub keys: u64,
    /// Spend rows of those keys.
    pub spend: u64,
    /// Holds on objects that those keys had reserved.
    pub holds: u64,
    /// Object claims.
    pub objects: u64,
    /// Recorded and pending metadata pairs (`object_pairs`, `pending_pairs`).
    pub pairs: u64,
    /// Idempotent requests past their replay window.
    pub idempotent_requests: u64,
    /// Role spend of past days.
    pub role_spend: u64,
    /// Rows marked `in_flight_lost`.
    pub lost: u64,
}

impl Tidied {
    /// Rows deleted in all.
    pub fn deleted(&self) -> u64 {
        self.audit
            + self.keys
            + self.spend
            + self.objects
            + self.pairs
            + self.idempotent_requests
            + self.role_spend
    }

    /// Whether any rule found a full batch: more may be left.
    pub fn full(&self) -> bool {
        let full = BATCH as u64;
        self.audit >= AUDIT_BATCH as u64
            || [
                self.keys,
                self.objects,
                self.pairs,
                self.idempotent_requests,
                self.role_spend,
                self.lost,
            ]
            .iter()
            .any(|&rows| rows >= full)
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Self) {
        self.audit += other.audit;
        self.keys += other.keys;
        self.spend += other.spend;
        self.holds += other.holds;
        self.objects += other.objects;
        self.pairs += other.pairs;
        self.idempotent_requests += other.idempotent_requests;
        self.role_spend += other.role_spend;
        self.lost += other.lost;
    }
}
