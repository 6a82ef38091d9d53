//! What a key may do with this request: call this endpoint, name these
//! objects, send these headers (and act as this `Stripe-Account`).

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use super::canonical::{ECHO_LIMIT, bounded};
use super::upstream::IDEMPOTENCY_KEY;
use super::visible::PathReach;
use crate::error::ApiError;
use crate::form::FormParams;
use crate::key::KeyRecord;
use crate::state::AppState;
use crate::stripe::VENDOR;
use crate::stripe::endpoints::{is_unvalued, unvalued_param};
use crate::stripe::ids::object_in_path;
use crate::stripe::params::named_objects;

/// Longest idempotency key Stripe takes.
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Longest `Stripe-Version` value forwarded.
const MAX_STRIPE_VERSION: usize = 64;

const STRIPE_VERSION: HeaderName = HeaderName::from_static("stripe-version");
const STRIPE_ACCOUNT: HeaderName = HeaderName::from_static("stripe-account");

/// The allowlist, the money the broker cannot value, and exact naming of lists.
pub fn check_endpoint(key: &KeyRecord, method: &str, path: &str) -> Result<(), ApiError> {
    if !key
        .allowed_endpoints
        .iter()
        .any(|rule| rule.allows(method, path))
    {
        return Err(ApiError::EndpointNotAllowed(format!(
            "key does not allow {method} {}",
            bounded(path, ECHO_LIMIT)
        )));
    }
    if is_unvalued(method, path) {
        return Err(ApiError::EndpointNotAllowed(format!(
            "{method} {} may move money the broker cannot value",
            bounded(path, ECHO_LIMIT)
        )));
    }
    // A read that names no single object (a list, a search) reaches every
    // object of the account: only a key that names it exactly may make it.
    let names_no_object = object_in_path(path).is_none();
    if method == "GET"
        && names_no_object
        && !key
            .allowed_endpoints
            .iter()
            .any(|rule| rule.names_exactly(method, path))
    {
        return Err(ApiError::EndpointNotAllowed(format!(
            "{method} {} lists objects: allowed_endpoints must name it exactly",
            bounded(path, ECHO_LIMIT)
        )));
    }
    Ok(())
}

/// A search of the account, narrowed at Stripe to the objects the key may
/// see by metadata: the key's `allowed_metadata` clauses come first, ANDed
/// with the client's query.
///
/// Filtering the answer alone is not enough for a search: its `has_more`,
/// and how many pages the broker reads to fill a page, would still tell a
/// key how many hidden objects match any query it writes (`amount:2222`,
/// `metadata['secret']:'…'`). Narrowed at Stripe, everything the search
/// finds is the key's to see. Stripe's query language has no parentheses
/// and does not mix `AND` with `OR`, so a query with `OR` is refused; a key
/// without `allowed_metadata` may not search.
pub fn narrow_search(
    key: &KeyRecord,
    method: &str,
    path: &str,
    params: FormParams,
) -> Result<FormParams, ApiError> {
    if method != "GET" || !path.ends_with("/search") || object_in_path(path).is_some() {
        return Ok(params);
    }
    if key.allowed_metadata.is_empty() {
        return Err(ApiError::EndpointNotAllowed(
            "a search is narrowed to the key's allowed_metadata: this key has none".to_owned(),
        ));
    }
    let asked = match params.scalar("query") {
        Some(query) => query,
        None if params.has("query") => {
            return Err(ApiError::BadParameter(
                "parameter `query` must be a single string".to_owned(),
            ));
        }
        None => "",
    };
    if has_or(asked) {
        return Err(ApiError::BadParameter(
            "parameter `query` may not use OR: the broker ANDs it with the key's allowed_metadata"
                .to_owned(),
        ));
    }
    let mut clauses: Vec<String> = key
        .allowed_metadata
        .iter()
        .map(|(name, value)| format!("metadata['{name}']:'{value}'"))
        .collect();
    if !asked.trim().is_empty() {
        clauses.push(asked.to_owned());
    }
    let narrowed = params.encode_replacing(&["query"], &[("query", &clauses.join(" AND "))]);
    FormParams::parse(narrowed.as_bytes()).map_err(|err| ApiError::BadParameter(err.to_string()))
}

