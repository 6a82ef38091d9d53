//! The request as the proxy checks it: a known method, the path below the
//! vendor segment, the body within its size and time limits, and the
//! parameters from the one place Stripe's API puts them. Every later step
//! reads what this one produced, and only that is forwarded, re-encoded.

use axum::body::{Body, HttpBody};
use axum::http::{HeaderMap, Method, header};
use bytes::Bytes;

use crate::error::ApiError;
use crate::form::FormParams;
use crate::state::AppState;
use crate::stripe::VENDOR;

/// Largest request body the proxy accepts.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Longest path kept in an audit record or a log line.
pub const AUDIT_PATH_LIMIT: usize = 256;

/// Longest piece of client input echoed in an error message.
pub const ECHO_LIMIT: usize = 64;

/// `text` cut to `limit` bytes on a character boundary, for logs, audit rows and messages.
pub fn bounded(text: &str, limit: usize) -> String {
    let mut cut = limit.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text[..cut].to_owned()
}

/// `/stripe/v1/x` → (`stripe`, `/v1/x`).
pub fn split_vendor(raw_path: &str) -> (&str, &str) {
    let rest = raw_path.strip_prefix('/').unwrap_or(raw_path);
    match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    }
}

/// Stripe is the one upstream: any other first segment names nothing.
pub fn check_vendor(vendor: &str) -> Result<(), ApiError> {
    if vendor == VENDOR {
        Ok(())
    } else {
        Err(ApiError::NotFound("no such vendor".to_owned()))
    }
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

/// Most pieces (chunks, reads) a body may arrive in before its pieces must
/// average [`MIN_PIECE_BYTES`]: each piece costs the broker the same work
/// whatever it holds, so a body of one-byte chunks would cost seconds.
pub const FREE_PIECES: usize = 64;

/// The average size, in bytes, a body's pieces beyond [`FREE_PIECES`] must keep.
pub const MIN_PIECE_BYTES: usize = 256;

/// A request's body, and its share of the bytes the broker holds in bodies
/// at once ([`AppState::body_budget`]), given back when the request ends.
pub struct HeldBody {
    /// The body.
    pub bytes: Bytes,
    _share: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// The body, within the size limit, the body read timeout, the piece rule
/// ([`FREE_PIECES`]) and the broker's bound on body bytes held at once.
pub async fn read_body(state: &AppState, body: Body) -> Result<HeldBody, ApiError> {
    if body.size_hint().lower() > BODY_LIMIT as u64 {
        return Err(ApiError::PayloadTooLarge(BODY_LIMIT));
    }
    let timeout = state.body_timeout();
    match tokio::time::timeout(timeout, collect(state, body)).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::RequestTimeout(timeout.as_secs())),
    }
}

async fn collect(state: &AppState, mut body: Body) -> Result<HeldBody, ApiError> {
    use http_body_util::BodyExt;
    let mut bytes = bytes::BytesMut::new();
    let mut share: Option<tokio::sync::OwnedSemaphorePermit> = None;
    let mut pieces = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|_| ApiError::BadParameter("request body could not be read".to_owned()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pieces += 1;
        if bytes.len() + data.len() > BODY_LIMIT {
            return Err(ApiError::PayloadTooLarge(BODY_LIMIT));
        }
        if pieces > FREE_PIECES && bytes.len() + data.len() < pieces * MIN_PIECE_BYTES {
            return Err(ApiError::BadParameter(format!(
                "the request body arrived in too many small pieces: past {FREE_PIECES}, \
                 pieces must average {MIN_PIECE_BYTES} bytes"
            )));
        }
        bytes.extend_from_slice(&data);
        // Whole KiB of the budget for what the buffer holds allocated (it
        // grows by doubling), taken as it grows; past the budget the body
        // is dropped at once.
        let needed = bytes.capacity().div_ceil(1024);
        let held = share.as_ref().map_or(0, |s| s.num_permits());
        if needed > held {
            let more = state
                .body_budget()
                .clone()
                .try_acquire_many_owned(u32::try_from(needed - held).unwrap_or(u32::MAX))
                .map_err(|_| ApiError::Busy)?;
            match &mut share {
                Some(share) => share.merge(more),
                None => share = Some(more),
            }
        }
    }
    Ok(HeldBody {
        bytes: bytes.freeze(),
        _share: share,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_cuts_on_a_character_boundary() {
        assert_eq!(bounded("héllo", 2), "h");
        assert_eq!(bounded("abc", 10), "abc");
    }
}
