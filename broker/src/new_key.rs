//! Validation of `POST /v1/keys`: the request is parsed into a [`NewKey`]
//! before anything is written, and each failure names its field.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::allowlist::EndpointRule;
use crate::error::ApiError;
use crate::stripe::endpoints::unvalued_reachable;
use crate::usd::MICROS_PER_USD;

/// Largest daily cap a key may carry, in USD: far above any real use, far below overflow.
const MAX_DAILY_USD_CAP: f64 = 1_000_000_000.0;
/// Most metadata pairs a key may carry.
const MAX_METADATA_PAIRS: usize = 20;
/// Longest metadata key and value, as Stripe limits its own metadata.
const MAX_METADATA_KEY: usize = 40;
const MAX_METADATA_VALUE: usize = 500;
/// Most objects a key may be issued for.
const MAX_ALLOWED_OBJECTS: usize = 100;

/// The JSON body as sent; every field is checked by [`NewKey::parse`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueKeyRequest {
    label: Option<Value>,
    vendor: Option<Value>,
    daily_usd_cap: Option<Value>,
    allowed_endpoints: Option<Value>,
    expires_in: Option<Value>,
    metadata: Option<Value>,
    allowed_objects: Option<Value>,
    stripe_account: Option<Value>,
    allowed_metadata: Option<Value>,
}

/// A key request that passed validation.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// 1–255 printable ASCII characters, no whitespace.
    pub label: String,
    /// A vendor the broker is configured for.
    pub vendor: String,
    /// The daily cap in micro-dollars.
    pub daily_cap_micros: i64,
    /// Non-empty allowlist.
    pub allowed_endpoints: Vec<EndpointRule>,
    /// Time to live, whole seconds, within the broker's maximum.
    pub expires_in: Duration,
    /// String pairs for the caller's own bookkeeping.
    pub metadata: BTreeMap<String, String>,
    /// Objects the key may name besides those created under its label
    /// (how a refund key reaches the one PaymentIntent it refunds).
    pub allowed_objects: Vec<String>,
    /// The connected account the key acts as, sent as `Stripe-Account`; none: the platform.
    pub stripe_account: Option<String>,
    /// Objects whose Stripe metadata holds every one of these pairs are
    /// visible to the key in answers (lists, searches, expansions, reads).
    pub allowed_metadata: BTreeMap<String, String>,
}

pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest(message.into())
}

pub(crate) fn required<'a>(value: &'a Option<Value>, field: &str) -> Result<&'a Value, ApiError> {
    value
        .as_ref()
        .filter(|v| !v.is_null())
        .ok_or_else(|| invalid(format!("{field} is required")))
}

impl NewKey {
    /// Checks every field of `request` against the broker's vendors and maximum TTL.
    pub fn parse(
        request: IssueKeyRequest,
        vendors: &[&str],
        max_ttl: Duration,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            label: parse_label(required(&request.label, "label")?)?,
            vendor: parse_vendor(required(&request.vendor, "vendor")?, vendors)?,
            daily_cap_micros: parse_cap(required(&request.daily_usd_cap, "daily_usd_cap")?)?,
            allowed_endpoints: parse_endpoints(required(
                &request.allowed_endpoints,
                "allowed_endpoints",
            )?)?,
            expires_in: parse_expires_in(required(&request.expires_in, "expires_in")?, max_ttl)?,
            metadata: parse_pairs(request.metadata.as_ref(), "metadata")?,
            allowed_objects: parse_allowed_objects(request.allowed_objects.as_ref())?,
            stripe_account: parse_stripe_account(request.stripe_account.as_ref())?,
            allowed_metadata: parse_allowed_metadata(request.allowed_metadata.as_ref())?,
        })
    }
}

/// Whether `label` fits the label alphabet: 1–255 printable ASCII characters without whitespace.
pub(crate) fn is_valid_label(label: &str) -> bool {
    (1..=255).contains(&label.len()) && label.bytes().all(|b| b.is_ascii_graphic())
}

fn parse_label(value: &Value) -> Result<String, ApiError> {
    let label = value
        .as_str()
        .ok_or_else(|| invalid("label must be a string"))?;
    if !is_valid_label(label) {
        return Err(invalid(
            "label must be 1-255 printable ASCII characters without whitespace",
        ));
    }
    Ok(label.to_owned())
}

fn parse_vendor(value: &Value, vendors: &[&str]) -> Result<String, ApiError> {
    let vendor = value
        .as_str()
        .ok_or_else(|| invalid("vendor must be a string"))?;
    if !vendors.contains(&vendor) {
        return Err(invalid(format!(
            "vendor must be one of: {}",
            vendors.join(", ")
        )));
    }
    Ok(vendor.to_owned())
}

fn parse_cap(value: &Value) -> Result<i64, ApiError> {
    parse_usd(value, "daily_usd_cap")
}

