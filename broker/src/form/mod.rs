//! Stripe's request parameters, read the way Stripe reads them, and written
//! back out from what was read.
//!
//! Stripe takes `application/x-www-form-urlencoded` bodies (and query
//! strings) with bracket nesting: `metadata[order_id]=o1`, `expand[]=x`.
//! A name is decoded before its brackets are read, so `%5Bamount%5D` would be
//! a spelling of `amount` to a lenient parser. The broker accepts only one
//! spelling of each name, refuses anything two parsers could read
//! differently, and forwards a body re-encoded from the pairs it parsed, never
//! the client's bytes: what the broker valued is what upstream reads.
//!
//! Reading costs time linear in the form's length and never recurses deeper
//! than [`MAX_DEPTH`]: a form has at most [`MAX_PARAMS`] parameters and a name
//! at most [`MAX_DEPTH`] bracket keys, far beyond what any Stripe call takes
//! and far below what could stall or crash the broker.

use std::collections::BTreeMap;
use std::fmt;

use percent_encoding::percent_decode;

/// Most parameters one form may hold. Stripe's own requests stay far below
/// it: a Checkout Session of 100 line items with prices, quantities and tax
/// rates is a few hundred; metadata holds at most 50 keys.
pub const MAX_PARAMS: usize = 1_000;

/// Most bracket keys in one parameter name. Stripe's deepest parameters have
/// five (`line_items[0][price_data][product_data][metadata][key]`).
pub const MAX_DEPTH: usize = 8;

/// Why a form could not be read unambiguously; each names the parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// More than [`MAX_PARAMS`] parameters.
    TooMany,
    /// A name nested deeper than [`MAX_DEPTH`] bracket keys.
    TooDeep(String),
    /// A raw byte no form encoder sends (`;`, a control or non-ASCII byte) or a broken `%` escape.
    BadEncoding(String),
    /// A piece without `=`, or a name that is not `name` or `name[…]…` in Stripe's alphabet.
    BadName(String),
    /// The same scalar given more than once.
    Repeated(String),
    /// One name used both as a value and as a hash or list (`a=1&a[b]=2`), or
    /// index keys that are not a dense list (`a[5]=x`).
    Conflict(String),
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooMany => write!(f, "the form has more than {MAX_PARAMS} parameters"),
            Self::TooDeep(name) => write!(
                f,
                "a parameter is nested deeper than {MAX_DEPTH} bracket keys: `{name}…`"
            ),
            Self::BadEncoding(why) => write!(f, "the form is not plainly encoded: {why}"),
            Self::BadName(name) => write!(
                f,
                "parameter `{name}` is not a Stripe parameter name (`name` or `name[key]`, name in [a-z0-9_])"
            ),
            Self::Repeated(name) => write!(f, "parameter `{name}` is given more than once"),
            Self::Conflict(name) => write!(
                f,
                "parameter `{name}` is given in shapes parsers read differently (a value and a hash, a list and a hash, or list indexes not 0, 1, 2… in order)"
            ),
        }
    }
}

/// One parameter's name, split: `metadata[order_id]` → `metadata`, [`order_id`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Name {
    base: String,
    /// Bracket keys in order; an empty one (`[]`) appends to a list and only ends a name.
    keys: Vec<String>,
}

impl Name {
    fn parse(decoded: &str) -> Result<Self, FormError> {
        let bad = || FormError::BadName(decoded.to_owned());
        let base_len = decoded
            .bytes()
            .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
            .count();
        if base_len == 0 {
            return Err(bad());
        }
        let (base, mut rest) = decoded.split_at(base_len);
        let mut keys = Vec::new();
        while !rest.is_empty() {
            if keys.len() == MAX_DEPTH {
                // The name as far as the limit: the rest could be a megabyte.
                let seen = decoded.len() - rest.len();
                return Err(FormError::TooDeep(decoded[..seen].to_owned()));
            }
            let inner = rest.strip_prefix('[').ok_or_else(bad)?;
            let close = inner.find(']').ok_or_else(bad)?;
            let key = &inner[..close];
            if key.contains('[') || key.chars().any(char::is_control) {
                return Err(bad());
            }
            // `a[][b]` means different things to different parsers: refuse it.
            if keys.last().is_some_and(String::is_empty) {
                return Err(bad());
            }
            keys.push(key.to_owned());
            rest = &inner[close + 1..];
        }
        Ok(Self {
            base: base.to_owned(),
            keys,
        })
    }

    /// `name[]`: one more element of a list.
    fn appends(&self) -> bool {
        self.keys.last().is_some_and(String::is_empty)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)?;
        for key in &self.keys {
            write!(f, "[{key}]")?;
        }
        Ok(())
    }
}

/// The shape a name has taken so far, to catch one name used two ways.
#[derive(Debug)]
enum Shape {
    Scalar,
    List,
    Hash(Children),
}

/// A hash's keys, and how many of them are list indexes: counted as they
/// join, so that checking the next key costs no walk over the others.
#[derive(Debug, Default)]
struct Children {
    shapes: BTreeMap<String, Shape>,
    indexes: usize,
}

