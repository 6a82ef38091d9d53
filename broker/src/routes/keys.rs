//! `/v1/keys`: issue, read, list and revoke vault keys.

use secrecy::ExposeSecret;
use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::allowlist::EndpointRule;
use crate::auth::Authorized;
use crate::error::ApiError;
use crate::key::{KeyRecord, KeyStatus};
use crate::new_key::{IssueKeyRequest, NewKey};
use crate::routes::admin_audit::Audited;
use crate::state::AppState;
use crate::store::KeyFilter;
use crate::store::keys::Revoked;
use crate::stripe::VENDOR;
use crate::token::{new_key_id, new_token, token_hash};
use crate::usd::micros_to_usd;

/// A key as the API shows it: everything but the token.
#[derive(Debug, Serialize)]
pub struct KeyView {
    id: String,
    label: String,
    vendor: String,
    daily_usd_cap: f64,
    allowed_endpoints: Vec<EndpointRule>,
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    metadata: BTreeMap<String, String>,
    status: KeyStatus,
    spent_usd: f64,
    revoked_at: Option<DateTime<Utc>>,
    allowed_objects: Vec<String>,
    stripe_account: Option<String>,
    allowed_metadata: BTreeMap<String, String>,
    role: Option<String>,
    issued_by: Option<String>,
}

impl KeyView {
    fn new(key: KeyRecord, spent_micros: i64, now: DateTime<Utc>) -> Self {
        Self {
            status: key.status(now),
            spent_usd: micros_to_usd(spent_micros),
            daily_usd_cap: micros_to_usd(key.daily_cap_micros),
            id: key.id,
            label: key.label,
            vendor: key.vendor,
            allowed_endpoints: key.allowed_endpoints,
            expires_at: key.expires_at,
            created_at: key.created_at,
            metadata: key.metadata,
            revoked_at: key.revoked_at,
            allowed_objects: key.allowed_objects,
            stripe_account: key.stripe_account,
            allowed_metadata: key.allowed_metadata,
            role: key.role.map(|role| role.name),
            issued_by: key.issued_by,
        }
    }
}

/// The answer to `POST /v1/keys`: the only place the token is ever shown.
#[derive(Debug, Serialize)]
pub struct IssuedKey {
    token: String,
    #[serde(flatten)]
    key: KeyView,
}

/// `POST /v1/keys`: with a role token, only within the role's bounds.
pub async fn issue(
    authorized: Authorized,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Extension<Audited>, Json<IssuedKey>), ApiError> {
    let request: IssueKeyRequest = serde_json::from_slice(&body)
        .map_err(|err| ApiError::InvalidRequest(format!("invalid JSON body: {err}")))?;
    let new_key = NewKey::parse(request, &[VENDOR], state.max_ttl())?;
    if let Some(role) = authorized.caller.role() {
        role.admits(&new_key)?;
    }
    let id = new_key_id().map_err(ApiError::internal)?;
    let token = new_token().map_err(ApiError::internal)?;
    let now = Utc::now();
    let issued = authorized
        .call
        .record(201, None, Some(&id), Some(&new_key.label));
    // Written only with the key: a role token revoked before the write issues nothing.
    let audit = state
        .store()
        .record_admin_call_on_key(&issued, &id, &authorized.caller, now);
    let key = state
        .store()
        .insert_key(
            &id,
            &token_hash(token.expose_secret()),
            &new_key,
            &authorized.caller,
            now,
            vec![audit],
        )
        .await?
        .ok_or(ApiError::Unauthorized)?;
    state.metrics().keys_issued.inc();
    state.metrics().key_call("issue", authorized.call.elapsed());
    tracing::info!(key_id = %key.id, label = %key.label, expires_at = %key.expires_at, "key issued");
    Ok((
        StatusCode::CREATED,
        Extension(Audited),
        Json(IssuedKey {
            token: token.expose_secret().to_owned(),
            key: KeyView::new(key, 0, now),
        }),
    ))
}

