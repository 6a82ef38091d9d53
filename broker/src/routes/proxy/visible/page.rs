//! A list or search answer read only as far as deciding what a key sees.
//!
//! A page is up to 100 objects, each possibly with expansions, of which a
//! key usually sees a few: building every object as a `serde_json::Value`
//! (a map per object, then freed) was half the broker's CPU under checkout
//! load (issue 24). Here each item is read only for its [`Skeleton`] (the
//! fields visibility needs; the rest skipped unbuilt) in one pass over the
//! page; only a page with items the key sees is read again for their text,
//! and only those are built, to be answered.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Fields that name the object a Charge or Refund belongs to.
const PARENT_FIELDS: [&str; 2] = ["payment_intent", "charge"];

/// The metadata pairs a key sees objects by (its `allowed_metadata`).
pub(super) type Wanted = BTreeMap<String, String>;

/// What visibility reads of an object: its id, whether its metadata holds
/// every wanted pair, and the ids of the objects it belongs to (a Charge's
/// `payment_intent`, a Refund's `charge`).
#[derive(Debug, Default)]
pub(super) struct Skeleton {
    pub(super) id: Option<String>,
    pub(super) matches: bool,
    pub(super) parents: Vec<String>,
}

impl Skeleton {
    /// The skeleton of an object already built.
    pub(super) fn of(object: &Value, wanted: &Wanted) -> Self {
        Self {
            id: object["id"].as_str().map(str::to_owned),
            matches: matches_metadata(wanted, &object["metadata"]),
            parents: PARENT_FIELDS
                .iter()
                .filter_map(|field| id_of(&object[*field]))
                .map(str::to_owned)
                .collect(),
        }
    }

    /// The skeleton of an object's raw text, as a page's item is read.
    fn read(raw: &RawValue, wanted: &Wanted) -> Option<Self> {
        let mut reading = serde_json::Deserializer::from_str(raw.get());
        (ItemSeed { wanted }).deserialize(&mut reading).ok()
    }

    /// Its own id and its parents'.
    pub(super) fn ids(&self) -> impl Iterator<Item = &str> {
        self.id.iter().chain(&self.parents).map(String::as_str)
    }
}

/// Whether `metadata` holds every pair of `wanted` (a key without any sees
/// nothing by metadata).
pub(super) fn matches_metadata(wanted: &Wanted, metadata: &Value) -> bool {
    !wanted.is_empty()
        && wanted
            .iter()
            .all(|(name, value)| metadata[name].as_str() == Some(value.as_str()))
}

/// The id a field holds, whether as a string or as an expanded object.
fn id_of(field: &Value) -> Option<&str> {
    field.as_str().or_else(|| field["id"].as_str())
}

/// Reads an object's text into its [`Skeleton`].
struct FieldsSeed<'w> {
    wanted: &'w Wanted,
}

impl<'de> DeserializeSeed<'de> for FieldsSeed<'_> {
    type Value = Skeleton;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Skeleton, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldsSeed<'_> {
    type Value = Skeleton;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skeleton, A::Error> {
        let mut skeleton = Skeleton::default();
        let (mut payment_intent, mut charge) = (None, None);
        while let Some(Name(name)) = map.next_key()? {
            match name.as_ref() {
                "id" => skeleton.id = map.next_value::<Text>()?.0,
                "metadata" => {
                    skeleton.matches = map.next_value_seed(MetadataSeed {
                        wanted: self.wanted,
                    })?;
                }
                "payment_intent" => payment_intent = map.next_value::<IdField>()?.0,
                "charge" => charge = map.next_value::<IdField>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        skeleton.parents = [payment_intent, charge].into_iter().flatten().collect();
        Ok(skeleton)
    }
}

/// Reads a `metadata` value into whether it holds every wanted pair, as
/// [`matches_metadata`] reads a built one: each name given twice counts as
/// its last, and only a string value matches.
struct MetadataSeed<'w> {
    wanted: &'w Wanted,
}