/// A USD amount in whole cents from 0 to [`MAX_DAILY_USD_CAP`], as micro-dollars.
pub(crate) fn parse_usd(value: &Value, field: &str) -> Result<i64, ApiError> {
    let usd = value
        .as_f64()
        .filter(|usd| usd.is_finite() && (0.0..=MAX_DAILY_USD_CAP).contains(usd))
        .ok_or_else(|| invalid(format!("{field} must be a number from 0 to 1000000000")))?;
    let cents = (usd * 100.0).round();
    if (usd * 100.0 - cents).abs() > 1e-6 {
        return Err(invalid(format!(
            "{field} must be whole cents (at most two decimals)"
        )));
    }
    Ok(cents as i64 * (MICROS_PER_USD / 100))
}

pub(crate) fn parse_endpoints(value: &Value) -> Result<Vec<EndpointRule>, ApiError> {
    let entries = value
        .as_array()
        .filter(|entries| !entries.is_empty())
        .ok_or_else(|| invalid("allowed_endpoints must be a non-empty list"))?;
    let rules = entries
        .iter()
        .map(|entry| {
            let text = entry
                .as_str()
                .ok_or_else(|| invalid("allowed_endpoints entries must be strings"))?;
            EndpointRule::try_from(text.to_owned())
                .map_err(|why| invalid(format!("allowed_endpoints: {why}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Every key has a finite cap, so it must not reach money the broker cannot count.
    let unvalued = unvalued_reachable(&rules);
    if !unvalued.is_empty() {
        return Err(invalid(format!(
            "allowed_endpoints reach endpoints that move money the broker cannot value: {}",
            unvalued.join(", ")
        )));
    }
    Ok(rules)
}

/// Whether `id` looks like a Stripe object id: `[A-Za-z0-9_]`, 1–255 characters.
fn is_object_id(id: &str) -> bool {
    (1..=255).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn parse_allowed_objects(value: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let ids = value
        .as_array()
        .filter(|ids| ids.len() <= MAX_ALLOWED_OBJECTS)
        .ok_or_else(|| {
            invalid(format!(
                "allowed_objects must be a list of at most {MAX_ALLOWED_OBJECTS} object ids"
            ))
        })?;
    ids.iter()
        .map(|id| {
            id.as_str()
                .filter(|id| is_object_id(id))
                .map(str::to_owned)
                .ok_or_else(|| {
                    invalid("allowed_objects entries must be object ids ([A-Za-z0-9_], 1-255 characters)")
                })
        })
        .collect()
}

pub(crate) fn parse_stripe_account(value: Option<&Value>) -> Result<Option<String>, ApiError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    value
        .as_str()
        .filter(|id| id.starts_with("acct_") && is_object_id(id))
        .map(|id| Some(id.to_owned()))
        .ok_or_else(|| invalid("stripe_account must be an account id like acct_123"))
}

fn parse_expires_in(value: &Value, max_ttl: Duration) -> Result<Duration, ApiError> {
    parse_duration(value, max_ttl, "expires_in")
}

/// A duration of whole seconds, more than 0 and at most `max`.
pub(crate) fn parse_duration(
    value: &Value,
    max: Duration,
    field: &str,
) -> Result<Duration, ApiError> {
    let ttl = match value {
        Value::Number(n) => n.as_u64().map(Duration::from_secs),
        Value::String(s) => parse_duration_text(s),
        _ => None,
    }
    .ok_or_else(|| {
        invalid(format!(
            "{field} must be whole seconds, as a number or a duration like 90s, 5m, 1h30m"
        ))
    })?;
    if ttl.is_zero() || ttl > max {
        return Err(invalid(format!(
            "{field} must be more than 0 and at most {}s",
            max.as_secs()
        )));
    }
    Ok(ttl)
}

/// `90`, `90s`, `5m`, `1h30m`: whole seconds only.
fn parse_duration_text(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let ttl = humantime::parse_duration(text).ok()?;
    (ttl.subsec_nanos() == 0).then_some(ttl)
}

/// `allowed_metadata`: pairs the broker writes into a Stripe search query
/// (`metadata['name']:'value'`), so names are `[A-Za-z0-9_-]` and values
/// non-empty printable ASCII without quotes or backslashes: nothing in them
/// can end the clause and change the query.
fn parse_allowed_metadata(value: Option<&Value>) -> Result<BTreeMap<String, String>, ApiError> {
    let pairs = parse_pairs(value, "allowed_metadata")?;
    let plain_name = |name: &str| {
        name.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    let plain_value = |value: &str| {
        !value.is_empty()
            && value
                .bytes()
                .all(|b| (b.is_ascii_graphic() || b == b' ') && !matches!(b, b'\'' | b'"' | b'\\'))
    };
    if let Some((name, _)) = pairs
        .iter()
        .find(|(name, value)| !plain_name(name) || !plain_value(value))
    {
        return Err(invalid(format!(
            "allowed_metadata.{name}: names are [A-Za-z0-9_-] and values non-empty printable ASCII without quotes or backslashes"
        )));
    }
    Ok(pairs)
}

fn parse_pairs(value: Option<&Value>, field: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(BTreeMap::new());
    };
    let pairs = value
        .as_object()
        .ok_or_else(|| invalid(format!("{field} must be an object of strings")))?;
    if pairs.len() > MAX_METADATA_PAIRS {
        return Err(invalid(format!(
            "{field} holds at most {MAX_METADATA_PAIRS} pairs"
        )));
    }
    pairs
        .iter()
        .map(|(key, value)| {
            let value = value
                .as_str()
                .ok_or_else(|| invalid(format!("{field}.{key} must be a string")))?;
            if key.is_empty() || key.len() > MAX_METADATA_KEY || value.len() > MAX_METADATA_VALUE {
                return Err(invalid(format!(
                    "{field} keys are 1-{MAX_METADATA_KEY} characters and values at most {MAX_METADATA_VALUE}"
                )));
            }
            Ok((key.clone(), value.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DAY: Duration = Duration::from_secs(86_400);

    fn parse(body: Value) -> Result<NewKey, String> {
        let request: IssueKeyRequest = serde_json::from_value(body).map_err(|e| e.to_string())?;
        NewKey::parse(request, &["stripe"], DAY).map_err(|e| e.to_string())
    }

    fn valid() -> Value {
        json!({
            "label": "temporal-wf-charge",
            "vendor": "stripe",
            "daily_usd_cap": 12.34,
            "allowed_endpoints": ["POST /v1/payment_intents"],
            "expires_in": "1h30m",
            "metadata": {"attempt": "1"}
        })
    }

    fn with(field: &str, value: Value) -> Value {
        let mut body = valid();
        body[field] = value;
        body
    }

    #[test]
    fn accepts_a_valid_request() {
        let key = parse(valid()).unwrap();
        assert_eq!(key.daily_cap_micros, 12_340_000);
        assert_eq!(key.expires_in, Duration::from_secs(5400));
        assert_eq!(key.metadata.get("attempt").map(String::as_str), Some("1"));
        assert!(key.allowed_objects.is_empty() && key.stripe_account.is_none());
        let scoped = parse(with("allowed_objects", json!(["pi_1"]))).unwrap();
        assert_eq!(scoped.allowed_objects, vec!["pi_1".to_owned()]);
    }

    #[test]
    fn expires_in_forms() {
        for (form, secs) in [
            (json!(90), 90),
            (json!("90"), 90),
            (json!("90s"), 90),
            (json!("5m"), 300),
        ] {
            assert_eq!(
                parse(with("expires_in", form))
                    .unwrap()
                    .expires_in
                    .as_secs(),
                secs
            );
        }
        for bad in [
            json!(0),
            json!(-5),
            json!(1.5),
            json!("1500ms"),
            json!("soon"),
            json!("25h"),
        ] {
            let err = parse(with("expires_in", bad.clone())).unwrap_err();
            assert!(err.contains("expires_in"), "{bad}: {err}");
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            ("label", json!("has space")),
            ("label", json!("")),
            ("label", json!("x".repeat(256))),
            ("vendor", json!("paypal")),
            ("daily_usd_cap", json!(-1)),
            ("daily_usd_cap", json!(1.005)),
            ("daily_usd_cap", json!("10")),
            ("allowed_endpoints", json!([])),
            ("allowed_endpoints", json!(["v1/refunds"])),
            ("metadata", json!({"a": 1})),
            ("allowed_endpoints", json!(["POST /v1/*"])),
            ("allowed_endpoints", json!(["/v1/payment_intents/*"])),
            ("allowed_objects", json!(["pi_1", "pi 2"])),
            ("allowed_objects", json!("pi_1")),
            ("stripe_account", json!("cus_1")),
            // Written into a Stripe search query: nothing may end its clause.
            ("allowed_metadata", json!({"order_id": "o-1' OR amount>0"})),
            ("allowed_metadata", json!({"order']": "o-1"})),
            ("allowed_metadata", json!({"order_id": ""})),
            ("allowed_metadata", json!({"order_id": "a\\b"})),
        ];
        for (field, value) in cases {
            let err = parse(with(field, value.clone())).unwrap_err();
            assert!(err.contains(field), "{field}={value}: {err}");
        }
        let many: serde_json::Map<String, Value> =
            (0..21).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(
            parse(with("metadata", Value::Object(many)))
                .unwrap_err()
                .contains("metadata")
        );
    }

    #[test]
    fn missing_and_unknown_fields_are_refused() {
        let mut body = valid();
        body.as_object_mut().unwrap().remove("vendor");
        assert!(parse(body).unwrap_err().contains("vendor is required"));
        assert!(
            parse(with("colour", json!("red")))
                .unwrap_err()
                .contains("colour")
        );
    }
}
