//! The `object_pairs` and `pending_pairs` tables: the metadata pairs of the
//! PaymentIntents creates through the broker made, so that a key scoped to
//! a pair (an order) learns every one of them made since a time without
//! scanning the account's list (issue 24: on a busy account that list
//! cannot be read to its end, and the order check fell back on Stripe's
//! search alone).
//!
//! A create's pairs are pending from the commit before it is forwarded
//! until its answer is known. A lookup says why the record is not whole
//! when it is not: a create of its pairs is pending, a broker of an earlier
//! release (which records nothing) forwarded a create in the time, or a
//! pair names more than [`MAX_FOUND`] objects.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

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

/// The objects recorded with one pair since a time, oldest first, at most
/// one more than [`MAX_FOUND`] (bound as `?7`).
pub(crate) const OBJECTS_OF_PAIR: &str = "SELECT object_id FROM object_pairs
     WHERE vendor = ?1 AND account = ?2 AND kind = ?3 AND name = ?4 AND value = ?5
       AND created_at >= ?6
     ORDER BY created_at, object_id LIMIT ?7";
/// How long before a lookup's `since` a create forwarded is still counted:
/// it was forwarded before `since` by the broker's clock and may have made
/// its object after it by Stripe's (the longest upstream timeout, 10
/// minutes, and clocks).
const FORWARDED_BEFORE: Duration = Duration::minutes(15);

/// Whether `name` and `value` are within Stripe's limits: a pair past them
/// is never recorded (Stripe refuses it).
pub fn within_limits(name: &str, value: &str) -> bool {
    !name.is_empty() && name.chars().count() <= MAX_NAME && value.chars().count() <= MAX_VALUE
}

/// The pairs of `pairs` a row is written for: within Stripe's limits, at
/// most [`MAX_PAIRS`]; `None` when that is none.
fn recordable<'p>(pairs: &'p [(&'p str, &'p str)]) -> Option<Vec<&'p (&'p str, &'p str)>> {
    let pairs: Vec<_> = (pairs.iter())
        .filter(|(name, value)| within_limits(name, value))
        .take(MAX_PAIRS)
        .collect();
    (!pairs.is_empty()).then_some(pairs)
}

/// Why a lookup is not whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Incomplete {
    /// A create of one of the pairs was forwarded and its outcome is not
    /// known (a timeout, a 5xx, a crash).
    Pending,
    /// A broker of an earlier release forwarded a PaymentIntent create in
    /// the time: it records no pairs.
    EarlierRelease,
    /// A pair names more than [`MAX_FOUND`] objects, or the key's pairs are
    /// past Stripe's limits.
    TooMany,
    /// A create in the time carried one of the pairs with a key that does
    /// not own it (no `allowed_metadata`): the record does not hold what it made.
    Unowned,
}

/// A pair's digest in `unowned_pairs`: fixed in size whatever the pair.
fn digest(name: &str, value: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([0]);
    hasher.update(value.as_bytes());
    hex::encode(&hasher.finalize()[..16])
}

/// What the record holds for a set of pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The objects recorded with every pair, oldest first (none when a
    /// pair names too many).
    pub ids: Vec<String>,
    /// `None` when those are every object made through a broker of this
    /// store with those pairs since the time asked; else why not.
    pub incomplete: Option<Incomplete>,
}

impl Recorded {
    fn incomplete(why: Incomplete) -> Self {
        Self {
            ids: Vec::new(),
            incomplete: Some(why),
        }
    }
}

/// Where a lookup reads: a vendor's objects of one type on one account.
#[derive(Debug, Clone, Copy)]
pub struct Shelf<'a> {
    /// `stripe`.
    pub vendor: &'a str,
    /// The connected account (`Stripe-Account`), `""` for the platform's own.
    pub account: &'a str,
    /// The object type, `payment_intent` (the one whose creates an earlier
    /// release's are noted by: `unrecorded_creates`).
    pub kind: &'a str,
}

