//! A list or search answer read only as far as deciding what a key sees.
//!
//! A page is up to 100 objects, each possibly with expansions, of which a
//! key usually sees a few: building every object as a `serde_json::Value`
//! (a map per object, then freed) was half the broker's CPU under checkout
//! load (issue 24). Here each item is read only for its [`Skeleton`] (the
//! fields visibility needs; the rest skipped unbuilt) in one pass over the
//! page; only a page with items the key sees is read again for their text,
//! and only those are built, to be answered.

/// A visitor's answer to every JSON scalar it does not read (strings too,
/// unless `but strings`): `$value`.
macro_rules! others_read_as {
    ($value:expr, but strings) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
    ($value:expr) => {
        others_read_as!($value, but strings);

        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

mod skeleton;

use std::fmt;

use bytes::Bytes;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use skeleton::{ItemSeed, Name};
pub(super) use skeleton::{Skeleton, Wanted, matches_metadata};

/// A list or search answer, its items unbuilt.
pub(super) struct RawPage {
    /// The answer as upstream sent it.
    body: Bytes,
    /// Every field but `data`, built (a handful of small ones): an object.
    pub(super) fields: Value,
    /// `data`'s items' skeletons, in order.
    pub(super) items: Vec<Skeleton>,
}

impl RawPage {
    /// `body` read as a page, when it is a list or a search answer: one
    /// pass over the answer, each item read for its skeleton as it goes.
    pub(super) fn read(body: Bytes, wanted: &Wanted) -> Option<Self> {
        let page = match whole(&body, ItemSeed { wanted }) {
            Some(page) => page,
            // An item serde cannot read for its skeleton (a lone surrogate
            // escape, a number out of range) is one the key does not see,
            // and the rest of the page stands, as it did when each item was
            // read from its text (a helper's review of the one pass).
            None => {
                let texts = whole(&body, TextSeed)?;
                PageText {
                    fields: texts.fields,
                    data: (texts.data.iter())
                        .map(|text| Skeleton::read(text, wanted).unwrap_or_default())
                        .collect(),
                }
            }
        };
        let fields = Value::Object(page.fields);
        if fields["object"] != "list" && fields["object"] != "search_result" {
            return None;
        }
        Some(Self {
            body,
            fields,
            items: page.data,
        })
    }

    /// Frees the page's text and its items' skeletons; its fields stay.
    pub(super) fn forget_items(&mut self) {
        self.body = Bytes::new();
        self.items = Vec::new();
    }

    /// The text of each item, in [`RawPage::items`]' order: a second pass,
    /// read only for a page with an item to answer (issue 24's fifth
    /// sitting: the pages a scan passes over have none, and finding every
    /// item's text was half the cost of reading them).
    pub(super) fn texts(&self) -> Option<Vec<&RawValue>> {
        let page = whole(&self.body, TextSeed)?;
        (page.data.len() == self.items.len()).then_some(page.data)
    }

    /// The items at `shown` (places in [`RawPage::items`]), built to be
    /// answered. One that cannot be built is left out and fails nothing else
    /// (a helper's review: metadata named as serde_json's raw-value marker
    /// reads as a match, and builds as an error or as other metadata, so one
    /// planted object could fail every list of another key). `None`: the
    /// page's texts could not be read again.
    pub(super) fn built(&self, shown: &[usize]) -> Option<Vec<Value>> {
        let texts = self.texts()?;
        Some(
            (shown.iter())
                .filter_map(|at| texts.get(*at))
                .filter_map(|text| serde_json::from_str(text.get()).ok())
                .collect(),
        )
    }
}

/// `body` as one page, each of `data`'s items read with `item`.
fn whole<'de, I>(body: &'de [u8], item: I) -> Option<PageText<I::Value>>
where
    I: DeserializeSeed<'de> + Copy,
{
    let mut reading = serde_json::Deserializer::from_slice(body);
    let page = (PageSeed { item }).deserialize(&mut reading).ok()?;
    reading.end().ok()?;
    Some(page)
}

/// The fields of Stripe's list and search_result objects besides `data`.
const PAGE_FIELDS: [&str; 5] = ["object", "has_more", "url", "next_page", "total_count"];

/// A page's fields, and `data`'s items as `I` reads each.
struct PageText<T> {
    fields: Map<String, Value>,
    data: Vec<T>,
}

/// Reads a page, each of `data`'s items with `item`.
struct PageSeed<I> {
    item: I,
}

impl<'de, I> DeserializeSeed<'de> for PageSeed<I>
where
    I: DeserializeSeed<'de> + Copy,
{
    type Value = PageText<I::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, I> Visitor<'de> for PageSeed<I>
where
    I: DeserializeSeed<'de> + Copy,
{
    type Value = PageText<I::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut page = PageText {
            fields: Map::new(),
            data: Vec::new(),
        };
        // A field given twice counts as its last, as in a built object.
        // Only a page's own fields are kept: any other may hold objects the
        // key does not see.
        while let Some(Name(name)) = map.next_key()? {
            if name == "data" {
                page.data = map.next_value_seed(ItemsSeed { item: self.item })?;
            } else if PAGE_FIELDS.contains(&name.as_ref()) {
                page.fields.insert(name.into_owned(), map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(page)
    }
}

/// An item kept as its text in the answer.
#[derive(Clone, Copy)]
struct TextSeed;

impl<'de> DeserializeSeed<'de> for TextSeed {
    type Value = &'de RawValue;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        <&RawValue>::deserialize(deserializer)
    }
}

/// `data`'s items, each read with `item`; nothing when `data` is not an array.
struct ItemsSeed<I> {
    item: I,
}

impl<'de, I> DeserializeSeed<'de> for ItemsSeed<I>
where
    I: DeserializeSeed<'de> + Copy,
{
    type Value = Vec<I::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, I> Visitor<'de> for ItemsSeed<I>
where
    I: DeserializeSeed<'de> + Copy,
{
    type Value = Vec<I::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    others_read_as!(Vec::new());

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.item)? {
            items.push(item);
        }
        Ok(items)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests;
