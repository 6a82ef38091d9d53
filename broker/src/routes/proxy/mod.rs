//! `ANY /{vendor}/{path…}`: forwards a vault-key request upstream with the real secret.
//!
//! In order: the vendor, the method, the path's plain form, the token, the
//! key's state, the allowlist, money the broker cannot value, exact naming of
//! lists, the objects the path names, the headers, the parameters (query or
//! form body, read within the body timeout), the objects the parameters
//! name, then the key's state again together with the reservation of what
//! the request could move. Only then is it forwarded, re-encoded from what
//! was checked. Every request, refused or not, leaves one audit record,
//! committed with the settlement of its reservation before it is answered.
//!
//! Round trips to the database: the token lookup also reads the label of
//! the object the path names; a request with no body that moves no money
//! needs no second look at the key, since its one lookup came after its
//! (empty) body had arrived; and the settlement and the audit row are one
//! write, group-committed with other requests' on SQLite.

mod money;
mod request;
mod upstream;

use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;

use crate::allowlist::check_path;
use crate::auth::bearer;
use crate::error::ApiError;
use crate::group_commit::Statement;
use crate::metrics::{ProxyLabels, VendorLabels};
use crate::state::AppState;
use crate::store::{AuditRecord, KeyRecord, KeyStatus};
use crate::token::token_hash;
use crate::vendor::Vendor;

pub use request::{bounded, namespaced_idempotency_key};

/// Largest request body the proxy accepts.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Longest path kept in an audit record or a log line.
const AUDIT_PATH_LIMIT: usize = 256;

/// The vendor label of a request to no configured vendor.
const UNKNOWN_VENDOR: &str = "unknown";

/// What the audit record needs to know about how far a request got.
struct Trail {
    vendor: String,
    method: String,
    path: String,
    key: Option<KeyRecord>,
    /// Held once `settlement` commits.
    reserved_micros: i64,
    /// Held if `settlement` does not commit (its release with it).
    held_without_settlement: i64,
    /// What the answer changes in the store, committed with the audit row.
    settlement: Vec<Statement>,
}

/// The proxy handler (the router's fallback).
///
/// The work runs in a task of its own: once the broker has a request, it
/// finishes the upstream call, settles the reservation and writes the audit
/// record even if the client disconnects and its connection is dropped.
pub async fn proxy(State(state): State<AppState>, request: Request) -> Response {
    let tracker = state.in_flight().clone();
    match tracker.spawn(handle(state, request)).await {
        Ok(response) => response,
        Err(err) => ApiError::internal(err).into_response(),
    }
}

async fn handle(state: AppState, request: Request) -> Response {
    let started = Instant::now();
    let at = Utc::now();
    let mut trail = Trail {
        vendor: UNKNOWN_VENDOR.to_owned(),
        method: bounded(request.method().as_str(), 16),
        path: String::new(),
        key: None,
        reserved_micros: 0,
        held_without_settlement: 0,
        settlement: Vec::new(),
    };
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
        method: trail.method,
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
    // Every answer a client sees has its audit row: when the row cannot be
    // written, the upstream answer is withheld and the client told to retry.
    // A retry with the same Idempotency-Key replays what upstream did.
    let store = state.store();
    let settled = !trail.settlement.is_empty();
    let mut unit = trail.settlement;
    unit.push(store.record_audit(&record, trail.reserved_micros));
    let Err(err) = store.write(unit).await else {
        return response;
    };
    if settled {
        // Erring on the side of the cap: without its release the amount stays held.
        tracing::error!(error = %err, "failed to settle a request; recording it alone");
        let alone = store.record_audit(&record, trail.held_without_settlement);
        if store.write(vec![alone]).await.is_ok() {
            return response;
        }
    }
    ApiError::AuditUnavailable.into_response()
}