impl Store {
    /// The pairs of a create about to be forwarded, as pending under
    /// `request_id`: a statement to commit with its audit row (`None`: no
    /// pair to record).
    pub fn pending_pairs(
        &self,
        shelf: Shelf<'_>,
        request_id: &str,
        idempotency_key: &str,
        pairs: &[(&str, &str)],
        now: DateTime<Utc>,
    ) -> Option<Statement> {
        let pairs = recordable(pairs)?;
        let mut args: Vec<Arg> = vec![
            request_id.into(),
            shelf.vendor.into(),
            shelf.account.into(),
            shelf.kind.into(),
            millis(now).into(),
            idempotency_key.into(),
        ];
        let rows: Vec<String> = (pairs.iter().enumerate())
            .map(|(n, (name, value))| {
                args.extend([(*name).into(), (*value).into()]);
                format!("(?1, ?2, ?3, ?4, ?{}, ?{}, ?6, ?5)", 7 + 2 * n, 8 + 2 * n)
            })
            .collect();
        Some(self.statement(
            &format!(
                "INSERT INTO pending_pairs (request_id, vendor, account, kind, name, value, idempotency_key, created_at)
                 VALUES {} ON CONFLICT (request_id, name) DO NOTHING",
                rows.join(", ")
            ),
            args,
        ))
    }

