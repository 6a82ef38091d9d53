//! A vault key as the broker keeps it, and the pure rules about it: its
//! status at an instant, and the spend period its cap counts in.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::allowlist::EndpointRule;

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

impl KeyStatus {
    /// The status as the API and the database spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
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
    /// Spend cap per spend period ([`KeyRecord::spend_period`]) in micro-dollars.
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
    /// Objects whose Stripe metadata holds every one of these pairs are
    /// visible to the key in answers; empty: none by metadata.
    pub allowed_metadata: BTreeMap<String, String>,
    /// The role whose token issued the key, with that role's daily cap in
    /// micro-dollars; `None`: issued with the admin token.
    pub role: Option<KeyRole>,
    /// The id of the role token that issued it; `None`: the admin token.
    pub issued_by: Option<String>,
}

/// The role a key was issued under, as its reservations need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRole {
    /// The role's name.
    pub name: String,
    /// What all the role's keys together may hold per UTC day, in micro-dollars.
    pub daily_cap_micros: i64,
}

/// Keys that live at most this long count their cap over their whole life.
pub const LIFETIME_CAP_LIMIT_MS: i64 = 24 * 3600 * 1000;

/// The span a key's cap counts over: its whole life, or one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendPeriod(String);

impl SpendPeriod {
    /// How the whole-life period is stored (`spend.period`, `objects.held_period`).
    pub const LIFE: &str = "life";

    /// The UTC day of `at`, as `YYYY-MM-DD`.
    pub fn day_of(at: DateTime<Utc>) -> Self {
        Self(at.format("%Y-%m-%d").to_string())
    }

    /// A period as the database holds it (`spend.period`, `objects.held_period`).
    pub fn stored(text: String) -> Self {
        Self(text)
    }

    /// The period as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SpendPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One key's spend in one period: where a reservation is counted and what
/// an object's hold was reserved in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendRow {
    /// The key that reserved.
    pub key_id: String,
    /// The period it reserved in.
    pub period: SpendPeriod,
}

/// [`KeyRecord::namespace`] of a key of `label` issued under `role`.
pub fn namespace<'a>(role: Option<&str>, label: &'a str) -> Cow<'a, str> {
    match role {
        Some(role) => Cow::Owned(format!("{role} {label}")),
        None => Cow::Borrowed(label),
    }
}

impl KeyRecord {
    /// The name the key's label owns objects, Idempotency-Keys and replays
    /// under: the label, for a key the admin issued; for a role's key, the
    /// role's name and the label with a space between (labels hold none),
    /// so that no role reaches the admin's or another role's objects by
    /// issuing a key of the same label.
    pub fn namespace(&self) -> Cow<'_, str> {
        namespace(
            self.role.as_ref().map(|role| role.name.as_str()),
            &self.label,
        )
    }

    /// The spend period `now` falls in: the key's whole life when it lives at
    /// most 24 h (a fresh cap at UTC midnight would double it), else the UTC day.
    pub fn spend_period(&self, now: DateTime<Utc>) -> SpendPeriod {
        if (self.expires_at - self.created_at).num_milliseconds() <= LIFETIME_CAP_LIMIT_MS {
            SpendPeriod(SpendPeriod::LIFE.to_owned())
        } else {
            SpendPeriod::day_of(now)
        }
    }

    /// This key's spend row in `period`.
    pub fn spend_row(&self, period: &SpendPeriod) -> SpendRow {
        SpendRow {
            key_id: self.id.clone(),
            period: period.clone(),
        }
    }

    /// The row an object's hold made by this key in `period` on UTC day
    /// `day` pays for: its spend row; for a role's key, that row on that day
    /// alone. A role's daily cap counts each day's money: a hold reserved
    /// (for the key and the role) before midnight pays for nothing after it,
    /// so confirming it after midnight reserves again, and the role's keys
    /// never move more than its cap within a UTC day.
    pub fn hold_row(&self, period: &SpendPeriod, day: &SpendPeriod) -> SpendRow {
        match &self.role {
            Some(_) => SpendRow {
                key_id: self.id.clone(),
                period: SpendPeriod::stored(format!("{period}@{day}")),
            },
            None => self.spend_row(period),
        }
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
            allowed_metadata: BTreeMap::new(),
            role: None,
            issued_by: None,
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
        assert_eq!(long.spend_period(after).as_str(), "2026-11-29");
    }

    /// Found by attacking roles: a role's key that created an unconfirmed
    /// PaymentIntent just before midnight confirmed it after, paying with
    /// the hold of the day before, so a role moved twice its daily cap in
    /// one UTC day. A role key's hold pays only on the day it was made.
    #[test]
    fn a_role_keys_hold_pays_only_on_its_day() {
        let mut admin = key("2026-11-28T23:59:00Z", 1);
        let life = admin.spend_period("2026-11-28T23:59:30Z".parse().unwrap());
        let (before, after) = (
            SpendPeriod::day_of("2026-11-28T23:59:30Z".parse().unwrap()),
            SpendPeriod::day_of("2026-11-29T00:00:30Z".parse().unwrap()),
        );
        assert_eq!(
            admin.hold_row(&life, &before),
            admin.hold_row(&life, &after)
        );
        assert_eq!(admin.hold_row(&life, &before), admin.spend_row(&life));
        admin.role = Some(KeyRole {
            name: "worker".to_owned(),
            daily_cap_micros: 20_000_000,
        });
        let role_key = admin;
        assert_ne!(
            role_key.hold_row(&life, &before),
            role_key.hold_row(&life, &after)
        );
        assert_eq!(
            role_key.hold_row(&life, &after),
            role_key.hold_row(&life, &after)
        );
    }
}
