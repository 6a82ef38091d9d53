//! `ANY /{vendor}/{path…}`: forwards a vault-key request upstream with the real secret.
//!
//! In order: the vendor, the path's normal form, the token, the key's state,
//! the allowlist, the body limit, then (for money-moving requests) an atomic
//! reservation against the daily cap. Only then is the request forwarded.
//! Every request, refused or not, leaves one audit record.

use secrecy::ExposeSecret;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, Method, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;

use crate::allowlist::check_path;
use crate::auth::bearer;
use crate::error::ApiError;
use crate::metrics::{ProxyLabels, VendorLabels};
use crate::money::{ValuationError, usd_micros};
use crate::state::AppState;
use crate::store::{AuditRecord, KeyRecord, KeyStatus, Reservation};
use crate::token::token_hash;
use crate::vendor::Vendor;

/// Largest request body the proxy accepts.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Request headers passed upstream; everything else (the vault token first) stays here.
const FORWARDED_REQUEST_HEADERS: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    HeaderName::from_static("idempotency-key"),
    HeaderName::from_static("stripe-version"),
    HeaderName::from_static("stripe-account"),
];

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

/// What the audit record needs to know about how far a request got.
#[derive(Default)]
struct Trail {
    vendor: String,
    path: String,
    key: Option<KeyRecord>,
    reserved_micros: i64,
}

/// The proxy handler (the router's fallback).
pub async fn proxy(State(state): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    let at = Utc::now();
    let method = request.method().clone();
    let mut trail = Trail::default();
    let (response, code) = match forward(&state, request, &mut trail).await {
        Ok(response) => (response, None),
        Err(err) => {
            let code = err.code();
            (err.into_response(), Some(code))
        }
    };
    let record = AuditRecord {
        at,
        key_id: trail.key.as_ref().map(|k| k.id.clone()),
        label: trail.key.as_ref().map(|k| k.label.clone()),
        vendor: trail.vendor,
        method: method.to_string(),
        path: trail.path,
        status: response.status().as_u16(),
        code: code.map(str::to_owned),
        reserved_usd: crate::money::micros_to_usd(trail.reserved_micros),
        latency_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
    };
    tracing::info!(
        key_id = record.key_id.as_deref().unwrap_or("-"),
        label = record.label.as_deref().unwrap_or("-"),
        method = %record.method,
        vendor = %record.vendor,
        path = %record.path,
        status = record.status,
        code = record.code.as_deref().unwrap_or("-"),
        latency_ms = record.latency_ms,
        "proxied request"
    );
    let metrics = state.metrics();
    metrics
        .proxied
        .get_or_create(&ProxyLabels {
            vendor: record.vendor.clone(),
            status: record.status,
        })
        .inc();
    metrics
        .proxy_seconds
        .get_or_create(&VendorLabels {
            vendor: record.vendor.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    if record.code.as_deref() == Some("cap_exhausted") {
        metrics.cap_exhausted.inc();
    }
    // The upstream call has happened either way: a lost audit row is logged, not answered.
    if let Err(err) = state
        .store()
        .record_audit(&record, trail.reserved_micros)
        .await
    {
        tracing::error!(error = %err, "failed to write audit record");
    }
    response
}

async fn forward(
    state: &AppState,
    request: Request,
    trail: &mut Trail,
) -> Result<Response, ApiError> {
    let raw_path = request.uri().path().to_owned();
    let (vendor_name, path) = split_vendor(&raw_path);
    trail.vendor = vendor_name.to_owned();
    trail.path = path.to_owned();
    let vendor = state
        .vendor(vendor_name)
        .ok_or_else(|| ApiError::NotFound(format!("no route for /{vendor_name}")))?
        .clone();
    check_path(&raw_path).map_err(ApiError::InvalidPath)?;

    let key = authenticate(state, request.headers()).await?;
    trail.key = Some(key.clone());
    if key.vendor != vendor.name {
        return Err(ApiError::EndpointNotAllowed(format!(
            "key is for vendor {}, not {}",
            key.vendor, vendor.name
        )));
    }
    match key.status(Utc::now()) {
        KeyStatus::Active => {}
        KeyStatus::Revoked => return Err(ApiError::KeyRevoked),
        KeyStatus::Expired => return Err(ApiError::KeyExpired),
    }
    let method = request.method().clone();
    if !key
        .allowed_endpoints
        .iter()
        .any(|rule| rule.allows(method.as_str(), path))
    {
        return Err(ApiError::EndpointNotAllowed(format!(
            "key does not allow {method} {path}"
        )));
    }

    let query = request.uri().query().map(str::to_owned);
    let headers = request.headers().clone();
    let body = read_body(request.into_body()).await?;

    let reservation = if vendor.moves_money(method.as_str(), path) {
        let micros = money_moved(state, query.as_deref(), &body)?;
        let reservation = state
            .store()
            .reserve(&key, micros, Utc::now())
            .await?
            .ok_or_else(|| {
                ApiError::CapExhausted("request would pass the key's daily spend cap".to_owned())
            })?;
        trail.reserved_micros = reservation.micros();
        Some(reservation)
    } else {
        None
    };

    let outcome = send_upstream(
        state,
        &vendor,
        method,
        path,
        query.as_deref(),
        &headers,
        body,
    )
    .await;
    if let Some(reservation) = &reservation {
        settle(state, reservation, &outcome, trail).await;
    }
    outcome
        .map(|upstream| upstream.into_response())
        .map_err(|failure| failure.error)
}

/// `/stripe/v1/x` → (`stripe`, `/v1/x`).
fn split_vendor(raw_path: &str) -> (&str, &str) {
    let rest = raw_path.strip_prefix('/').unwrap_or(raw_path);
    match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    }
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<KeyRecord, ApiError> {
    let token = bearer(headers).ok_or(ApiError::InvalidKey)?;
    state
        .store()
        .key_by_token_hash(&token_hash(token))
        .await?
        .ok_or(ApiError::InvalidKey)
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|err| {
        let too_large = std::error::Error::source(&err)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::PayloadTooLarge(BODY_LIMIT)
        } else {
            ApiError::InvalidRequest("request body could not be read".to_owned())
        }
    })
}