async fn forward(
    state: &AppState,
    request: Request,
    trail: &mut Trail,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let raw_path = parts.uri.path();
    let (vendor_name, path) = split_vendor(raw_path);
    trail.path = bounded(path, AUDIT_PATH_LIMIT);
    let vendor: Vendor = state
        .vendor(vendor_name)
        .ok_or_else(|| ApiError::NotFound("no such vendor".to_owned()))?
        .clone();
    trail.vendor = vendor.name.to_owned();
    let method = request::method(&parts.method)?;
    check_path(raw_path).map_err(ApiError::InvalidPath)?;

    // Known before the lookup: a request without a body has all of it already.
    let bodiless = body.is_end_stream();
    let path_object = crate::stripe_api::object_in_path(path);
    let (key, path_owner) = authenticate(state, &parts.headers, vendor.name, path_object).await?;
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
    request::check_endpoint(&key, method, path)?;
    if let Some(id) = path_object {
        check_object_owner(&key, id, path_owner.as_deref())?;
    }
    let forward_headers = request::forward_headers(&key, &parts.headers)?;

    let body = read_body(state, body).await?;
    let params = request::params(method, parts.uri.query(), &parts.headers, &body)?;
    for id in request::named_objects(path, &params)? {
        // The path's object was checked above, and its owner cannot change.
        if Some(id) != path_object {
            check_object(state, &vendor, &key, id).await?;
        }
    }
    let valued = money::value(state, &vendor, &key, method, path, &params).await?;
    // Time passed since the lookup only if a body arrived or a price was read upstream.
    let checked_since_lookup = bodiless && valued.is_none();
    let reservation = money::reserve(state, &key, valued.as_ref(), checked_since_lookup).await?;
    trail.reserved_micros = reservation.as_ref().map_or(0, |r| r.micros());
    trail.held_without_settlement = trail.reserved_micros;

    let outcome = upstream::send(
        state,
        &vendor,
        method,
        path,
        params.encode(),
        forward_headers.headers,
    )
    .await;
    let settlement = money::settle(
        state,
        &vendor,
        &key,
        method,
        path,
        path_owner.as_deref(),
        valued.as_ref(),
        reservation.as_ref(),
        &outcome,
    );
    trail.reserved_micros = settlement.held;
    trail.settlement = settlement.writes;
    outcome
        .map(|answer| answer.into_response_for(forward_headers.client_idempotency_key))
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

/// The key the bearer token names, and the label that owns the object the path names.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    vendor: &str,
    path_object: Option<&str>,
) -> Result<(KeyRecord, Option<String>), ApiError> {
    let token = bearer(headers).ok_or(ApiError::InvalidKey)?;
    state
        .store()
        .key_by_token_hash(&token_hash(token), path_object.map(|id| (vendor, id)))
        .await?
        .ok_or(ApiError::InvalidKey)
}

/// A key reaches an object only if it was issued for it, or a key of the
/// same label created it (so every attempt of an activity sees its own).
async fn check_object(
    state: &AppState,
    vendor: &Vendor,
    key: &KeyRecord,
    id: &str,
) -> Result<(), ApiError> {
    if key.allowed_objects.iter().any(|allowed| allowed == id)
        || key.stripe_account.as_deref() == Some(id)
    {
        return Ok(());
    }
    let owner = state
        .store()
        .object(vendor.name, id)
        .await?
        .map(|o| o.label);
    check_object_owner(key, id, owner.as_deref())
}

/// [`check_object`] with the object's owning label (`None`: never seen) already read.
fn check_object_owner(key: &KeyRecord, id: &str, owner: Option<&str>) -> Result<(), ApiError> {
    if key.allowed_objects.iter().any(|allowed| allowed == id) || owner == Some(&key.label) {
        return Ok(());
    }
    Err(ApiError::ObjectNotAllowed(format!(
        "key may not reach object {}",
        bounded(id, 64)
    )))
}

/// The body, within the size limit and the body read timeout.
async fn read_body(state: &AppState, body: Body) -> Result<Bytes, ApiError> {
    let timeout = state.body_timeout();
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, BODY_LIMIT));
    let Ok(result) = read.await else {
        return Err(ApiError::RequestTimeout(timeout.as_secs()));
    };
    result.map_err(|err| {
        let too_large = std::error::Error::source(&err)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::PayloadTooLarge(BODY_LIMIT)
        } else {
            ApiError::BadParameter("request body could not be read".to_owned())
        }
    })
}