    /// The pairs a create about to be forwarded carries that its key does
    /// not own, each as a digest: a statement to commit with its audit row
    /// (`None`: none).
    pub fn unowned_pairs(
        &self,
        shelf: Shelf<'_>,
        pairs: &[(&str, &str)],
        now: DateTime<Utc>,
    ) -> Option<Statement> {
        let pairs: Vec<_> = pairs.iter().take(MAX_PAIRS).collect();
        if pairs.is_empty() {
            return None;
        }
        let mut args: Vec<Arg> = vec![
            shelf.vendor.into(),
            shelf.account.into(),
            millis(now).into(),
        ];
        let rows: Vec<String> = (pairs.iter().enumerate())
            .map(|(n, (name, value))| {
                args.push(digest(name, value).as_str().into());
                format!("(?1, ?2, ?{}, ?3)", 4 + n)
            })
            .collect();
        Some(self.statement(
            &format!(
                "INSERT INTO unowned_pairs (vendor, account, digest, created_at) VALUES {}",
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

    /// A create sent upstream with `idempotency_key` was answered with the
    /// PaymentIntent it made: so was every create sent with it (Stripe makes
    /// one object per key; one still running when another came was refused
    /// 409 instead), whose pairs are pending no more. (Not on an answer
    /// without a PaymentIntent: a 409 or an idempotency error settles nothing.)
    pub fn settle_pending_of_key(&self, shelf: Shelf<'_>, idempotency_key: &str) -> Statement {
        self.statement(
            "DELETE FROM pending_pairs
             WHERE idempotency_key = ?1 AND idempotency_key <> '' AND vendor = ?2 AND account = ?3",
            vec![
                idempotency_key.into(),
                shelf.vendor.into(),
                shelf.account.into(),
            ],
        )
    }

    /// Records `object_id`'s pairs as upstream answered them, made at
    /// `created` by Stripe's clock (`None`: no pair to record). A pair
    /// recorded before stays as it was.
    pub fn record_pairs(
        &self,
        shelf: Shelf<'_>,
        object_id: &str,
        pairs: &[(&str, &str)],
        created: DateTime<Utc>,
    ) -> Option<Statement> {
        let pairs = recordable(pairs)?;
        let mut args: Vec<Arg> = vec![
            shelf.vendor.into(),
            shelf.account.into(),
            shelf.kind.into(),
            object_id.into(),
            millis(created).into(),
        ];
        let rows: Vec<String> = (pairs.iter().enumerate())
            .map(|(n, (name, value))| {
                args.extend([(*name).into(), (*value).into()]);
                format!("(?1, ?2, ?3, ?{}, ?{}, ?4, ?5)", 6 + 2 * n, 7 + 2 * n)
            })
            .collect();
        Some(self.statement(
            &format!(
                "INSERT INTO object_pairs (vendor, account, kind, name, value, object_id, created_at)
                 VALUES {} ON CONFLICT (vendor, account, kind, name, value, object_id) DO NOTHING",
                rows.join(", ")
            ),
            args,
        ))
    }

    /// The objects on `shelf` recorded with every one of `pairs` since
    /// `since`, and whether that is all of them. A pending create sent with
    /// `own_key` (the idempotency key the caller's retry sends again, as
    /// namespaced upstream: only its own label's) does not count against it.
    pub async fn recorded(
        &self,
        shelf: Shelf<'_>,
        pairs: &BTreeMap<String, String>,
        own_key: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Recorded, sqlx::Error> {
        let fits = |(name, value): (&String, &String)| within_limits(name, value);
        if pairs.is_empty() || pairs.len() > MAX_PAIRS || !pairs.iter().all(fits) {
            return Ok(Recorded::incomplete(Incomplete::TooMany));
        }
        let forwarded_since = since.checked_sub_signed(FORWARDED_BEFORE).unwrap_or(since);
        let mut found: Option<BTreeSet<String>> = None;
        let mut order: Vec<String> = Vec::new();
        let mut incomplete = None;
        for (name, value) in pairs {
            // Read before the pairs, so that a create answered in between
            // is found in one or the other.
            let pending = self
                .fetch_optional(
                    "SELECT request_id FROM pending_pairs
                     WHERE vendor = ?1 AND account = ?2 AND kind = ?3 AND name = ?4
                       AND value = ?5 AND created_at >= ?6
                       AND (?7 = '' OR idempotency_key <> ?7)
                     LIMIT 1",
                    &[
                        shelf.vendor.into(),
                        shelf.account.into(),
                        shelf.kind.into(),
                        name.as_str().into(),
                        value.as_str().into(),
                        millis(forwarded_since).into(),
                        own_key.unwrap_or("").into(),
                    ],
                )
                .await?;
            if pending.is_some() {
                incomplete = Some(Incomplete::Pending);
            }
            let unowned = self
                .fetch_optional(
                    "SELECT id FROM unowned_pairs
                     WHERE vendor = ?1 AND account = ?2 AND digest = ?3 AND created_at >= ?4
                     LIMIT 1",
                    &[
                        shelf.vendor.into(),
                        shelf.account.into(),
                        digest(name, value).as_str().into(),
                        millis(forwarded_since).into(),
                    ],
                )
                .await?;
            if unowned.is_some() {
                incomplete = incomplete.or(Some(Incomplete::Unowned));
            }
            let rows = self
                .fetch_all(
                    OBJECTS_OF_PAIR,
                    &[
                        shelf.vendor.into(),
                        shelf.account.into(),
                        shelf.kind.into(),
                        name.as_str().into(),
                        value.as_str().into(),
                        millis(since).into(),
                        i64::try_from(MAX_FOUND + 1).unwrap_or(i64::MAX).into(),
                    ],
                )
                .await?;
            if rows.len() > MAX_FOUND {
                return Ok(Recorded::incomplete(Incomplete::TooMany));
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
        // Last: a create an earlier release's broker forwarded in the time
        // (in flight, answered or lost), whose pairs are nowhere.
        let earlier = self
            .fetch_optional(
                "SELECT id FROM unrecorded_creates WHERE created_at >= ?1 LIMIT 1",
                &[millis(forwarded_since).into()],
            )
            .await?;
        if earlier.is_some() {
            incomplete = incomplete.or(Some(Incomplete::EarlierRelease));
        }
        // What is recorded is answered whole or not: a payment among it
        // answers for the order either way.
        let found = found.unwrap_or_default();
        Ok(Recorded {
            ids: order.into_iter().filter(|id| found.contains(id)).collect(),
            incomplete,
        })
    }
}
