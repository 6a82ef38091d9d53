//! The `object_pairs` and `pending_pairs` tables: the metadata pairs of the
//! PaymentIntents made through the broker, so that a key scoped to a pair
//! (an order) learns every one of them made since a time without scanning
//! the account's list (issue 24: on a busy account that list cannot be read
//! to its end, and the order check fell back on Stripe's search alone).
//!
//! A create's pairs are `pending` from the commit before it is forwarded
//! until its answer is known; a lookup that meets a pending pair of its
//! own, or an object row a broker of an earlier release made (one that
//! records nothing), says the record is not whole.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};

use super::{Store, millis};
use crate::group_commit::{Arg, Statement};

/// Most metadata pairs an object holds (Stripe's limit).
pub const MAX_PAIRS: usize = 50;
/// Longest metadata name, in characters (Stripe's limit).
pub const MAX_NAME: usize = 40;
/// Longest metadata value, in characters (Stripe's limit).
pub const MAX_VALUE: usize = 500;
/// Most objects a lookup answers: past them the record is not whole.
pub const MAX_FOUND: usize = 100;
/// How long before a lookup's `since` a pending create is still counted:
/// it was forwarded before `since` and may have made its object after.
const PENDING_BEFORE: Duration = Duration::minutes(10);

/// Whether `name` and `value` are within Stripe's limits: a pair past them
/// is never recorded (Stripe refuses it).
pub fn within_limits(name: &str, value: &str) -> bool {
    !name.is_empty() && name.chars().count() <= MAX_NAME && value.chars().count() <= MAX_VALUE
}

/// What the record holds for a set of pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The objects recorded with every pair, oldest record first.
    pub ids: Vec<String>,
    /// Whether those are every object made through a broker of this store
    /// with those pairs since the time asked: no create of a pair is
    /// pending, no object row of an earlier release's broker is in the
    /// time, and no pair has more than [`MAX_FOUND`] objects.
    pub complete: bool,
}

impl Recorded {
    fn incomplete() -> Self {
        Self {
            ids: Vec::new(),
            complete: false,
        }
    }
}

impl Store {
    /// The pairs of a create about to be forwarded, as pending under
    /// `request_id`: a statement to commit with its audit row (`None`: no
    /// pair to record).
    pub fn pending_pairs(
        &self,
        request_id: &str,
        vendor: &str,
        kind: &str,
        pairs: &[(&str, &str)],
        now: DateTime<Utc>,
    ) -> Option<Statement> {
        let pairs: Vec<_> = (pairs.iter())
            .filter(|(name, value)| within_limits(name, value))
            .collect();
        if pairs.is_empty() {
            return None;
        }
        let mut args: Vec<Arg> = Vec::with_capacity(pairs.len() * 6);
        let rows: Vec<String> = (pairs.iter().enumerate())
            .map(|(n, (name, value))| {
                args.extend([
                    request_id.into(),
                    vendor.into(),
                    kind.into(),
                    (*name).into(),
                    (*value).into(),
                    millis(now).into(),
                ]);
                let at = n * 6;
                format!(
                    "(?{}, ?{}, ?{}, ?{}, ?{}, ?{})",
                    at + 1,
                    at + 2,
                    at + 3,
                    at + 4,
                    at + 5,
                    at + 6
                )
            })
            .collect();
        Some(self.statement(
            &format!(
                "INSERT INTO pending_pairs (request_id, vendor, kind, name, value, created_at)
                 VALUES {} ON CONFLICT (request_id, name) DO NOTHING",
                rows.join(", ")
            ),
            args,
        ))
    }

    /// The create `request_id`'s answer is known: its pairs are pending no more.
    pub fn settle_pending(&self, request_id: &str) -> Statement {
        self.statement(
            "DELETE FROM pending_pairs WHERE request_id = ?1",
            vec![request_id.into()],
        )
    }

