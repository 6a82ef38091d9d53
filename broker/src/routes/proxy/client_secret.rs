//! Every `client_secret` and `next_action` of an answer blanked, the rest
//! of it as it came.
//!
//! A PaymentIntent's or SetupIntent's client secret lets anyone with the
//! account's publishable key confirm it straight at Stripe: a declined
//! PaymentIntent (its hold released) confirmed that way would move money no
//! cap counts and no audit row records. A key holder never needs it: the
//! broker is the only way its payments move. A `next_action` carries it
//! too: Stripe's 3-D Secure redirect URL has it in its query
//! (`payment_intent_client_secret=`), and other next actions a Source's
//! client secret in theirs; what a next action asks (a card holder's
//! authentication in a browser) no agent can do, so it is blanked whole.
//!
//! The answer is walked once by serde_json without building it (issue 24:
//! building every answer as a `serde_json::Value` and writing it again was
//! most of the broker's JSON work on a proxied read), each `client_secret`
//! field's value found as a span of the text and written `null` in a copy.
//! serde_json reads each name as JSON readers do (escapes decoded:
//! `client\u005fsecret` is the same field), and a name is taken for
//! `client_secret` as loosely as any common reader would take it (Go's
//! `encoding/json` matches a struct's fields ignoring case, with `ſ` for
//! `s`; a C reader may stop a name at a NUL): every such field is blanked, a
//! repeated one included. Every answer is walked, so an answer that is not
//! exactly one JSON value in UTF-8 (another encoding, two values, not JSON)
//! is refused whole, whatever bytes it holds (found by issue 24's review of
//! this walk: a UTF-16 answer, or an escape in its last bytes, skipped the
//! walk and passed through).

use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// The fields blanked (`next_source_action` is `next_action` as Stripe
/// answers a request that names an API version before 2019-02-11, which a
/// client may).
const NAMES: [&str; 3] = ["client_secret", "next_action", "next_source_action"];

/// The answer with every field of [`NAMES`] set to null; an answer that is not
/// JSON is refused whole (empty): nothing a client could parse a secret out
/// of as a field, and nothing to guess at.
pub fn blanked(body: Bytes) -> Bytes {
    let Some(spans) = secret_spans(&body) else {
        return Bytes::new();
    };
    if spans.is_empty() {
        return body;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut from = 0;
    for span in spans {
        out.extend_from_slice(&body[from..span.start]);
        out.extend_from_slice(b"null");
        from = span.end;
    }
    out.extend_from_slice(&body[from..]);
    Bytes::from(out)
}

/// Whether a reader could take `name` for one of [`NAMES`]: ASCII case
/// ignored, `ſ` (which Unicode folds to `s`) read as `s`, and anything from
/// a NUL on dropped.
fn is_secret_name(name: &str) -> bool {
    let name = name.split('\0').next().unwrap_or_default();
    let folded = || {
        name.chars().map(|c| {
            if c == 'ſ' {
                's'
            } else {
                c.to_ascii_lowercase()
            }
        })
    };
    NAMES.iter().any(|secret| folded().eq(secret.chars()))
}

/// Where each `client_secret` field's value is in `text`, in order; `None`
/// when `text` is not one JSON value.
fn secret_spans(text: &[u8]) -> Option<Vec<Range<usize>>> {
    let mut spans = Vec::new();
    let mut reader = serde_json::Deserializer::from_slice(text);
    Walk {
        base: text.as_ptr() as usize,
        spans: &mut spans,
    }
    .deserialize(&mut reader)
    .ok()?;
    reader.end().ok()?;
    Some(spans)
}

/// Walks one value, noting the span of each `client_secret` field's value.
struct Walk<'s> {
    /// Where the text starts in memory: a borrowed value's offset is its
    /// address less this.
    base: usize,
    spans: &'s mut Vec<Range<usize>>,
}

impl Walk<'_> {
    fn again(&mut self) -> Walk<'_> {
        Walk {
            base: self.base,
            spans: self.spans,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<M: MapAccess<'de>>(mut self, mut map: M) -> Result<(), M::Error> {
        while let Some(is_secret) = map.next_key_seed(IsName)? {
            if is_secret {
                // Borrowed from the text: its address says where it is.
                let value: &'de RawValue = map.next_value()?;
                let start = value.get().as_ptr() as usize - self.base;
                self.spans.push(start..start + value.get().len());
            } else {
                map.next_value_seed(self.again())?;
            }
        }
        Ok(())
    }

    fn visit_seq<S: SeqAccess<'de>>(mut self, mut seq: S) -> Result<(), S::Error> {
        while seq.next_element_seed(self.again())?.is_some() {}
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Reads a field's name (its escapes decoded) and says whether it may be read as one of [`NAMES`].
struct IsName;

