//! The last step of every proxied request, refused or not: one audit record,
//! committed with the settlement of its reservation before the answer goes
//! out, a log line and the metrics.

use std::time::Instant;

use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::canonical::bounded;
use super::spend::Settlement;
use crate::error::ApiError;
use crate::group_commit::Statement;
use crate::key::KeyRecord;
use crate::metrics::{ProxyLabels, VendorLabels};
use crate::state::AppState;
use crate::store::AuditRecord;
use crate::store::tidy::IN_FLIGHT;
use crate::usd::micros_to_usd;

/// The vendor label of a request to no configured vendor.
const UNKNOWN_VENDOR: &str = "unknown";

/// What the audit record needs to know about how far a request got.
pub struct Trail {
    started: Instant,
    at: DateTime<Utc>,
    /// The vendor segment, once known to name the upstream.
    pub vendor: String,
    method: String,
    /// The path below the vendor segment, bounded.
    pub path: String,
    /// The caller's key, once its token named one.
    pub key: Option<KeyRecord>,
    /// Held once `settlement` commits.
    reserved_micros: i64,
    /// Held if `settlement` does not commit (its release with it).
    held_without_settlement: i64,
    /// What the answer changes in the store, committed with the audit row.
    settlement: Vec<Statement>,
    /// Set once the row was written before forwarding; the answer completes it.
    request_id: Option<String>,
    /// The request is a create whose metadata pairs were made pending with
    /// its row before forwarding ([`super::pairs`]).
    pending_pairs: bool,
    /// Whether what the request made upstream is known (or nothing was
    /// sent): then its pending pairs go with its audit row.
    outcome_known: bool,
}

impl Trail {
    /// A trail for a request of `method` that arrived now.
    pub fn start(method: &str) -> Self {
        Self {
            started: Instant::now(),
            at: Utc::now(),
            vendor: UNKNOWN_VENDOR.to_owned(),
            method: bounded(method, 16),
            path: String::new(),
            key: None,
            reserved_micros: 0,
            held_without_settlement: 0,
            settlement: Vec::new(),
            request_id: None,
            pending_pairs: false,
            outcome_known: true,
        }
    }

    /// The request's audit row as it stands before forwarding (status 0,
    /// `in_flight`, holding `reserved_micros` if its reservation commits),
    /// to commit with the reservation; the answer completes the same row.
    pub fn before_forwarding(
        &mut self,
        state: &AppState,
        reserved_micros: i64,
    ) -> Result<Statement, ApiError> {
        let request_id = crate::token::new_request_id().map_err(ApiError::internal)?;
        let record = self.record(0, Some(IN_FLIGHT), reserved_micros);
        let row = state
            .store()
            .record_audit(&record, reserved_micros, Some(&request_id));
        self.request_id = Some(request_id);
        Ok(row)
    }

    /// The id the row written before forwarding has, once written.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The request's metadata pairs are pending with its row.
    pub fn pairs_pending(&mut self) {
        self.pending_pairs = true;
    }

    /// The request was sent upstream: whether what it made is `known`.
    pub fn forwarded(&mut self, known: bool) {
        self.outcome_known = known;
    }

    /// The audit record of this request, answered `status` with `code`.
    fn record(&self, status: u16, code: Option<&str>, reserved_micros: i64) -> AuditRecord {
        AuditRecord {
            at: self.at,
            key_id: self.key.as_ref().map(|k| k.id.clone()),
            label: self.key.as_ref().map(|k| k.label.clone()),
            vendor: self.vendor.clone(),
            method: self.method.clone(),
            path: self.path.clone(),
            status,
            code: code.map(str::to_owned),
            reserved_usd: micros_to_usd(reserved_micros),
            latency_ms: i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX),
            requests: 1,
            actor: None,
        }
    }

    /// `micros` are now reserved against the key's cap.
    pub fn reserved(&mut self, micros: i64) {
        self.reserved_micros = micros;
        self.held_without_settlement = micros;
    }

    /// Upstream answered (or failed): what stays held, and what to write.
    pub fn settled(&mut self, settlement: Settlement) {
        self.reserved_micros = settlement.held;
        self.settlement = settlement.writes;
    }
}

/// Logs, counts and durably records the request of `trail`, then returns
/// the answer: `result`'s, or a 503 when its record cannot be written.
pub async fn finish(
    state: &AppState,
    trail: Trail,
    result: Result<Response, ApiError>,
) -> Response {
    let (response, code) = match result {
        Ok(response) => (response, None),
        Err(err) => {
            let code = err.code();
            (err.into_response(), Some(code))
        }
    };
    let elapsed = trail.started.elapsed();
    let record = trail.record(response.status().as_u16(), code, trail.reserved_micros);
    count(state, &record, elapsed.as_secs_f64());
    // A revoked or expired key's request reserved nothing and has no row
    // written before forwarding (it was refused before its reservation, or
    // its reservation refused it after writing one: then it is completed below).
    let dead_key = trail.request_id.is_none()
        && matches!(record.code.as_deref(), Some("key_revoked" | "key_expired"));
    if trail.key.is_none() || dead_key {
        // A stranger's requests are a log line each only at debug level.
        tracing::debug!(method = %record.method, vendor = %record.vendor, status = record.status, "request without a valid key");
        // Named no valid key, so it reserved and forwarded nothing.
        return crate::routes::answer_stranger(state, &record, response);
    }
    log(&record);
    // Every answer a client sees has its audit row: when the row cannot be
    // written, the upstream answer is withheld and the client told to retry.
    // A retry with the same Idempotency-Key replays what upstream did.
    let store = state.store();
    let settled = !trail.settlement.is_empty();
    let mut unit = trail.settlement;
    let request_id = trail.request_id.as_deref();
    unit.push(store.record_audit(&record, trail.reserved_micros, request_id));
    // Kept when the outcome is unknown (and when this write fails): a create
    // that may have made its object keeps its pairs pending.
    if let Some(id) = request_id.filter(|_| trail.pending_pairs && trail.outcome_known) {
        unit.push(store.settle_pending(id));
    }
    let Err(err) = store.write(unit).await else {
        return response;
    };
    if settled {
        // Erring on the side of the cap: without its release the amount stays held.
        tracing::error!(error = %err, "failed to settle a request; recording it alone");
        let alone = store.record_audit(&record, trail.held_without_settlement, request_id);
        if store.write(vec![alone]).await.is_ok() {
            return response;
        }
    }
    crate::routes::withhold(state, &record)
}

fn log(record: &AuditRecord) {
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
}

fn count(state: &AppState, record: &AuditRecord, seconds: f64) {
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
        .observe(seconds);
    if record.code.as_deref() == Some("cap_exhausted") {
        metrics.cap_exhausted.inc();
    }
}