/// The USD, in micro-dollars, that a money-moving request asks to move.
///
/// `amount` and `currency` must each appear exactly once across query and
/// form body: were the broker to read one copy and upstream another, the cap
/// would count the wrong amount.
fn money_moved(state: &AppState, query: Option<&str>, body: &[u8]) -> Result<i64, ApiError> {
    let pairs =
        form_urlencoded::parse(query.unwrap_or("").as_bytes()).chain(form_urlencoded::parse(body));
    let (mut amounts, mut currencies) = (Vec::new(), Vec::new());
    for (name, value) in pairs {
        match name.as_ref() {
            "amount" => amounts.push(value.into_owned()),
            "currency" => currencies.push(value.into_owned()),
            _ => {}
        }
    }
    let ([amount], [currency]) = (amounts.as_slice(), currencies.as_slice()) else {
        return Err(ApiError::InvalidRequest(
            "a request that moves money needs exactly one amount and one currency".to_owned(),
        ));
    };
    let amount: i64 = amount.parse().ok().filter(|a| *a >= 0).ok_or_else(|| {
        ApiError::InvalidRequest("amount must be a whole number of minor units".to_owned())
    })?;
    usd_micros(amount, currency, state.usd_rates()).map_err(|ValuationError::NoRate(currency)| {
        ApiError::CurrencyNotAllowed(format!("no USD rate is configured for {currency}"))
    })
}

/// What upstream answered.
struct Upstream {
    status: axum::http::StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl IntoResponse for Upstream {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            if !HOP_BY_HOP.contains(name) && name != header::CONTENT_LENGTH {
                headers.append(name.clone(), value.clone());
            }
        }
        response
    }
}

/// Why no answer came from upstream, and whether the request may have reached it.
struct UpstreamFailure {
    error: ApiError,
    maybe_delivered: bool,
}

async fn send_upstream(
    state: &AppState,
    vendor: &Vendor,
    method: Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Upstream, UpstreamFailure> {
    let mut request = state
        .upstream()
        .request(method, vendor.upstream_url(path, query))
        .bearer_auth(vendor.secret.expose_secret())
        .body(body);
    for name in &FORWARDED_REQUEST_HEADERS {
        for value in headers.get_all(name) {
            request = request.header(name, value);
        }
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
    let response = request.send().await.map_err(failure)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(failure)?;
    Ok(Upstream {
        status,
        headers,
        body,
    })
}

/// Keeps or releases a reservation by what upstream did.
///
/// Released when upstream refused the request (4xx) or was never reached;
/// kept on success and on every ambiguous outcome (timeout, dropped
/// connection, 5xx), where the money may have moved.
async fn settle(
    state: &AppState,
    reservation: &Reservation,
    outcome: &Result<Upstream, UpstreamFailure>,
    trail: &mut Trail,
) {
    let release = match outcome {
        Ok(upstream) => upstream.status.is_client_error(),
        Err(failure) => !failure.maybe_delivered,
    };
    if !release {
        return;
    }
    match state.store().release(reservation).await {
        Ok(()) => trail.reserved_micros = 0,
        // Erring on the side of the cap: the amount stays held.
        Err(err) => tracing::error!(error = %err, "failed to release a spend reservation"),
    }
}
