//! Which requests a key may make: path normalization and allowlist patterns.
//!
//! An entry is `PATH` or `METHOD PATH`. In a path pattern `*` matches any run
//! of characters, `/` included, as IAM resource patterns do, so
//! `/v1/payment_intents/*` covers `/v1/payment_intents/pi_1/confirm`.
//! Patterns are matched against the raw path only after [`check_path`] has
//! refused every form that a server might read differently from the broker.

use std::fmt;

use serde::{Deserialize, Serialize};
use wildmatch::WildMatch;

/// HTTP methods an allowlist entry may name.
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// One allowlist entry, parsed once when the key is issued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndpointRule {
    method: Option<String>,
    pattern: String,
    matcher: WildMatch,
}

impl EndpointRule {
    /// Whether this entry allows `method` on `path` (a path already passed by [`check_path`]).
    pub fn allows(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method) && self.matcher.matches(path)
    }

    /// The method this entry names, if it names one.
    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// The path pattern: literal characters and `*` for any run.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether this entry names `method path` exactly, with no wildcard:
    /// how a key is allowed a list or search endpoint.
    pub fn names_exactly(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method)
            && !self.pattern.contains('*')
            && self.pattern == path
    }

    /// Whether every request this entry allows, `wider` allows too: a role's
    /// bound on the keys its tokens issue.
    ///
    /// `wider`'s pattern must match this one with this one's `*` taken as a
    /// character only a `*` of `wider` can stand for: then whatever run each
    /// `*` here stands for, the same `*` there covers it. Patterns too long to
    /// compare cheaply are taken as not within.
    pub fn within(&self, wider: &EndpointRule) -> bool {
        let method_within = match (&wider.method, &self.method) {
            (None, _) => true,
            (Some(wide), Some(narrow)) => wide == narrow,
            (Some(_), None) => false,
        };
        method_within && pattern_within(self.pattern.as_bytes(), wider.pattern.as_bytes())
    }
}

/// Most cells [`pattern_within`] fills: far beyond any real allowlist entry.
const MAX_PATTERN_CELLS: usize = 1 << 20;

/// Whether glob `wide` covers every path glob `narrow` matches (see [`EndpointRule::within`]).
fn pattern_within(narrow: &[u8], wide: &[u8]) -> bool {
    if (narrow.len() + 1).saturating_mul(wide.len() + 1) > MAX_PATTERN_CELLS {
        return false;
    }
    // covered[j]: wide[..i] matches narrow[..j], row by row over i.
    let mut covered = vec![false; narrow.len() + 1];
    covered[0] = true;
    for &w in wide {
        let mut next = vec![false; narrow.len() + 1];
        if w == b'*' {
            // A `*` stands for any run of `narrow`, its `*`s included.
            let mut reached = false;
            for j in 0..=narrow.len() {
                reached |= covered[j];
                next[j] = reached;
            }
        } else {
            for j in 1..=narrow.len() {
                next[j] = covered[j - 1] && narrow[j - 1] == w && w != b'*';
            }
        }
        covered = next;
    }
    covered[narrow.len()]
}

impl TryFrom<String> for EndpointRule {
    type Error = String;

    fn try_from(entry: String) -> Result<Self, Self::Error> {
        let entry = entry.trim();
        let (method, pattern) = match entry.split_once(char::is_whitespace) {
            Some((method, pattern)) => {
                let method = method.to_ascii_uppercase();
                if !METHODS.contains(&method.as_str()) {
                    return Err(format!("`{method}` is not an HTTP method"));
                }
                (Some(method), pattern.trim())
            }
            None => (None, entry),
        };
        if !pattern.starts_with('/') {
            return Err(format!(
                "`{entry}` must be `PATH` or `METHOD PATH` with PATH starting with /"
            ));
        }
        if pattern.chars().any(char::is_whitespace) {
            return Err(format!("`{entry}` has whitespace inside its path"));
        }
        // `?` would be a one-character wildcard to the matcher, but a path
        // never holds one (it starts the query), so it can only be a mistake.
        if pattern.contains('?') {
            return Err(format!(
                "`{entry}` has a `?`: paths have no query part here"
            ));
        }
        Ok(Self {
            method,
            matcher: WildMatch::new(pattern),
            pattern: pattern.to_owned(),
        })
    }
}

impl From<EndpointRule> for String {
    fn from(rule: EndpointRule) -> Self {
        rule.to_string()
    }
}

impl fmt::Display for EndpointRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.method {
            Some(method) => write!(f, "{method} {}", self.pattern),
            None => f.write_str(&self.pattern),
        }
    }
}