/// Whether `query` holds the word `or` in any case, outside its quoted
/// values (`'…'` or `"…"`, a backslash escaping the next character, as
/// Stripe reads them): a value such as `'OR-1001'` is an order id, not an
/// operator. (Should a query be read differently, Stripe refuses any query
/// that mixes `AND` with `OR`, and the broker's clauses are ANDed.)
fn has_or(query: &str) -> bool {
    let mut unquoted = String::with_capacity(query.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in query.chars() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(open) if c == open => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None => {
                unquoted.push(c);
                continue;
            }
        }
        // A quoted value (and its quotes) reads as a space between words.
        unquoted.push(' ');
    }
    let lower = unquoted.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let is_word = |at: Option<&u8>| at.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    lower.match_indices("or").any(|(at, _)| {
        !is_word(at.checked_sub(1).and_then(|i| bytes.get(i))) && !is_word(bytes.get(at + 2))
    })
}

/// Refuses a parameter that moves money the broker cannot value on a call
/// otherwise free of money (a customer's `balance`).
pub fn check_money_params(method: &str, path: &str, params: &FormParams) -> Result<(), ApiError> {
    let names = params.pairs().map(|(name, _)| name);
    match unvalued_param(method, path, names) {
        Some((name, call)) => Err(ApiError::EndpointNotAllowed(format!(
            "parameter `{name}` of {call} moves money the broker cannot value"
        ))),
        None => Ok(()),
    }
}

/// Whether `key` reaches object `id`, created under label `owner` (`None`:
/// never seen): only if the key was issued for it, or a key of the same
/// label created it (so every attempt of an activity sees its own).
fn reaches(key: &KeyRecord, id: &str, owner: Option<&str>) -> bool {
    key.allowed_objects.iter().any(|allowed| allowed == id) || owner == Some(&*key.namespace())
}

fn check_object(key: &KeyRecord, id: &str, owner: Option<&str>) -> Result<(), ApiError> {
    if reaches(key, id, owner) {
        return Ok(());
    }
    Err(ApiError::ObjectNotAllowed(format!(
        "key may not reach object {}",
        bounded(id, ECHO_LIMIT)
    )))
}

/// The object the path names, whose owner was read with the key. A key
/// with `allowed_metadata` may read an object it does not otherwise reach:
/// whether it sees it is decided on the answer.
pub fn check_path_object(
    key: &KeyRecord,
    method: &str,
    path: &str,
    owner: Option<&str>,
) -> Result<PathReach, ApiError> {
    let Some(id) = object_in_path(path) else {
        return Ok(PathReach::Checked);
    };
    let reads_the_object = method == "GET" && path.rsplit('/').next() == Some(id);
    if !reaches(key, id, owner) && reads_the_object && !key.allowed_metadata.is_empty() {
        return Ok(PathReach::OnAnswer);
    }
    check_object(key, id, owner).map(|()| PathReach::Checked)
}

/// The objects the parameters name; each one's owner is read only when the
/// key was not issued for it. A key issued for a connected account may name
/// that account (`on_behalf_of`, `transfer_data[destination]`).
pub async fn check_named_objects(
    state: &AppState,
    key: &KeyRecord,
    method: &str,
    path: &str,
    params: &FormParams,
) -> Result<(), ApiError> {
    let path_object = object_in_path(path);
    for id in named_objects(method, path, params)? {
        // The path's object was checked with the key, and its owner cannot change.
        if Some(id) == path_object
            || key.stripe_account.as_deref() == Some(id)
            || reaches(key, id, None)
        {
            continue;
        }
        let owner = state.store().object(VENDOR, id).await?.map(|o| o.label);
        check_object(key, id, owner.as_deref())?;
    }
    Ok(())
}

/// The one value of `name`, if given; refused when given twice or not printable ASCII.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadParameter(format!(
            "header {name} is given more than once"
        )));
    }
    let text = value
        .to_str()
        .ok()
        .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::BadParameter(format!(
                "header {name} must be printable ASCII without spaces"
            ))
        })?;
    Ok(Some(text))
}

