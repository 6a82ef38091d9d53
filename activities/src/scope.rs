//! What an attempt's key and Stripe request are named and bounded by: the
//! key's label and TTL, the Stripe idempotency key, and the metadata an
//! order's PaymentIntents are read by.

use std::time::Duration;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use sha2::{Digest, Sha256};

/// Bytes the broker's label alphabet lacks (whitespace, controls; non-ASCII is
/// always encoded), plus `%` itself so that an encoded label reads one way.
const OUTSIDE_LABEL_ALPHABET: &AsciiSet = &CONTROLS.add(b' ').add(b'%');

/// What every key label the activities ask for starts with.
pub const LABEL_PREFIX: &str = "temporal-";

/// Longest label the broker takes.
const MAX_LABEL: usize = 255;

/// Longest idempotency key Stripe takes.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// How much longer than schedule_to_close a key lives.
const TTL_MARGIN_NUMERATOR: u128 = 6;
const TTL_MARGIN_DENOMINATOR: u128 = 5;

/// `temporal-<workflowId>-<activityId>`, percent-encoding what the broker's
/// label alphabet lacks. A label past 255 characters keeps its activity id and
/// as much of the workflow id as fits, then a hash of the whole workflow id.
pub fn key_label(workflow_id: &str, activity_id: &str) -> String {
    let workflow = utf8_percent_encode(workflow_id, OUTSIDE_LABEL_ALPHABET).to_string();
    let activity = utf8_percent_encode(activity_id, OUTSIDE_LABEL_ALPHABET).to_string();
    let label = format!("temporal-{workflow}-{activity}");
    if label.len() <= MAX_LABEL {
        return label;
    }
    let digest = &hex::encode(Sha256::digest(workflow_id.as_bytes()))[..16];
    let room = MAX_LABEL.saturating_sub("temporal-".len() + 1 + digest.len() + 1 + activity.len());
    let mut cut = room.min(workflow.len());
    while !workflow.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("temporal-{}~{digest}-{activity}", &workflow[..cut])
}

/// Where the key's TTL came from, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlSource {
    /// The `x-schedule-to-close-ms` header or the input field.
    ScheduleToClose,
    /// Neither was given: the attempt's own deadline, which may be shorter.
    Deadline,
    /// Neither, and no deadline: the broker's maximum.
    Maximum,
}

/// A key's time to live and how it was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTtl {
    /// Whole seconds, at least 1.
    pub seconds: u64,
    /// What it was computed from.
    pub source: TtlSource,
    /// Whether it was cut to the broker's maximum.
    pub clamped: bool,
}

/// schedule_to_close × 1.2, rounded up to whole seconds; without it (or
/// with zero, Temporal's "unset") the remaining deadline × 1.2; clamped to `max`.
pub fn key_ttl(
    schedule_to_close: Option<Duration>,
    until_deadline: Option<Duration>,
    max: Duration,
) -> KeyTtl {
    // Zero means unset, as it does to Temporal.
    let schedule_to_close = schedule_to_close.filter(|timeout| !timeout.is_zero());
    let (base, source) = match (schedule_to_close, until_deadline) {
        (Some(timeout), _) => (Some(timeout), TtlSource::ScheduleToClose),
        (None, Some(remaining)) => (Some(remaining), TtlSource::Deadline),
        (None, None) => (None, TtlSource::Maximum),
    };
    let max_seconds = max.as_secs().max(1);
    let wanted = base.map_or(max_seconds, |base| {
        let scaled_millis = base.as_millis() * TTL_MARGIN_NUMERATOR;
        let denominator = TTL_MARGIN_DENOMINATOR * 1000;
        u64::try_from(scaled_millis.div_ceil(denominator)).unwrap_or(u64::MAX)
    });
    KeyTtl {
        seconds: wanted.clamp(1, max_seconds),
        source,
        clamped: wanted > max_seconds,
    }
}