impl<'de> DeserializeSeed<'de> for MetadataSeed<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        if self.wanted.is_empty() {
            IgnoredAny::deserialize(deserializer)?;
            return Ok(false);
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MetadataSeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        // Each wanted pair's value as last given: matching, or not.
        let mut equal: Vec<Option<bool>> = vec![None; self.wanted.len()];
        while let Some(Name(name)) = map.next_key()? {
            match self.wanted.keys().position(|wanted| *wanted == name) {
                Some(at) => {
                    let value = map.next_value::<Text>()?.0;
                    let wanted = self.wanted.values().nth(at).map(String::as_str);
                    equal[at] = Some(value.as_deref() == wanted);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(equal.iter().all(|pair| *pair == Some(true)))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// A field's name: borrowed from the text unless it has escapes (serde's
/// own `Cow` always copies, a string for each field of each item).
struct Name<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = Name<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(name)))
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(name.to_owned())))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// A string, or `None` for any other value (which is skipped).
#[derive(Default)]
struct Text(Option<String>);

/// A field's id: a string, or an object's string `id` (the rest of the
/// object skipped); `None` for anything else.
#[derive(Default)]
struct IdField(Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(Loose { in_object: false })
            .map(Text)
    }
}

impl<'de> Deserialize<'de> for IdField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(Loose { in_object: true })
            .map(IdField)
    }
}

/// Reads a string, or (`in_object`) an object's `id` string; skips the rest.
struct Loose {
    in_object: bool,
}

