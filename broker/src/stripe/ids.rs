//! The shape of Stripe's ids: what looks like an object id, where a path
//! names its object, and the test payment methods that are nobody's object.

/// First path segments (after `/v1`) that group resources: the object id comes one segment later.
const NAMESPACES: [&str; 17] = [
    "apps",
    "billing",
    "billing_portal",
    "checkout",
    "climate",
    "entitlements",
    "financial_connections",
    "forwarding",
    "identity",
    "issuing",
    "radar",
    "reporting",
    "sigma",
    "tax",
    "terminal",
    "test_helpers",
    "treasury",
];

/// Segments where an id would stand that name a route, not an object.
pub(super) const STATIC_ROUTES: [&str; 4] =
    ["search", "upcoming", "upcoming_lines", "create_preview"];

/// Stripe's documented test payment methods (`pm_card_visa`,
/// `pm_card_visa_chargeDeclinedInsufficientFunds`, …): nobody's object.
/// Stripe's own ids are `pm_` and a random part, never `pm_card_`.
pub fn is_test_payment_method(id: &str) -> bool {
    id.strip_prefix("pm_card_").is_some_and(|rest| {
        rest.starts_with(|c: char| c.is_ascii_alphanumeric())
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// Whether a path segment is a Stripe object id: a lowercase prefix and `_`,
/// then a random part with a digit or a capital (`pi_3MtwBw…`, `cus_Q1`).
/// Route words (`search`, `history`, `external_accounts`) are not.
pub fn looks_like_id(segment: &str) -> bool {
    let Some((prefix, random)) = segment.rsplit_once('_') else {
        return false;
    };
    prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !random.is_empty()
        && random.bytes().all(|b| b.is_ascii_alphanumeric())
        && random
            .bytes()
            .any(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

/// The index, among a path's segments, where its object id stands.
fn id_index(segments: &[&str]) -> usize {
    // ["v1", resource, id, …] or ["v1", namespace, resource, id, …]
    if segments.get(1).is_some_and(|s| NAMESPACES.contains(s)) {
        3
    } else {
        2
    }
}

/// The object a path names (`/v1/payment_intents/pi_1/confirm` → `pi_1`), if any.
pub fn object_in_path(path: &str) -> Option<&str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    segments
        .get(id_index(&segments))
        .copied()
        .filter(|segment| !STATIC_ROUTES.contains(segment) && looks_like_id(segment))
}

/// The path that reads the object a path names: `/v1/payment_intents/pi_1/confirm` → `/v1/payment_intents/pi_1`.
pub fn object_path(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let end = id_index(&segments) + 1;
    (segments.len() >= end).then(|| format!("/{}", segments[..end].join("/")))
}

/// A Charge id, as a PaymentIntent's `latest_charge` or a decline's `charge` names it.
pub fn charge_id(value: &serde_json::Value) -> Option<&str> {
    value
        .as_str()
        .filter(|id| id.starts_with("ch_") || id.starts_with("py_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_object_a_path_names() {
        assert_eq!(
            object_in_path("/v1/payment_intents/pi_1/confirm"),
            Some("pi_1")
        );
        assert_eq!(object_in_path("/v1/payment_intents"), None);
        assert_eq!(object_in_path("/v1/payment_intents/search"), None);
        assert_eq!(object_in_path("/v1/checkout/sessions/cs_1"), Some("cs_1"));
        assert_eq!(object_in_path("/v1/checkout/sessions"), None);
        assert_eq!(object_in_path("/v1/balance/history"), None);
        assert_eq!(object_in_path("/v1/account/external_accounts"), None);
        assert!(looks_like_id("pi_3MtwBwLkdIwHu7ix28a3tqPa") && looks_like_id("cs_test_a1"));
        assert!(!looks_like_id("pm_card_visa") && !looks_like_id("prod_custom"));
        assert!(is_test_payment_method("pm_card_visa"));
        assert!(is_test_payment_method(
            "pm_card_visa_chargeDeclinedInsufficientFunds"
        ));
        assert!(!is_test_payment_method("pm_card__x") && !is_test_payment_method("pm_card_a-b"));
        assert!(!is_test_payment_method("pm_1AbC") && !is_test_payment_method("pm_card_"));
        assert_eq!(
            object_path("/v1/payment_intents/pi_1/confirm").as_deref(),
            Some("/v1/payment_intents/pi_1")
        );
    }
}
