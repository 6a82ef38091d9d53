//! The `objects` table: objects seen through the proxy, the label whose key
//! created each, what it is worth, and what of that is already held against
//! a key's cap.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::{Store, millis};
use crate::group_commit::{Arg, Statement};
use crate::key::{SpendPeriod, SpendRow};

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
    /// The spend row that hold was reserved in.
    pub held_in: Option<SpendRow>,
}

impl ObjectRecord {
    /// An object whose amount the broker has not seen (a Charge a PaymentIntent made).
    pub fn unpriced() -> Self {
        Self::priced(None, None)
    }

    /// An object of no label yet, worth `amount` of `currency` when known, holding nothing.
    pub fn priced(amount: Option<i64>, currency: Option<String>) -> Self {
        Self {
            label: String::new(),
            amount,
            currency,
            held_micros: 0,
            held_in: None,
        }
    }

    /// What it holds against spend row `row`: a hold reserved by another
    /// key, or in an earlier period, was counted there, and pays for nothing here.
    pub fn held_against(&self, row: &SpendRow) -> i64 {
        if self.held_in.as_ref() == Some(row) {
            self.held_micros
        } else {
            0
        }
    }
}

/// What a valued request that upstream accepted leaves on its object.
#[derive(Debug, Clone, Copy)]
pub struct Hold<'a> {
    /// Micro-dollars it reserved beyond what the object held.
    pub add_micros: i64,
    /// The spend row it reserved in.
    pub row: &'a SpendRow,
    /// The object's amount after it, in minor units.
    pub amount: i64,
    /// The object's currency after it.
    pub currency: &'a str,
}

/// Most objects of one label [`MadeBy`] reads whole; a label
/// with more is asked about the ids themselves.
const LABEL_READ_WHOLE: i64 = 256;

/// Ids [`MadeBy`] asks about one by one rather than read the label's.
const FEW_IDS: usize = 32;

/// The hold update of [`Store::hold_for_object`], binds `?1`–`?7` from [`hold_args`].
const HOLD_SQL: &str = "UPDATE objects SET held_micros = CASE WHEN held_key = ?6 AND held_period = ?7 THEN held_micros ELSE 0 END + ?3,
        held_key = ?6, held_period = ?7, amount = ?4, currency = ?5
     WHERE vendor = ?1 AND object_id = ?2";

fn hold_args(vendor: &str, id: &str, hold: &Hold<'_>) -> Vec<crate::group_commit::Arg> {
    vec![
        vendor.into(),
        id.into(),
        hold.add_micros.into(),
        hold.amount.into(),
        hold.currency.into(),
        hold.row.key_id.as_str().into(),
        hold.row.period.as_str().into(),
    ]
}

impl Store {
    /// The object `id` of `vendor`, if the broker has seen it.
    pub async fn object(
        &self,
        vendor: &str,
        id: &str,
    ) -> Result<Option<ObjectRecord>, sqlx::Error> {
        let row = self.fetch_optional(
            "SELECT label, amount, currency, held_micros, held_key, held_period FROM objects WHERE vendor = ?1 AND object_id = ?2",
            &[vendor.into(), id.into()],
        )
        .await?;
        row.map(|row| {
            let held_key: Option<String> = row.get("held_key")?;
            let held_period: Option<String> = row.get("held_period")?;
            Ok(ObjectRecord {
                label: row.get("label")?,
                amount: row.get("amount")?,
                currency: row.get("currency")?,
                held_micros: row.get("held_micros")?,
                held_in: held_key.zip(held_period).map(|(key_id, period)| SpendRow {
                    key_id,
                    period: SpendPeriod::stored(period),
                }),
            })
        })
        .transpose()
    }

    /// Which of `ids` a key of `label` created, asked about the ids themselves.
    async fn created_among(
        &self,
        vendor: &str,
        label: &str,
        ids: &[&str],
    ) -> Result<HashSet<String>, sqlx::Error> {
        let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("?{}", i + 3)).collect();
        let sql = format!(
            "SELECT object_id FROM objects WHERE vendor = ?1 AND label = ?2 AND object_id IN ({})",
            placeholders.join(", ")
        );
        let args: Vec<Arg> = [vendor, label]
            .iter()
            .chain(ids)
            .map(|arg| Arg::from(*arg))
            .collect();
        let rows = self.fetch_all(&sql, &args).await?;
        rows.iter().map(|row| row.get("object_id")).collect()
    }

    /// Every object a key of `label` made, when it made at most [`LABEL_READ_WHOLE`].
    async fn made_by(
        &self,
        vendor: &str,
        label: &str,
    ) -> Result<Option<HashSet<String>>, sqlx::Error> {
        let rows = self
            .fetch_all(
                "SELECT object_id FROM objects WHERE vendor = ?1 AND label = ?2 LIMIT ?3",
                &[vendor.into(), label.into(), (LABEL_READ_WHOLE + 1).into()],
            )
            .await?;
        if rows.len() > LABEL_READ_WHOLE as usize {
            return Ok(None);
        }
        rows.iter()
            .map(|row| row.get("object_id"))
            .collect::<Result<_, _>>()
            .map(Some)
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

    /// The object's price is unknown from now on: the next valued request on
    /// it reads it from Stripe. A statement for [`Store::write`].
    pub fn forget_price(&self, vendor: &str, id: &str) -> Statement {
        self.statement(
            "UPDATE objects SET amount = NULL, currency = NULL WHERE vendor = ?1 AND object_id = ?2",
            vec![vendor.into(), id.into()],
        )
    }

    /// [`Store::hold_for_object`] for the object a create answered with, only
    /// if its row was made at `made_at` by the same answer (a replayed create
    /// names an object recorded earlier).
    pub fn hold_for_object_made_at(
        &self,
        vendor: &str,
        id: &str,
        hold: &Hold<'_>,
        made_at: DateTime<Utc>,
    ) -> Statement {
        let mut args = hold_args(vendor, id, hold);
        args.push(millis(made_at).into());
        self.statement(&format!("{HOLD_SQL} AND created_at = ?8"), args)
    }

    /// Forgets the price of object `id` unless its row was made at
    /// `made_at`: for the object of a create that may have been replayed.
    pub fn forget_price_unless_made_at(
        &self,
        vendor: &str,
        id: &str,
        made_at: DateTime<Utc>,
    ) -> Statement {
        self.statement(
            "UPDATE objects SET amount = NULL, currency = NULL
             WHERE vendor = ?1 AND object_id = ?2 AND created_at <> ?3",
            vec![vendor.into(), id.into(), millis(made_at).into()],
        )
    }

    /// After upstream accepted a valued request: the object now holds
    /// `hold.add_micros` more against its spend row (a hold of another row is
    /// replaced, not added to), and is worth its amount and currency. A
    /// statement for [`Store::write`].
    pub fn hold_for_object(&self, vendor: &str, id: &str, hold: &Hold<'_>) -> Statement {
        self.statement(HOLD_SQL, hold_args(vendor, id, hold))
    }
}