/// Bytes an `Idempotency-Key` cannot carry as they are: the broker takes
/// printable ASCII without spaces, and a control character would make the
/// header invalid. `%` is not among them, so that keys issued before this
/// encoding existed (all printable) come out exactly as they did.
const OUTSIDE_HEADER: &AsciiSet = &CONTROLS.add(b' ');

/// In a per-checkout key, `%` and `:` are encoded too, so that the parts read one way.
const OUTSIDE_KEY_PART: &AsciiSet = &OUTSIDE_HEADER.add(b'%').add(b':');

/// The Stripe `Idempotency-Key` of an activity's request: the same on every
/// attempt, different per activity and order, and always printable ASCII
/// (anything else percent-encoded; hashed past 255 characters).
///
/// With a `checkout_id` (the checkout workflow's first-execution run id) it
/// is also different per checkout: a new checkout that reuses a workflow id
/// never gets an earlier checkout's PaymentIntent back, while a reset or
/// continue-as-new of the same checkout keeps the key and cannot charge
/// twice. Without one (callers that predate it), the key is what it always was.
pub fn idempotency_key(
    activity_type: &str,
    checkout_id: Option<&str>,
    workflow_id: &str,
    activity_id: &str,
    order_id: &str,
) -> String {
    let key = match checkout_id {
        Some(checkout) => {
            let part = |text: &str| utf8_percent_encode(text, OUTSIDE_KEY_PART).to_string();
            format!(
                "keylease:{activity_type}:c:{}:{}:{}:{}",
                part(checkout),
                part(workflow_id),
                part(activity_id),
                part(order_id)
            )
        }
        None => {
            let raw = format!("keylease:{activity_type}:{workflow_id}:{activity_id}:{order_id}");
            utf8_percent_encode(&raw, OUTSIDE_HEADER).to_string()
        }
    };
    if key.len() <= MAX_IDEMPOTENCY_KEY {
        return key;
    }
    format!(
        "keylease:{activity_type}:sha256:{}",
        hex::encode(Sha256::digest(key.as_bytes()))
    )
}

/// A key for a further request of the same attempt (e.g. `cancel`),
/// derived from the attempt's key: stable, and still within 255 characters.
pub fn derived_key(key: &str, suffix: &str) -> String {
    let derived = format!("{key}:{suffix}");
    if derived.len() <= MAX_IDEMPOTENCY_KEY {
        return derived;
    }
    format!(
        "keylease:{suffix}:sha256:{}",
        hex::encode(Sha256::digest(derived.as_bytes()))
    )
}

