//! What visibility reads of each item: its [`Skeleton`], read from the
//! item's text with the fields visibility needs, the rest skipped unbuilt.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// Fields that name the object a Charge or Refund belongs to.
const PARENT_FIELDS: [&str; 2] = ["payment_intent", "charge"];

/// The metadata pairs a key sees objects by (its `allowed_metadata`).
pub(crate) type Wanted = BTreeMap<String, String>;

/// What visibility reads of an object: its id, whether its metadata holds
/// every wanted pair, and the ids of the objects it belongs to (a Charge's
/// `payment_intent`, a Refund's `charge`).
#[derive(Debug, Default)]
pub(crate) struct Skeleton {
    pub(crate) id: Option<String>,
    pub(crate) matches: bool,
    pub(crate) parents: Vec<String>,
}

impl Skeleton {
    /// The skeleton of an object already built.
    pub(crate) fn of(object: &Value, wanted: &Wanted) -> Self {
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
    pub(super) fn read(raw: &RawValue, wanted: &Wanted) -> Option<Self> {
        let mut reading = serde_json::Deserializer::from_str(raw.get());
        (ItemSeed { wanted }).deserialize(&mut reading).ok()
    }

    /// Its own id and its parents'.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &str> {
        self.id.iter().chain(&self.parents).map(String::as_str)
    }
}

/// Whether `metadata` holds every pair of `wanted` (a key without any sees
/// nothing by metadata).
pub(crate) fn matches_metadata(wanted: &Wanted, metadata: &Value) -> bool {
    !wanted.is_empty()
        && wanted
            .iter()
            .all(|(name, value)| metadata[name].as_str() == Some(value.as_str()))
}

/// The id a field holds, whether as a string or as an expanded object.
fn id_of(field: &Value) -> Option<&str> {
    field.as_str().or_else(|| field["id"].as_str())
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

    others_read_as!(false);

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        // Each wanted pair's value as last given: matching, or not.
        let mut equal: Vec<Option<bool>> = vec![None; self.wanted.len()];
        while let Some(Name(name)) = map.next_key()? {
            let pair = (self.wanted.iter().enumerate()).find(|(_, (wanted, _))| **wanted == name);
            match pair {
                Some((at, (_, wanted))) => {
                    let value = map.next_value::<Text>()?.0;
                    equal[at] = Some(value.as_deref() == Some(wanted.as_str()));
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
}

/// A field's name: borrowed from the text unless it has escapes (serde's
/// own `Cow` always copies, a string for each field of each item).
pub(super) struct Name<'de>(pub(super) Cow<'de, str>);

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

    others_read_as!(None, but strings);

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Some(value.to_owned()))
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

/// An item read for its skeleton (an item that is not an object has none).
#[derive(Clone, Copy)]
pub(super) struct ItemSeed<'w> {
    pub(super) wanted: &'w Wanted,
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

    others_read_as!(Skeleton::default());

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

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Skeleton, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Skeleton::default())
    }
}