/// Refuses a path that is not in plain normal form, with the reason.
///
/// Only `[A-Za-z0-9_/.-]` may appear: percent-encoding, `;`, backslashes and
/// NUL are all ways a path could name one endpoint to the broker and another
/// to upstream, so none of them reaches matching, valuation or upstream.
/// Dot segments and empty segments are refused for the same reason.
pub fn check_path(path: &str) -> Result<(), String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("path must start with /".to_owned());
    };
    if let Some(bad) = path
        .bytes()
        .find(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'/' | b'.' | b'-')))
    {
        return Err(format!(
            "path may hold only letters, digits and _ / . - (found byte 0x{bad:02x})"
        ));
    }
    for segment in rest.split('/') {
        match segment {
            "" => return Err("path must not contain empty segments".to_owned()),
            "." | ".." => return Err("path must not contain dot segments".to_owned()),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(entry: &str) -> EndpointRule {
        EndpointRule::try_from(entry.to_owned()).unwrap()
    }

    #[test]
    fn star_spans_segments() {
        let r = rule("/v1/payment_intents/*");
        assert!(r.allows("GET", "/v1/payment_intents/pi_1"));
        assert!(r.allows("POST", "/v1/payment_intents/pi_1/confirm"));
        assert!(!r.allows("POST", "/v1/payment_intents"));
        assert!(!r.allows("POST", "/v1/refunds"));
    }

    #[test]
    fn method_restricts_and_matching_is_case_sensitive() {
        let r = rule("post /v1/refunds");
        assert_eq!(r.to_string(), "POST /v1/refunds");
        assert!(r.allows("POST", "/v1/refunds"));
        assert!(!r.allows("post", "/v1/refunds"));
        assert!(!r.allows("GET", "/v1/refunds"));
        assert!(!r.allows("POST", "/v1/refunds/re_1"));
        assert!(!r.allows("POST", "/v1/Refunds"));
        assert!(r.names_exactly("POST", "/v1/refunds"));
        assert!(
            !rule("GET /v1/payment_intents/*").names_exactly("GET", "/v1/payment_intents/search")
        );
    }

    #[test]
    fn exact_patterns_and_inner_stars() {
        assert!(rule("/v1/*/confirm").allows("POST", "/v1/payment_intents/pi_1/confirm"));
        assert!(!rule("/v1/*/confirm").allows("POST", "/v1/payment_intents/pi_1/capture"));
        assert!(rule("/*").allows("GET", "/anything/at/all"));
        assert!(rule("/a*b*c").allows("GET", "/aXbYbZc"));
        assert!(!rule("/a*b*c").allows("GET", "/aXbYbZ"));
    }

    #[test]
    fn bad_entries_are_refused() {
        for entry in [
            "",
            "*",
            "v1/refunds",
            "FETCH /v1/refunds",
            "POST",
            "POST /v1/a b",
        ] {
            assert!(EndpointRule::try_from(entry.to_owned()).is_err(), "{entry}");
        }
    }

    #[test]
    fn path_tricks_are_refused() {
        for path in [
            "/v1/payment_intents/../refunds",
            "/v1/./refunds",
            "/v1/payment_intents/%2e%2e/refunds",
            "/v1/payment_intents/%2E%2E/refunds",
            "/v1/payment_intents%2frefunds",
            "/v1/payment_intents%2Frefunds",
            "/v1//refunds",
            "/v1/refunds/",
            "/v1\\refunds",
            "/v1/%5crefunds",
            "v1/refunds",
            "/v1/payment%5Fintents",
            "/v1/%70ayment_intents",
            "/v1/refunds;x",
            "/v1/refunds\0",
            "/v1/customers/cus%20x",
        ] {
            assert!(check_path(path).is_err(), "{path}");
        }
        assert!(check_path("/v1/payment_intents/pi_1/confirm").is_ok());
        assert!(check_path("/v1/a-b/c.d").is_ok());
    }

    #[test]
    fn an_entry_is_within_a_wider_one_only_when_it_allows_nothing_more() {
        let rule = |text: &str| EndpointRule::try_from(text.to_owned()).unwrap();
        let within = |narrow: &str, wide: &str| rule(narrow).within(&rule(wide));
        assert!(within(
            "POST /v1/payment_intents",
            "POST /v1/payment_intents"
        ));
        assert!(within(
            "POST /v1/payment_intents/*/confirm",
            "POST /v1/payment_intents/*"
        ));
        assert!(within(
            "POST /v1/payment_intents/pi_1/capture",
            "/v1/payment_intents/*"
        ));
        assert!(within("GET /v1/payment_intents/*", "GET /v1/*"));
        assert!(within("GET /v1/a*b*c", "GET /v1/a*c"));
        // Wider than the role: a method it does not name, a `*` where it has text.
        assert!(!within("/v1/payment_intents", "POST /v1/payment_intents"));
        assert!(!within(
            "POST /v1/payment_intents/*",
            "POST /v1/payment_intents/*/confirm"
        ));
        assert!(!within("POST /v1/*", "POST /v1/payment_intents/*"));
        assert!(!within(
            "GET /v1/payment_intents*",
            "GET /v1/payment_intents"
        ));
        assert!(!within(
            "GET /v1/payment_intents/search",
            "GET /v1/payment_intents"
        ));
        let long = format!("GET /v1/{}", "a*".repeat(2000));
        assert!(!within(&long, &long), "too long to compare is not within");
    }
}