/// Whether a bracket key is a list index (`0`, `17`), as some parsers read it.
fn is_index(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `key` may join `children`: index keys are read as a list by some
/// parsers and as hash keys by others, so they are taken only when both
/// readings agree: `0`, `1`, `2`… in order, without gaps or leading zeros,
/// and never mixed with other keys.
fn joins(children: &Children, key: &str) -> bool {
    if children.shapes.contains_key(key) {
        return true;
    }
    let indexes = children.indexes;
    match (is_index(key), indexes == children.shapes.len()) {
        (true, true) => key == indexes.to_string(),
        (false, _) => indexes == 0,
        (true, false) => false,
    }
}

impl Children {
    /// Records `keys` below `key`, which [`joins`] admitted.
    fn insert(&mut self, key: &str, keys: &[String]) -> Result<(), ()> {
        let mut child = self.shapes.remove(key);
        let new = child.is_none();
        let result = Shape::insert(&mut child, keys);
        if let Some(child) = child {
            self.shapes.insert(key.to_owned(), child);
            if new && is_index(key) {
                self.indexes += 1;
            }
        }
        result
    }
}

impl Shape {
    /// Records `keys` below this node; `Err` when they clash with what is there.
    fn insert(slot: &mut Option<Shape>, keys: &[String]) -> Result<(), ()> {
        match (keys.split_first(), slot.as_mut()) {
            (None, None) => {
                *slot = Some(Shape::Scalar);
                Ok(())
            }
            (None, Some(_)) => Err(()),
            (Some((key, [])), None) if key.is_empty() => {
                *slot = Some(Shape::List);
                Ok(())
            }
            (Some((key, [])), Some(Shape::List)) if key.is_empty() => Ok(()),
            (Some((key, rest)), None) if !key.is_empty() && joins(&Children::default(), key) => {
                let mut children = Children::default();
                children.insert(key, rest)?;
                *slot = Some(Shape::Hash(children));
                Ok(())
            }
            (Some((key, rest)), Some(Shape::Hash(children)))
                if !key.is_empty() && joins(children, key) =>
            {
                children.insert(key, rest)
            }
            _ => Err(()),
        }
    }
}

/// Parameters parsed from a form, in the order they came, each name and value decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormParams {
    pairs: Vec<(String, String)>,
}

/// Bytes a form encoder may leave raw: letters, digits, `*-._~`, `+` (a
/// space), `%` escapes, the separators `&` and `=`, and the brackets and
/// punctuation some Stripe libraries and curl leave unescaped. Never `;`
/// (a separator to some parsers), `#`, controls or non-ASCII bytes.
fn is_plain_byte(byte: u8) -> bool {
    byte.is_ascii_graphic() && !matches!(byte, b';' | b'#')
}

/// Decodes one name or value: `+` is a space, `%XX` a byte, and the result must be UTF-8.
fn decode(raw: &str) -> Result<String, FormError> {
    let bytes = raw.as_bytes();
    for (at, _) in raw.match_indices('%') {
        let escape = bytes.get(at + 1..at + 3);
        if !escape.is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) {
            return Err(FormError::BadEncoding(
                "a `%` not followed by two hex digits".to_owned(),
            ));
        }
    }
    let spaced = raw.replace('+', " ");
    percent_decode(spaced.as_bytes())
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| FormError::BadEncoding("an escape that is not UTF-8".to_owned()))
}

impl FormParams {
    /// Parses a form body or query string, refusing anything ambiguous.
    pub fn parse(raw: &[u8]) -> Result<Self, FormError> {
        if let Some(byte) = raw.iter().find(|b| !is_plain_byte(**b)) {
            return Err(FormError::BadEncoding(format!(
                "byte 0x{byte:02x} must be percent-encoded"
            )));
        }
        // Every byte is ASCII graphic, so this cannot fail.
        let text = std::str::from_utf8(raw)
            .map_err(|_| FormError::BadEncoding("the form is not ASCII".to_owned()))?;
        let mut pairs = Vec::new();
        let mut shapes: BTreeMap<String, Option<Shape>> = BTreeMap::new();
        for piece in text.split('&').filter(|piece| !piece.is_empty()) {
            let Some((raw_name, raw_value)) = piece.split_once('=') else {
                return Err(FormError::BadName(decode(piece).unwrap_or_default()));
            };
            if pairs.len() == MAX_PARAMS {
                return Err(FormError::TooMany);
            }
            let decoded = decode(raw_name)?;
            let name = Name::parse(&decoded)?;
            let value = decode(raw_value)?;
            let slot = shapes.entry(name.base.clone()).or_default();
            let full = name.to_string();
            if Shape::insert(slot, &name.keys).is_err() {
                let repeated = !name.appends() && pairs.iter().any(|(seen, _)| *seen == full);
                return Err(if repeated {
                    FormError::Repeated(full)
                } else {
                    FormError::Conflict(name.base)
                });
            }
            pairs.push((full, value));
        }
        Ok(Self { pairs })
    }

    /// The form as a client library would send it, from the parsed pairs alone.
    pub fn encode(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &self.pairs {
            out.append_pair(name, value);
        }
        out.finish()
    }

    /// The form encoded with every top-level parameter of `names` left out
    /// and `added` appended: the same request, moved to another page.
    pub fn encode_replacing(&self, names: &[&str], added: &[(&str, &str)]) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &self.pairs {
            if !names.contains(&name.as_str()) {
                out.append_pair(name, value);
            }
        }
        for (name, value) in added {
            out.append_pair(name, value);
        }
        out.finish()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Every parameter as `(full name, value)`, in the order given.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The first parameter's full name, for an error that names it.
    pub fn first_name(&self) -> Option<&str> {
        self.pairs.first().map(|(name, _)| name.as_str())
    }

    /// A top-level parameter's value, when it is a plain value (not a hash or list).
    pub fn scalar(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_str())
    }

    /// Whether `name` is given in any shape (`name`, `name[…]`).
    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| {
            n.strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('['))
        })
    }
}

#[cfg(test)]
mod tests;