impl<'de> Visitor<'de> for Loose {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Some(value.to_owned()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut id = None;
        while let Some(Name(name)) = map.next_key()? {
            if self.in_object && name == "id" {
                // The last `id` counts, as it does in a built object.
                id = map.next_value::<Text>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(id)
    }
}

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

    /// The text of each item, in [`RawPage::items`]' order: a second pass,
    /// read only for a page with an item to answer (issue 24's fifth
    /// sitting: the pages a scan passes over have none, and finding every
    /// item's text was half the cost of reading them).
    pub(super) fn texts(&self) -> Option<Vec<&RawValue>> {
        let page = whole(&self.body, TextSeed)?;
        (page.data.len() == self.items.len()).then_some(page.data)
    }
}

impl RawPage {
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

/// An item read for its skeleton (an item that is not an object has none).
#[derive(Clone, Copy)]
struct ItemSeed<'w> {
    wanted: &'w Wanted,
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_> {
    type Value = Skeleton;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Skeleton, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_> {
    type Value = Skeleton;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Skeleton, A::Error> {
        FieldsSeed {
            wanted: self.wanted,
        }
        .visit_map(map)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Skeleton, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Skeleton::default())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skeleton, E> {
        Ok(Skeleton::default())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skeleton, E> {
        Ok(Skeleton::default())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skeleton, E> {
        Ok(Skeleton::default())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skeleton, E> {
        Ok(Skeleton::default())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skeleton, E> {
        Ok(Skeleton::default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Skeleton, E> {
        Ok(Skeleton::default())
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

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn skeleton(object: &Value, wanted: &Wanted) -> Skeleton {
        let raw = RawValue::from_string(object.to_string()).unwrap();
        Skeleton::read(&raw, wanted).unwrap()
    }

    fn wanted(pairs: &[(&str, &str)]) -> Wanted {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    /// A skeleton read from text is the one read from the built object,
    /// whatever shape each field has, for any pairs the key wants.
    #[test]
    fn a_skeleton_reads_as_the_built_object_does() {
        let objects = [
            json!({"id": "ch_1", "payment_intent": "pi_1", "metadata": {"order": "7"}}),
            json!({"id": "re_1", "charge": {"id": "ch_1", "refunds": {"data": [{"id": "re_9"}]}}}),
            json!({"id": 5, "payment_intent": {"object": "payment_intent"}, "charge": null}),
            json!({"id": "pi_2", "payment_intent": [1, 2], "charge": {"id": 3}, "metadata": "x"}),
            json!({"id": "pi_3", "metadata": {"order": "7", "checkout": "c1", "n": 7}}),
            json!({"id": "pi_4", "metadata": {"order": 7, "checkout": null}}),
            json!({"id": "pi_5", "metadata": [["order", "7"]]}),
            json!({"id": "pi_6", "metadata": {"order": {"order": "7"}}}),
            json!({"object": "customer"}),
            json!(["pi_1", {"order": "7"}, "pi_2", "ch_1"]),
            json!("pi_1"),
        ];
        let wants = [
            wanted(&[]),
            wanted(&[("order", "7")]),
            wanted(&[("order", "7"), ("checkout", "c1")]),
            wanted(&[("order", "8")]),
            wanted(&[("n", "7")]),
        ];
        let mut matched = 0;
        for object in &objects {
            for wanted in &wants {
                let (read, built) = (skeleton(object, wanted), Skeleton::of(object, wanted));
                assert_eq!(read.id, built.id, "{object}");
                assert_eq!(read.matches, built.matches, "{object} {wanted:?}");
                assert_eq!(read.parents, built.parents, "{object}");
                matched += usize::from(read.matches);
            }
        }
        // ch_1 and pi_3 for the order, pi_3 for the checkout too.
        assert_eq!(matched, 3);
        // A field given twice: the last one, as a built object keeps it.
        let twice = RawValue::from_string(r#"{"id": "pi_1", "id": "pi_2"}"#.to_owned()).unwrap();
        let wants = wanted(&[("order", "7")]);
        assert_eq!(
            Skeleton::read(&twice, &wants).unwrap().id.as_deref(),
            Some("pi_2")
        );
        // Metadata, or a pair of it, given twice: the last one.
        for (text, matches) in [
            (
                r#"{"metadata": {"order": "7"}, "metadata": {"order": "8"}}"#,
                false,
            ),
            (
                r#"{"metadata": {"order": "8"}, "metadata": {"order": "7"}}"#,
                true,
            ),
            (r#"{"metadata": {"order": "7", "order": "8"}}"#, false),
            (r#"{"metadata": {"order": "8", "order": "7"}}"#, true),
            // Escaped text is compared as what it says.
            (r#"{"metadata": {"ord\u0065r": "\u0037"}}"#, true),
            (r#"{"metadata": {"order": "7\u0000"}}"#, false),
        ] {
            let raw = RawValue::from_string(text.to_owned()).unwrap();
            let built: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                Skeleton::read(&raw, &wants).unwrap().matches,
                matches,
                "{text}"
            );
            assert_eq!(Skeleton::of(&built, &wants).matches, matches, "{text}");
        }
    }

    #[test]
    fn only_a_list_or_a_search_is_a_page() {
        let list = json!({"object": "list", "has_more": true, "data": [{"id": "pi_1"}]});
        let page = RawPage::read(Bytes::from(list.to_string()), &Wanted::new()).unwrap();
        assert_eq!(page.fields["has_more"], true);
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].id.as_deref(), Some("pi_1"));
        assert_eq!(page.texts().unwrap()[0].get(), r#"{"id":"pi_1"}"#);
        let object = json!({"object": "payment_intent", "data": []});
        assert!(RawPage::read(Bytes::from(object.to_string()), &Wanted::new()).is_none());
        assert!(RawPage::read(Bytes::from_static(b"not json"), &Wanted::new()).is_none());
    }

    /// The second review: a page's fields other than a list's or a search's
    /// own were passed on, whatever objects they held.
    #[test]
    fn only_a_pages_own_fields_are_kept() {
        let text = r#"{"object": "list", "url": "/v1/x", "has_more": false, "data": [], "extra": [{"id": "pi_hidden"}]}"#;
        let page = RawPage::read(Bytes::from_static(text.as_bytes()), &Wanted::new()).unwrap();
        assert_eq!(
            page.fields,
            json!({"object": "list", "url": "/v1/x", "has_more": false})
        );
    }

    /// A list whose `data` is not an array has no items (nothing of it is
    /// answered), as a built one had; `data` given twice counts as its last.
    #[test]
    fn odd_data_is_no_items_and_the_last_data_counts() {
        for data in [r#"{"id": "pi_1"}"#, r#""pi_1""#, "7", "null", "true"] {
            let text = format!(r#"{{"object": "list", "data": {data}}}"#);
            let page = RawPage::read(Bytes::from(text), &Wanted::new()).unwrap();
            assert!(page.items.is_empty(), "{data}");
        }
        let twice = r#"{"object": "list", "data": [{"id": "pi_1"}], "data": [{"id": "pi_2"}]}"#;
        let page = RawPage::read(Bytes::from_static(twice.as_bytes()), &Wanted::new()).unwrap();
        let ids: Vec<_> = page.items.iter().map(|s| s.id.clone()).collect();
        assert_eq!(ids, [Some("pi_2".to_owned())]);
        assert_eq!(page.texts().unwrap()[0].get(), r#"{"id": "pi_2"}"#);
    }

    /// A helper's review of the one pass: an item serde cannot read for its
    /// skeleton (a lone surrogate escape, a number out of range) failed the
    /// whole page; it is one the key does not see, and the rest stands.
    #[test]
    fn an_item_that_cannot_be_read_hides_only_itself() {
        let wants = wanted(&[("order", "7")]);
        for odd in [
            r#"{"id": "\udc00"}"#,
            r#"{"id": 1e400}"#,
            r#"{"metadata": {"\udc00": "7"}}"#,
        ] {
            let text = format!(
                r#"{{"object": "list", "data": [{odd}, {{"id": "pi_1", "metadata": {{"order": "7"}}}}]}}"#
            );
            let page = RawPage::read(Bytes::from(text), &wants).unwrap();
            assert_eq!(page.items.len(), 2, "{odd}");
            assert_eq!(
                (page.items[0].id.as_deref(), page.items[0].matches),
                (None, false),
                "{odd}"
            );
            assert_eq!(
                (page.items[1].id.as_deref(), page.items[1].matches),
                (Some("pi_1"), true),
                "{odd}"
            );
            assert_eq!(page.texts().unwrap().len(), 2, "{odd}");
        }
    }

    /// An item whose metadata is named as serde_json's raw-value marker
    /// reads as a match of what follows; it is left out of the answer when
    /// it cannot be built, and the others are answered.
    #[test]
    fn an_item_that_cannot_be_built_is_left_out_alone() {
        let wants = wanted(&[("order_id", "o-1")]);
        let text = r#"{"object": "list", "data": [{"id": "pi_planted", "metadata": {"$serde_json::private::RawValue": "{", "order_id": "o-1"}}, {"id": "pi_1", "metadata": {"order_id": "o-1"}}]}"#;
        let page = RawPage::read(Bytes::from_static(text.as_bytes()), &wants).unwrap();
        assert!(page.items.iter().all(|item| item.matches));
        let built = page.built(&[0, 1]).unwrap();
        let ids: Vec<_> = built.iter().map(|item| item["id"].clone()).collect();
        assert_eq!(ids, [json!("pi_1")]);
    }

    /// The second pass finds each item's text in the order the first read
    /// their skeletons, whatever each item is.
    #[test]
    fn each_items_text_is_the_one_its_skeleton_was_read_from() {
        let text = r#"{"object": "list", "data": [{"id": "pi_1"}, "pi_x", [{"id": "pi_y"}], {"metadata": {"order": "7"}, "id": "pi_3"}, null], "has_more": true}"#;
        let wants = wanted(&[("order", "7")]);
        let page = RawPage::read(Bytes::from_static(text.as_bytes()), &wants).unwrap();
        let texts = page.texts().unwrap();
        assert_eq!(texts.len(), 5);
        for (skeleton, text) in page.items.iter().zip(&texts) {
            let built: Value = serde_json::from_str(text.get()).unwrap();
            let again = Skeleton::of(&built, &wants);
            assert_eq!((&skeleton.id, skeleton.matches), (&again.id, again.matches));
        }
        assert!(page.items[3].matches);
        assert_eq!(page.items[2].id, None, "an array is no object");
    }
}
