//! Every admin call (`/v1/keys…`, `/v1/audit`) is audited with its actor:
//! the id of the admin token it carried (`admin-` and the first 12 hex
//! digits of the token's SHA-256), never the token.
//!
//! A call that issues or revokes keys commits its audit row in the same unit
//! as its own write ([`AdminCall::record`], then [`Audited`] on the answer),
//! so it costs no extra fsync; every other answer (reads, refusals) is
//! written here once the handler is done. A call without the admin token is
//! a stranger's and is counted for the summary rows
//! ([`crate::unauthenticated`]), never written on its own.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use crate::auth::bearer;
use crate::error::{ApiError, ErrorCode};
use crate::routes::proxy::bounded;
use crate::state::AppState;
use crate::store::AuditRecord;
use crate::token::{secrets_match, token_hash};

/// The `vendor` of an admin call's audit row.
const ADMIN: &str = "admin";

/// An admin call in progress, put in the request's extensions for its handler.
#[derive(Debug, Clone)]
pub struct AdminCall {
    actor: String,
    method: String,
    path: String,
    at: DateTime<Utc>,
    started: Instant,
}

impl AdminCall {
    /// This call's audit row, answered `status` (with `code`), acting on key
    /// `key_id` (of `label`) when it names one.
    pub fn record(
        &self,
        status: u16,
        code: Option<&str>,
        key_id: Option<&str>,
        label: Option<&str>,
    ) -> AuditRecord {
        AuditRecord {
            at: self.at,
            key_id: key_id.map(str::to_owned),
            label: label.map(str::to_owned),
            vendor: ADMIN.to_owned(),
            method: self.method.clone(),
            path: self.path.clone(),
            status,
            code: code.map(str::to_owned),
            reserved_usd: 0.0,
            latency_ms: i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX),
            requests: 1,
            actor: Some(self.actor.clone()),
        }
    }
}

/// On an answer whose audit row its handler committed with its own write.
#[derive(Debug, Clone, Copy)]
pub struct Audited;

/// The id an audit row names an admin token by: it tells tokens apart
/// across a rotation and says nothing usable about the token.
fn actor_of(token: &str) -> String {
    format!("{ADMIN}-{}", &token_hash(token)[..12])
}

/// The middleware around the admin routes.
pub async fn audit_admin_calls(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let actor = bearer(request.headers())
        .filter(|token| secrets_match(token, state.admin_token().expose_secret()))
        .map(actor_of);
    let call = AdminCall {
        actor: actor.clone().unwrap_or_default(),
        method: bounded(request.method().as_str(), 16),
        path: bounded(request.uri().path(), 256),
        at: Utc::now(),
        started: Instant::now(),
    };
    if actor.is_some() {
        request.extensions_mut().insert(call.clone());
    }
    let response = next.run(request).await;
    if response.extensions().get::<Audited>().is_some() {
        return response;
    }
    let status = response.status().as_u16();
    let code = response.extensions().get::<ErrorCode>().map(|code| code.0);
    let mut record = call.record(status, code, None, None);
    if actor.is_none() {
        record.actor = None;
        state.metrics().unauthenticated.inc();
        state.unauthenticated().count(&record);
        return response;
    }
    let store = state.store();
    match store
        .write(vec![store.record_audit(&record, 0, None)])
        .await
    {
        Ok(_) => response,
        Err(err) => {
            tracing::error!(error = %err, "could not audit an admin call; withholding its answer");
            ApiError::AuditUnavailable.into_response()
        }
    }
}