    /// Records `object_id`'s pairs, as upstream answered them (`None`: no
    /// pair to record). A pair recorded before stays as it was.
    pub fn record_pairs(
        &self,
        vendor: &str,
        kind: &str,
        object_id: &str,
        pairs: &[(&str, &str)],
        now: DateTime<Utc>,
    ) -> Option<Statement> {
        let pairs: Vec<_> = (pairs.iter())
            .filter(|(name, value)| within_limits(name, value))
            .take(MAX_PAIRS)
            .collect();
        if pairs.is_empty() {
            return None;
        }
        let mut args: Vec<Arg> = vec![
            vendor.into(),
            kind.into(),
            object_id.into(),
            millis(now).into(),
        ];
        let rows: Vec<String> = (pairs.iter().enumerate())
            .map(|(n, (name, value))| {
                args.extend([(*name).into(), (*value).into()]);
                format!("(?1, ?2, ?{}, ?{}, ?3, ?4)", 5 + 2 * n, 6 + 2 * n)
            })
            .collect();
        Some(self.statement(
            &format!(
                "INSERT INTO object_pairs (vendor, kind, name, value, object_id, created_at)
                 VALUES {} ON CONFLICT (vendor, kind, name, value, object_id) DO NOTHING",
                rows.join(", ")
            ),
            args,
        ))
    }

    /// The objects of `kind` (ids starting `prefix`) recorded with every
    /// one of `pairs` since `since`, and whether that is all of them.
    pub async fn recorded(
        &self,
        vendor: &str,
        (kind, prefix): (&str, &str),
        pairs: &BTreeMap<String, String>,
        since: DateTime<Utc>,
    ) -> Result<Recorded, sqlx::Error> {
        if pairs.is_empty() || pairs.len() > MAX_PAIRS {
            return Ok(Recorded::incomplete());
        }
        if !pairs.iter().all(|(name, value)| within_limits(name, value)) {
            return Ok(Recorded::incomplete());
        }
        // An object a broker of an earlier release made in the time: its
        // pairs were never recorded.
        let unrecorded = self
            .fetch_optional(
                "SELECT object_id FROM objects
                 WHERE pairs_recorded IS NULL AND label <> '' AND created_at >= ?1
                   AND object_id LIKE ?2
                 LIMIT 1",
                // `_` matches any one character: a wider net, never a narrower one.
                &[millis(since).into(), format!("{prefix}%").as_str().into()],
            )
            .await?;
        if unrecorded.is_some() {
            return Ok(Recorded::incomplete());
        }
        let mut found: Option<BTreeSet<String>> = None;
        let mut order: Vec<String> = Vec::new();
        for (name, value) in pairs {
            let pending = self
                .fetch_optional(
                    "SELECT request_id FROM pending_pairs
                     WHERE vendor = ?1 AND kind = ?2 AND name = ?3 AND value = ?4 AND created_at >= ?5
                     LIMIT 1",
                    &[
                        vendor.into(),
                        kind.into(),
                        name.as_str().into(),
                        value.as_str().into(),
                        millis(since - PENDING_BEFORE).into(),
                    ],
                )
                .await?;
            if pending.is_some() {
                return Ok(Recorded::incomplete());
            }
            let rows = self
                .fetch_all(
                    "SELECT object_id FROM object_pairs
                     WHERE vendor = ?1 AND kind = ?2 AND name = ?3 AND value = ?4 AND created_at >= ?5
                     ORDER BY created_at, object_id LIMIT ?6",
                    &[
                        vendor.into(),
                        kind.into(),
                        name.as_str().into(),
                        value.as_str().into(),
                        millis(since).into(),
                        i64::try_from(MAX_FOUND + 1).unwrap_or(i64::MAX).into(),
                    ],
                )
                .await?;
            if rows.len() > MAX_FOUND {
                return Ok(Recorded::incomplete());
            }
            let ids: Vec<String> = rows
                .iter()
                .map(|row| row.get("object_id"))
                .collect::<Result<_, _>>()?;
            found = Some(match found {
                None => {
                    order.clone_from(&ids);
                    ids.into_iter().collect()
                }
                Some(before) => {
                    let now: BTreeSet<String> = ids.into_iter().collect();
                    before.intersection(&now).cloned().collect()
                }
            });
        }
        let found = found.unwrap_or_default();
        Ok(Recorded {
            ids: order.into_iter().filter(|id| found.contains(id)).collect(),
            complete: true,
        })
    }
}
