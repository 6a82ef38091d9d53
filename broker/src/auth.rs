//! Bearer tokens: the admin extractor, the admin call as its audit row
//! names it, and the header parser shared with the proxy.

use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use crate::error::ApiError;
use crate::role::Caller;
use crate::state::AppState;
use crate::store::AuditRecord;
use crate::token::{secrets_match, token_hash};

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Proof that the request carried the admin token, with the call as its
/// audit row will name it; add it to a handler's arguments. A role token is
/// refused 403 `role_limit`: what this handler does is the admin's alone.
#[derive(Debug)]
pub struct Admin {
    /// The call, for a handler that commits its audit row with its own write.
    pub call: AdminCall,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authorized { caller, call } = Authorized::from_request_parts(parts, state).await?;
        match caller {
            Caller::Admin => Ok(Admin { call }),
            Caller::Role { .. } => Err(ApiError::RoleLimit(
                "only the broker's admin token may do this".to_owned(),
            )),
        }
    }
}

/// Proof that the request carried the admin token or a live role token,
/// with who it is and the call as its audit row will name it.
#[derive(Debug)]
pub struct Authorized {
    /// The admin, or a role token's holder.
    pub caller: Caller,
    /// The call, for a handler that commits its audit row with its own write.
    pub call: AdminCall,
}

impl FromRequestParts<AppState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        // Both set by the audit middleware around every admin route.
        match (
            parts.extensions.get::<Caller>(),
            parts.extensions.get::<AdminCall>(),
        ) {
            (Some(caller), Some(call)) => Ok(Self {
                caller: caller.clone(),
                call: call.clone(),
            }),
            _ => Err(ApiError::Unauthorized),
        }
    }
}

/// Who the request's bearer token names, and the actor its audit rows record:
/// the admin token (`admin-<12 hex>`), a live role token
/// (`role-<name>/<token id>`), or nobody.
pub async fn identify(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(Caller, String)>, ApiError> {
    let Some(token) = bearer(headers) else {
        return Ok(None);
    };
    if secrets_match(token, state.admin_token().expose_secret()) {
        return Ok(Some((Caller::Admin, actor_of(token))));
    }
    let found = state
        .store()
        .live_role_token(&token_hash(token), Utc::now())
        .await?;
    Ok(found.map(|(token, role)| {
        let actor = format!("role-{}/{}", role.name, token.id);
        (
            Caller::Role {
                role: Box::new(role),
                token_id: token.id,
            },
            actor,
        )
    }))
}

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
    /// A call by `actor` of `method path`, starting now.
    pub fn new(actor: String, method: String, path: String) -> Self {
        Self {
            actor,
            method,
            path,
            at: Utc::now(),
            started: Instant::now(),
        }
    }

    /// How long since the call arrived.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

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

/// The id an audit row names an admin token by: it tells tokens apart
/// across a rotation and says nothing usable about the token.
pub fn actor_of(token: &str) -> String {
    format!("{ADMIN}-{}", &token_hash(token)[..12])
}