impl<'de> DeserializeSeed<'de> for IsName {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for IsName {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<bool, E> {
        Ok(is_secret_name(name))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    /// What the broker did before issue 24: the answer built, each
    /// `client_secret` (and now `next_action`) set to null, written again.
    /// The walk must agree.
    fn built_and_blanked(value: &mut Value) {
        match value {
            Value::Object(fields) => {
                for (name, field) in fields.iter_mut() {
                    if NAMES.contains(&name.as_str()) {
                        *field = Value::Null;
                    } else {
                        built_and_blanked(field);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(built_and_blanked),
            _ => {}
        }
    }

    /// Issue 24's review (older than it): a `client_secret` spelt with an
    /// escape passed through unblanked.
    #[test]
    fn a_client_secret_is_blanked_however_it_is_spelt() {
        for body in [
            r#"{"id":"pi_1","client_secret":"pi_1_secret_x"}"#,
            r#"{"id":"pi_1","client\u005fsecret":"pi_1_secret_x"}"#,
            r#"{"data":[{"\u0063lient_secret":"pi_1_secret_x"}]}"#,
            r#"{"client_secret" : {"nested": "pi_1_secret_x"}, "b": 1}"#,
            // A field twice: a reader may take either.
            r#"{"client_secret":"pi_1_secret_x","client_secret":"pi_1_secret_x"}"#,
            // The review of this walk: an escape in the last bytes, and names
            // Go's struct decoder or a C reader takes for it.
            r#"{"a":"b","client_secre\u0074":1}"#,
            r#"{"CLIENT_SECRET":"pi_1_secret_x"}"#,
            r#"{"Client_Secret":"pi_1_secret_x"}"#,
            "{\"client_\u{17f}ecret\":\"pi_1_secret_x\"}",
            r#"{"client_\u017fecret":"pi_1_secret_x"}"#,
            r#"{"client_secret\u0000":"pi_1_secret_x"}"#,
        ] {
            let blanked = blanked(Bytes::from(body));
            let text = String::from_utf8(blanked.to_vec()).unwrap();
            assert!(!text.contains("pi_1_secret_x"), "{body} -> {text}");
            assert!(!text.contains(":1}"), "{body} -> {text}");
            let _: Value = serde_json::from_str(&text).expect("still JSON");
        }
        // Stripe's 3-D Secure redirect carries the secret in its URL.
        let redirect = r#"{"id":"pi_1","next_action":{"type":"redirect_to_url","redirect_to_url":{"url":"https://hooks.stripe.com/3d_secure_2/hosted?payment_intent=pi_1&payment_intent_client_secret=pi_1_secret_x"}},"Next_Action":{},"next_source_action":{"authorize_with_url":{"url":"https://hooks.stripe.com/3d_secure_2/hosted?payment_intent_client_secret=pi_1_secret_x"}}}"#;
        let text = String::from_utf8(blanked(Bytes::from(redirect)).to_vec()).unwrap();
        assert_eq!(
            text,
            r#"{"id":"pi_1","next_action":null,"Next_Action":null,"next_source_action":null}"#
        );
        let plain = Bytes::from_static(br#"{"id":"pi_1","amount":100}"#);
        assert_eq!(blanked(plain.clone()), plain);
        // A string that holds the name is no field.
        let text = Bytes::from_static(br#"{"description":"\"client_secret\": \"x\"","n":1.50}"#);
        assert_eq!(blanked(text.clone()), text, "written back as it came");
        // Not JSON, more than one value, or not UTF-8 (Python's `json`
        // reads UTF-16): refused whole, whatever bytes it holds.
        let utf16: Vec<u8> = r#"{"client_secret":"pi_1_secret_x"}"#
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        for body in [
            br#"{"client_secret":"x""#.to_vec(),
            br#"{"client_secret":"x"} {}"#.to_vec(),
            br#"{"a":1}{"b":2}"#.to_vec(),
            b"<html>502</html>".to_vec(),
            b"\xEF\xBB\xBF{}".to_vec(),
            utf16,
        ] {
            assert!(blanked(Bytes::from(body.clone())).is_empty(), "{body:?}");
        }
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z_\"\\\\é]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::vec(
                    (
                        prop_oneof![
                            Just("client_secret".to_owned()),
                            Just("next_action".to_owned()),
                            "[a-z_]{1,14}"
                        ],
                        inner
                    ),
                    0..6
                )
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The walk blanks what building the answer blanked, however the
        /// name is spelt and wherever it is, and changes nothing else.
        #[test]
        fn the_walk_blanks_what_building_blanked(value in json(), escaped in any::<bool>()) {
            let mut text = serde_json::to_string_pretty(&value).unwrap();
            if escaped {
                text = text.replace("\"client_secret\"", "\"client\\u005fsecret\"");
            }
            let mut expected = value.clone();
            built_and_blanked(&mut expected);
            let walked: Value = serde_json::from_slice(&blanked(Bytes::from(text))).unwrap();
            prop_assert_eq!(walked, expected);
        }
    }
}
