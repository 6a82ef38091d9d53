//! Calling Stripe with the broker's secret, and reading its answer.

use secrecy::ExposeSecret;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

use super::client_secret;
use crate::error::ApiError;
use crate::key::KeyRecord;
use crate::state::AppState;
use crate::stripe::answers::price;

/// The header of a request's idempotency key, to Stripe and in its answers.
pub(super) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Response headers that describe one connection, not the answer.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// What upstream answered.
pub struct Upstream {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl Upstream {
    /// The answer for the client, with the client's own idempotency key put
    /// back and every `client_secret` blanked (see [`client_secret`]).
    pub fn into_response_for(self, client_idempotency_key: Option<HeaderValue>) -> Response {
        let mut response = Response::new(Body::from(client_secret::blanked(self.body)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            if !HOP_BY_HOP.contains(name) && name != header::CONTENT_LENGTH {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.remove(&IDEMPOTENCY_KEY);
        if let Some(value) = client_idempotency_key {
            headers.insert(IDEMPOTENCY_KEY, value);
        }
        response
    }
}

/// Why no answer came from upstream, and whether the request may have reached it.
pub struct UpstreamFailure {
    /// What the client is told.
    pub error: ApiError,
    /// Whether upstream may have acted on it.
    pub maybe_delivered: bool,
}

/// Sends one checked request upstream: the re-encoded parameters, the
/// checked headers, the broker's secret. Nothing else of the client's.
pub async fn send(
    state: &AppState,
    method: &str,
    path: &str,
    params: String,
    headers: HeaderMap,
) -> Result<Upstream, UpstreamFailure> {
    let (method, query, body) = match method {
        "POST" => (Method::POST, None, Some(params)),
        "DELETE" => (Method::DELETE, Some(params), None),
        _ => (Method::GET, Some(params), None),
    };
    let query = query.filter(|q| !q.is_empty());
    let mut request = state
        .upstream()
        .request(method, state.stripe().url(path, query.as_deref()))
        .bearer_auth(state.stripe().secret.expose_secret())
        .headers(headers);
    if let Some(body) = body.filter(|b| !b.is_empty()) {
        request = request
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
    }
    let failure = |err: reqwest::Error| {
        // A connect error means nothing was sent; anything later is ambiguous.
        let maybe_delivered = !err.is_connect();
        let error = if err.is_timeout() {
            ApiError::UpstreamTimeout
        } else {
            ApiError::UpstreamUnavailable
        };
        tracing::warn!(error = %err.without_url(), maybe_delivered, "upstream request failed");
        UpstreamFailure {
            error,
            maybe_delivered,
        }
    };
    let mut response = request.send().await.map_err(failure)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = match read_capped(&mut response).await {
        Ok(body) => body,
        Err(Capped::Failed(err)) => return Err(failure(err)),
        Err(Capped::TooLarge) => {
            return Err(UpstreamFailure {
                error: ApiError::UpstreamUnavailable,
                maybe_delivered: true,
            });
        }
    };
    Ok(Upstream {
        status,
        headers,
        body,
    })
}

/// Why an answer was not read.
enum Capped {
    Failed(reqwest::Error),
    /// Past [`MAX_ANSWER`].
    TooLarge,
}

/// Reads `response`'s body up to [`MAX_ANSWER`], never more: an answer is
/// held whole.
async fn read_capped(response: &mut reqwest::Response) -> Result<Bytes, Capped> {
    let too_large = || {
        tracing::warn!(
            limit = MAX_ANSWER,
            "upstream answered more than the broker holds for one answer: refused"
        );
        Capped::TooLarge
    };
    let length = response.content_length().unwrap_or(0);
    if length > MAX_ANSWER as u64 {
        return Err(too_large());
    }
    // Room for the whole answer at once when its length is given: grown a
    // chunk at a time, a list page of 250 KB was copied as it grew and held
    // up to twice its size (issue 24: the broker's peak RSS is pages in flight).
    let mut body = bytes::BytesMut::with_capacity(usize::try_from(length).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(Capped::Failed)? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Most bytes of one upstream answer the broker reads: Stripe's largest
/// pages (100 objects, each expanded) are a few megabytes; an answer past
/// this is refused, as a failed call that may have been delivered, rather
/// than held in memory however large.
pub const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Reads an object's `amount` and `currency` upstream, as the key's account sees it.
pub async fn fetch_object(
    state: &AppState,
    key: &KeyRecord,
    path: &str,
) -> Result<(i64, String), ApiError> {
    let mut request = state
        .upstream()
        .get(state.stripe().url(path, None))
        .bearer_auth(state.stripe().secret.expose_secret());
    if let Some(account) = &key.stripe_account {
        request = request.header("stripe-account", account);
    }
    let mut response = request.send().await.map_err(|err| {
        tracing::warn!(error = %err.without_url(), "reading an object upstream failed");
        ApiError::UpstreamUnavailable
    })?;
    if !response.status().is_success() {
        return Err(ApiError::BadParameter(format!(
            "the object could not be read upstream (status {})",
            response.status().as_u16()
        )));
    }
    let body = read_capped(&mut response)
        .await
        .map_err(|_| ApiError::UpstreamUnavailable)?;
    let object: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::UpstreamUnavailable)?;
    price(&object)
        .ok_or_else(|| ApiError::BadParameter("the object has no amount to value".to_owned()))
}