/// Which objects a key's label made, asked page after page by one request.
///
/// A label makes few objects (a key's, or one attempt's): all of them are
/// one indexed range, cheaper than asking about every id of a page (issue
/// 24: the check's list scans asked about hundreds per page). They are read
/// once and kept for the request's later pages, which are older objects
/// than its first (issue 24's fifth sitting: a scan of five pages read them
/// five times). A few ids (an expanded object) are cheaper asked about, and
/// so is every page of a label with more than [`LABEL_READ_WHOLE`].
pub struct MadeBy<'s> {
    store: &'s Store,
    vendor: &'s str,
    label: &'s str,
    /// `None`: not read yet; `Some(None)`: the label made too many to hold.
    whole: Option<Option<HashSet<String>>>,
}

impl<'s> MadeBy<'s> {
    /// Asks about `label`'s objects of `vendor`; reads nothing yet.
    pub fn new(store: &'s Store, vendor: &'s str, label: &'s str) -> Self {
        Self {
            store,
            vendor,
            label,
            whole: None,
        }
    }

    /// Which of `ids` the label made.
    pub async fn among(&mut self, ids: &[&str]) -> Result<HashSet<String>, sqlx::Error> {
        if ids.is_empty() || self.label.is_empty() {
            return Ok(HashSet::new());
        }
        if self.whole.is_none() && ids.len() > FEW_IDS {
            self.whole = Some(self.store.made_by(self.vendor, self.label).await?);
        }
        match &self.whole {
            Some(Some(made)) => Ok(ids
                .iter()
                .filter(|id| made.contains(**id))
                .map(|id| (*id).to_owned())
                .collect()),
            _ => self.store.created_among(self.vendor, self.label, ids).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::store::Integrity;

    /// `MadeBy` answers the same whether the label's objects are read
    /// whole (up to [`LABEL_READ_WHOLE`], for more than [`FEW_IDS`] ids) or
    /// the ids are asked about: exactly those of `ids` the label made.
    #[tokio::test]
    async fn created_by_names_the_labels_objects_among_the_ids_however_many_it_made() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("broker.db").display());
        let store = Store::connect(&url, Integrity::Check).await.unwrap();
        let now = Utc::now();
        let whole = LABEL_READ_WHOLE as usize;
        let mut unit = Vec::new();
        for (label, made) in [("full", whole), ("over", whole + 1), ("few", 2)] {
            let object = ObjectRecord {
                label: label.to_owned(),
                ..ObjectRecord::unpriced()
            };
            for i in 0..made {
                let id = format!("pi_{label}{i}");
                unit.push(store.record_object_statement("stripe", &id, &object, now));
            }
        }
        unit.push(store.record_object_statement(
            "stripe",
            "pi_looked",
            &ObjectRecord::unpriced(),
            now,
        ));
        store.write(unit).await.unwrap();
        let last_full = format!("pi_full{}", whole - 1);
        let last_over = format!("pi_over{whole}");
        let asked = [
            last_full.as_str(),
            &last_over,
            "pi_over3",
            "pi_few1",
            "pi_looked",
        ];
        let nobody: Vec<String> = (0..FEW_IDS).map(|i| format!("pi_nobody{i}")).collect();
        let many: Vec<&str> = asked
            .iter()
            .copied()
            .chain(nobody.iter().map(String::as_str))
            .collect();
        let named = |ids: &[&str]| {
            ids.iter()
                .map(|id| (*id).to_owned())
                .collect::<HashSet<_>>()
        };
        for ids in [&asked[..], &many] {
            for (label, expected) in [
                ("full", named(&[&last_full])),
                ("over", named(&[&last_over, "pi_over3"])),
                ("few", named(&["pi_few1"])),
                ("none", named(&[])),
            ] {
                let seen = MadeBy::new(&store, "stripe", label)
                    .among(ids)
                    .await
                    .unwrap();
                assert_eq!(seen, expected, "label {label}, {} ids", ids.len());
            }
            assert!(
                MadeBy::new(&store, "other", "few")
                    .among(ids)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
    }
}