/// The metadata pair an order's PaymentIntents are found by (a key's
/// `allowed_metadata`, a search's clause): `order_id` itself when it fits in
/// a search query's quotes as the broker takes it (printable ASCII without
/// quotes or backslashes), else `order_key`, a digest of it, which `charge`
/// writes too.
pub fn order_pair(order_id: &str) -> (&'static str, String) {
    let plain = order_id
        .bytes()
        .all(|b| (b.is_ascii_graphic() || b == b' ') && !matches!(b, b'\'' | b'"' | b'\\'));
    if plain && !order_id.is_empty() {
        return ("order_id", order_id.to_owned());
    }
    let digest = hex::encode(Sha256::digest(order_id.as_bytes()));
    ("order_key", format!("sha256-{}", &digest[..32]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_is_found_by_its_id_or_by_a_digest_when_it_does_not_fit_a_query() {
        assert_eq!(order_pair("o-1 A"), ("order_id", "o-1 A".to_owned()));
        for awkward in ["ordé-1", "o'1", "o\"1", "o\\1", "订单\t7"] {
            let (name, value) = order_pair(awkward);
            assert_eq!(name, "order_key", "{awkward:?}");
            assert!(value.starts_with("sha256-") && value.len() == 39, "{value}");
            assert!(
                value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            );
            assert_eq!(order_pair(awkward).1, value, "stable");
        }
        assert_ne!(order_pair("ordé-1").1, order_pair("ordé-2").1);
    }

    #[test]
    fn labels_are_exact_and_encode_what_the_broker_refuses() {
        assert_eq!(key_label("order-42", "charge"), "temporal-order-42-charge");
        assert_eq!(key_label("a b%c", "charge"), "temporal-a%20b%25c-charge");
        assert_eq!(
            key_label("zürich\n", "refund"),
            "temporal-z%C3%BCrich%0A-refund"
        );
        let long = key_label(&"w".repeat(400), "charge");
        assert_eq!(long.len(), 255);
        assert!(long.starts_with("temporal-www") && long.ends_with("-charge"));
        assert_ne!(
            key_label(&format!("{}a", "w".repeat(400)), "charge"),
            long,
            "distinct ids stay distinct"
        );
    }

    #[test]
    fn ttl_is_schedule_to_close_plus_a_fifth_rounded_up() {
        let day = Duration::from_secs(86_400);
        let ttl = key_ttl(Some(Duration::from_secs(300)), None, day);
        assert_eq!(
            (ttl.seconds, ttl.source, ttl.clamped),
            (360, TtlSource::ScheduleToClose, false)
        );
        assert_eq!(
            key_ttl(Some(Duration::from_millis(1001)), None, day).seconds,
            2,
            "1.2012 s rounds up"
        );
        assert_eq!(
            key_ttl(Some(Duration::from_millis(10)), None, day).seconds,
            1
        );
        let fallback = key_ttl(None, Some(Duration::from_secs(10)), day);
        assert_eq!(
            (fallback.seconds, fallback.source),
            (12, TtlSource::Deadline)
        );
        let clamped = key_ttl(Some(Duration::from_secs(86_400)), None, day);
        assert_eq!((clamped.seconds, clamped.clamped), (86_400, true));
        assert_eq!(key_ttl(None, None, day).source, TtlSource::Maximum);
        let unset = key_ttl(Some(Duration::ZERO), Some(Duration::from_secs(10)), day);
        assert_eq!(
            (unset.seconds, unset.source),
            (12, TtlSource::Deadline),
            "zero is unset, not a 1 s key"
        );
    }

    #[test]
    fn idempotency_keys_are_stable_and_bounded() {
        assert_eq!(
            idempotency_key("charge", None, "wf", "charge", "o1"),
            "keylease:charge:wf:charge:o1",
            "the key of callers without a checkout id is unchanged"
        );
        assert_ne!(
            idempotency_key("charge", None, "wf", "charge", "o1"),
            idempotency_key("refund", None, "wf", "refund", "o1")
        );
        let long = idempotency_key("charge", None, &"w".repeat(300), "charge", "o1");
        assert!(long.len() <= 255 && long.starts_with("keylease:charge:sha256:"));
        assert_eq!(
            long,
            idempotency_key("charge", None, &"w".repeat(300), "charge", "o1")
        );
    }

    #[test]
    fn idempotency_keys_differ_per_checkout() {
        let first = idempotency_key("charge", Some("run-1"), "wf", "charge", "o1");
        assert_eq!(first, "keylease:charge:c:run-1:wf:charge:o1");
        assert_ne!(
            first,
            idempotency_key("charge", Some("run-2"), "wf", "charge", "o1")
        );
        assert_ne!(
            idempotency_key("charge", Some("r"), "a:b", "charge", "c"),
            idempotency_key("charge", Some("r"), "a", "charge", "b:c"),
            "parts cannot run into each other"
        );
    }

    #[test]
    fn idempotency_keys_are_printable_ascii() {
        for id in ["ordé-1", "订单-7", "tab\there", "sp ace", "50%:off"] {
            for checkout in [None, Some("run-1")] {
                let key = idempotency_key("charge", checkout, id, "charge", id);
                assert!(key.bytes().all(|b| b.is_ascii_graphic()), "{key:?}");
                assert_eq!(key, idempotency_key("charge", checkout, id, "charge", id));
            }
        }
        assert_ne!(
            idempotency_key("charge", Some("r"), "wf", "charge", "a\tb"),
            idempotency_key("charge", Some("r"), "wf", "charge", "a%09b"),
            "an encoded id and its encoding differ"
        );
    }
}