/// The key `id`, if the caller may see it: a role token sees only its
/// role's keys (another's is "no key", as if it did not exist).
async fn visible_key(
    state: &AppState,
    authorized: &Authorized,
    id: &str,
) -> Result<KeyRecord, ApiError> {
    let role = authorized.caller.role_name();
    state
        .store()
        .key(id)
        .await?
        .filter(|key| role.is_none() || key.role.as_ref().map(|r| r.name.as_str()) == role)
        .ok_or_else(|| ApiError::NotFound(format!("no key {id}")))
}

/// `GET /v1/keys/{id}`.
pub async fn show(
    authorized: Authorized,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, ApiError> {
    let now = Utc::now();
    let key = visible_key(&state, &authorized, &id).await?;
    let spent = state.store().spent(&key, now).await?;
    Ok(Json(KeyView::new(key, spent, now)))
}

/// Query of `GET /v1/keys`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    label_prefix: Option<String>,
    status: Option<KeyStatus>,
    limit: Option<i64>,
}

/// `GET /v1/keys?label_prefix=…&status=…&limit=…`, newest first; a role
/// token lists only its role's keys.
pub async fn list(
    authorized: Authorized,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(super::bad_query)?;
    let now = Utc::now();
    let filter = KeyFilter {
        label_prefix: query.label_prefix,
        status: query.status,
        key_id: None,
        limit: super::limit(query.limit)?,
        role: authorized.caller.role_name().map(str::to_owned),
    };
    let keys: Vec<KeyView> = state
        .store()
        .list_keys(&filter, now)
        .await?
        .into_iter()
        .map(|(key, spent)| KeyView::new(key, spent, now))
        .collect();
    Ok(Json(json!({ "keys": keys })))
}

/// `DELETE /v1/keys/{id}`: 204 however often it is called; a role token
/// revokes only its role's keys.
pub async fn revoke(
    authorized: Authorized,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Extension<Audited>), ApiError> {
    if authorized.caller.role().is_some() {
        visible_key(&state, &authorized, &id).await?;
    }
    // Written only if the key exists; a 404 is audited after the handler.
    let record = authorized.call.record(204, None, Some(&id), None);
    let revoked = state
        .store()
        .revoke(&id, &authorized.caller, &record, Utc::now())
        .await?;
    match revoked {
        Revoked::Now => {
            state.metrics().keys_revoked.inc();
            tracing::info!(key_id = %id, "key revoked");
        }
        Revoked::Already => {}
        Revoked::NoKey => return Err(ApiError::NotFound(format!("no key {id}"))),
        // Revoked after it was checked: the revocation answered first holds.
        Revoked::CallerGone => return Err(ApiError::Unauthorized),
    }
    state
        .metrics()
        .key_call("revoke", authorized.call.elapsed());
    Ok((StatusCode::NO_CONTENT, Extension(Audited)))
}

/// Body of `POST /v1/keys/revoke`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkRevokeRequest {
    label_prefix: String,
}

/// `POST /v1/keys/revoke`: revokes every active key whose label starts with
/// the prefix (with a role token, only among its role's keys).
pub async fn revoke_by_prefix(
    admin: Authorized,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(Extension<Audited>, Json<serde_json::Value>), ApiError> {
    let request: BulkRevokeRequest = serde_json::from_slice(&body)
        .map_err(|err| ApiError::InvalidRequest(format!("invalid JSON body: {err}")))?;
    if request.label_prefix.is_empty() {
        return Err(ApiError::InvalidRequest(
            "label_prefix must not be empty: it would revoke every key".to_owned(),
        ));
    }
    let record = admin
        .call
        .record(200, None, None, Some(&request.label_prefix));
    let revoked = state
        .store()
        .revoke_by_prefix(&request.label_prefix, &admin.caller, &record, Utc::now())
        .await?
        .ok_or(ApiError::Unauthorized)?;
    state.metrics().keys_revoked.inc_by(revoked);
    tracing::info!(label_prefix = %request.label_prefix, revoked, "keys revoked by label prefix");
    Ok((Extension(Audited), Json(json!({ "revoked": revoked }))))
}