/// The client's `Idempotency-Key` in the key label's own namespace.
///
/// Attempts of one activity share a label, so they share the namespace and
/// a retry replays; no key of another label can collide with or replay it.
pub fn namespaced_idempotency_key(label: &str, client_key: &str) -> String {
    let space = &hex::encode(Sha256::digest(label.as_bytes()))[..16];
    let plain = format!("kl-{space}-r-{client_key}");
    if plain.len() <= MAX_IDEMPOTENCY_KEY {
        plain
    } else {
        let digest = hex::encode(Sha256::digest(client_key.as_bytes()));
        format!("kl-{space}-h-{digest}")
    }
}

/// The headers forwarded upstream, checked, and the client's own idempotency key.
pub struct ForwardHeaders {
    /// Sent upstream as they are.
    pub headers: HeaderMap,
    /// The client's `Idempotency-Key`, put back on the answer.
    pub client_idempotency_key: Option<HeaderValue>,
}

/// Checks the headers a client may pass upstream and builds what is sent.
pub fn forward_headers(key: &KeyRecord, headers: &HeaderMap) -> Result<ForwardHeaders, ApiError> {
    let mut out = HeaderMap::new();
    let mut client_idempotency_key = None;
    if let Some(client_key) = single(headers, &IDEMPOTENCY_KEY)? {
        if client_key.len() > MAX_IDEMPOTENCY_KEY {
            return Err(ApiError::BadParameter(format!(
                "Idempotency-Key is longer than {MAX_IDEMPOTENCY_KEY} characters"
            )));
        }
        let namespaced = namespaced_idempotency_key(&key.namespace(), client_key);
        out.insert(IDEMPOTENCY_KEY, header_value(&namespaced)?);
        client_idempotency_key = Some(header_value(client_key)?);
    }
    if let Some(version) = single(headers, &STRIPE_VERSION)? {
        if version.len() > MAX_STRIPE_VERSION {
            return Err(ApiError::BadParameter(
                "Stripe-Version is too long".to_owned(),
            ));
        }
        out.insert(STRIPE_VERSION, header_value(version)?);
    }
    let account = single(headers, &STRIPE_ACCOUNT)?;
    match (account, key.stripe_account.as_deref()) {
        (Some(asked), Some(issued)) if asked == issued => {}
        (Some(asked), _) => {
            return Err(ApiError::AccountNotAllowed(format!(
                "key may not act as Stripe-Account {}",
                bounded(asked, ECHO_LIMIT)
            )));
        }
        (None, _) => {}
    }
    // A key issued for a connected account always acts as it.
    if let Some(issued) = &key.stripe_account {
        out.insert(STRIPE_ACCOUNT, header_value(issued)?);
    }
    Ok(ForwardHeaders {
        headers: out,
        client_idempotency_key,
    })
}

fn header_value(text: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(text)
        .map_err(|_| ApiError::BadParameter("a header value is not valid".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn or_is_found_as_a_word_in_any_case() {
        for query in ["a:'1' OR b:'2'", "a:'1'or b:'2'", "x:'y' Or", "OR"] {
            assert!(has_or(query), "{query}");
        }
        for query in [
            "status:'succeeded'",
            "metadata['order_id']:'o-1'",
            "currency:'usd' AND amount>1",
            "origin:'x'",
            // In a quoted value: an order id, not an operator.
            "metadata['order_id']:'OR-1001'",
            "metadata['order_id']:'gift or card'",
            r#"metadata["order_id"]:"x OR y""#,
            r"metadata['order_id']:'it\'s or'",
        ] {
            assert!(!has_or(query), "{query}");
        }
        // An escaped quote does not end the value; a real one does.
        assert!(has_or(r"metadata['a']:'x\'' OR b:'2'"));
        assert!(has_or("metadata['a']:'x' OR metadata['b']:'or'"));
    }

    #[test]
    fn idempotency_keys_are_namespaced_per_label_and_bounded() {
        let a = namespaced_idempotency_key("temporal-wf-charge", "order-1");
        assert_eq!(
            a,
            namespaced_idempotency_key("temporal-wf-charge", "order-1")
        );
        assert_ne!(
            a,
            namespaced_idempotency_key("temporal-other-charge", "order-1")
        );
        assert!(a.ends_with("-r-order-1"));
        let long = namespaced_idempotency_key("l", &"k".repeat(255));
        assert!(long.len() <= 255 && long.contains("-h-"));
        assert_ne!(long, namespaced_idempotency_key("l", &"k".repeat(254)));
    }
}
