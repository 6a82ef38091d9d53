//! What a proxied request may be: its method, endpoint, headers and
//! parameters, each checked and turned into exactly what is forwarded.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::form::FormParams;
use crate::store::KeyRecord;
use crate::stripe_api::{
    OBJECT_PARAMS, is_test_payment_method, is_unvalued, looks_like_id, object_in_path,
};

/// Longest idempotency key Stripe takes.
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Longest `Stripe-Version` value forwarded.
const MAX_STRIPE_VERSION: usize = 64;
/// Longest piece of client input echoed in an error message.
const ECHO_LIMIT: usize = 64;

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const STRIPE_VERSION: HeaderName = HeaderName::from_static("stripe-version");
const STRIPE_ACCOUNT: HeaderName = HeaderName::from_static("stripe-account");

/// `text` cut to `limit` bytes on a character boundary, for logs, audit rows and messages.
pub fn bounded(text: &str, limit: usize) -> String {
    let mut cut = limit.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text[..cut].to_owned()
}

/// The proxied methods: GET, POST and DELETE are all Stripe's API uses.
pub fn method(method: &Method) -> Result<&'static str, ApiError> {
    match *method {
        Method::GET => Ok("GET"),
        Method::POST => Ok("POST"),
        Method::DELETE => Ok("DELETE"),
        _ => Err(ApiError::MethodNotAllowed(bounded(
            method.as_str(),
            ECHO_LIMIT,
        ))),
    }
}

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
        let namespaced = namespaced_idempotency_key(&key.label, client_key);
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

/// The parameters of a request, from the one place Stripe's API puts them:
/// the query string of a GET or DELETE, the form body of a POST.
pub fn params(
    method: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<FormParams, ApiError> {
    let query = FormParams::parse(query.unwrap_or("").as_bytes())
        .map_err(|err| ApiError::BadParameter(format!("query string: {err}")))?;
    if method != "POST" {
        if !body.is_empty() {
            return Err(ApiError::BadParameter(format!(
                "a {method} request carries its parameters in the query string, not a body"
            )));
        }
        return Ok(query);
    }
    if let Some(name) = query.first_name() {
        return Err(ApiError::BadParameter(format!(
            "parameter `{}` must be in the form body, not the query string",
            bounded(name, ECHO_LIMIT)
        )));
    }
    if body.is_empty() {
        return Ok(FormParams::default());
    }
    if !is_form(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    FormParams::parse(body).map_err(|err| ApiError::BadParameter(bounded(&err.to_string(), 200)))
}

/// Whether the body is declared `application/x-www-form-urlencoded` (any charset parameter).
fn is_form(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    value.to_str().is_ok_and(|text| {
        text.split(';').next().is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    })
}

/// Parameters of free text, never an object: a value there may look like an id.
const FREE_TEXT: [&str; 12] = [
    "description",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "transfer_group",
    "shipping",
    "return_url",
    "receipt_email",
    "name",
    "email",
    "phone",
    "address",
    "reason",
];

/// Whether a parameter holds the caller's own text: `metadata[…]` at any depth, or free text.
fn is_free_text(name: &str) -> bool {
    let base = name.split('[').next().unwrap_or(name);
    name.starts_with("metadata[") || name.contains("[metadata]") || FREE_TEXT.contains(&base)
}

/// The objects a request names: in its path, in the parameters that always
/// name one, and any other parameter (metadata aside) whose value is shaped
/// like a Stripe id: a confirmation token, an account, a card, a default
/// payment method nested in settings are all objects too, and a list of
/// every such parameter would always be missing the next one.
pub fn named_objects<'a>(path: &'a str, params: &'a FormParams) -> Result<Vec<&'a str>, ApiError> {
    let mut named: Vec<&str> = object_in_path(path).into_iter().collect();
    for (name, value) in params.pairs() {
        if !is_free_text(name) && looks_like_id(value) && !is_test_payment_method(value) {
            named.push(value);
        }
    }
    for name in OBJECT_PARAMS {
        match params.scalar(name) {
            Some(id) if name == "payment_method" && is_test_payment_method(id) => {}
            Some(id) => named.push(id),
            None if params.has(name) => {
                return Err(ApiError::BadParameter(format!(
                    "parameter `{name}` must be a single object id"
                )));
            }
            None => {}
        }
    }
    Ok(named)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn bounded_cuts_on_a_character_boundary() {
        assert_eq!(bounded("héllo", 2), "h");
        assert_eq!(bounded("abc", 10), "abc");
    }
}
