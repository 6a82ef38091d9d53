//! `/v1/roles`: roles and their tokens. The admin token's alone.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use bytes::Bytes;
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Admin;
use crate::config::weak_token;
use crate::error::ApiError;
use crate::new_key::parse_duration;
use crate::role::{MAX_TOKEN_TTL, NewRoleRequest, Role};
use crate::routes::admin_audit::Audited;
use crate::state::AppState;
use crate::stripe::VENDOR;
use crate::token::{new_role_token, new_role_token_id, token_hash};
use crate::usd::micros_to_usd;

/// A role as the API shows it.
fn view(role: &Role, spent_micros: i64) -> Value {
    json!({
        "name": role.name,
        "vendor": role.vendor,
        "label_prefix": role.label_prefix,
        "allowed_endpoints": role.allowed_endpoints,
        "max_key_usd_cap": micros_to_usd(role.max_key_cap_micros),
        "daily_usd_cap": micros_to_usd(role.daily_cap_micros),
        "max_expires_in": role.max_expires_in.as_secs(),
        "stripe_accounts": role.stripe_accounts,
        "allow_allowed_objects": role.allow_allowed_objects,
        "allow_allowed_metadata": role.allow_allowed_metadata,
        "leased_usd_today": micros_to_usd(spent_micros),
    })
}

fn body_of<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body)
        .map_err(|err| ApiError::InvalidRequest(format!("invalid JSON body: {err}")))
}

/// `POST /v1/roles`: 201 with the role, 409 if the name is taken.
pub async fn create(
    admin: Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Extension<Audited>, Json<Value>), ApiError> {
    let role = Role::parse(
        body_of::<NewRoleRequest>(&body)?,
        &[VENDOR],
        state.max_ttl(),
    )?;
    let record = admin.call.record(201, None, None, Some(&role.name));
    let audit = state.store().record_audit(&record, 0, None);
    if !state
        .store()
        .insert_role(&role, Utc::now(), vec![audit])
        .await?
    {
        return Err(ApiError::Conflict(format!("role {} exists", role.name)));
    }
    tracing::info!(role = %role.name, "role created");
    Ok((
        StatusCode::CREATED,
        Extension(Audited),
        Json(view(&role, 0)),
    ))
}

/// `GET /v1/roles`: every role with what its keys hold today.
pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let roles: Vec<Value> = state
        .store()
        .roles(Utc::now())
        .await?
        .iter()
        .map(|(role, spent)| view(role, *spent))
        .collect();
    Ok(Json(json!({ "roles": roles })))
}

/// Body of `POST /v1/roles/{name}/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    expires_in: Option<Value>,
    /// A token the operator made (e.g. from `openssl rand -hex 32`), for a
    /// deployment that hands it to the worker itself; held to the admin
    /// token's strength rules. Absent: the broker makes one.
    token: Option<String>,
}

/// `POST /v1/roles/{name}/tokens`: 201 `{id, token, role, expires_at}`, the
/// token shown this once and stored hashed.
pub async fn issue_token(
    admin: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Extension<Audited>, Json<Value>), ApiError> {
    let request: NewTokenRequest = body_of(&body)?;
    let role = state
        .store()
        .role(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no role {name}")))?;
    let ttl: Option<Duration> = request
        .expires_in
        .filter(|v| !v.is_null())
        .map(|v| parse_duration(&v, MAX_TOKEN_TTL, "expires_in"))
        .transpose()?;
    let token = match request.token {
        Some(given) => {
            if let Some(why) = weak_token(&given) {
                return Err(ApiError::InvalidRequest(format!("token {why}")));
            }
            SecretString::from(given)
        }
        None => new_role_token().map_err(ApiError::internal)?,
    };
    let id = new_role_token_id().map_err(ApiError::internal)?;
    let now = Utc::now();
    let expires_at = ttl
        .map(chrono::Duration::from_std)
        .transpose()
        .map_err(ApiError::internal)?
        .map(|ttl| now + ttl);
    let record = admin
        .call
        .record(201, None, None, Some(&format!("{name}/{id}")));
    let audit = state.store().record_audit(&record, 0, None);
    state
        .store()
        .insert_role_token(
            &id,
            &role.name,
            &token_hash(token.expose_secret()),
            now,
            expires_at,
            vec![audit],
        )
        .await
        .map_err(|err| match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                ApiError::Conflict("that token is in use".to_owned())
            }
            _ => ApiError::from(err),
        })?;
    tracing::info!(role = %role.name, token_id = %id, "role token issued");
    Ok((
        StatusCode::CREATED,
        Extension(Audited),
        Json(json!({
            "id": id,
            "role": role.name,
            "token": token.expose_secret(),
            "created_at": now,
            "expires_at": expires_at,
        })),
    ))
}

/// `DELETE /v1/roles/{name}/tokens/{id}`: 204; the token stops at once.
pub async fn revoke_token(
    admin: Admin,
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<(StatusCode, Extension<Audited>), ApiError> {
    let record = admin
        .call
        .record(204, None, None, Some(&format!("{name}/{id}")));
    let audit = state.store().record_audit(&record, 0, None);
    if !state
        .store()
        .revoke_role_token(&name, &id, Utc::now(), vec![audit])
        .await?
    {
        return Err(ApiError::NotFound(format!("no token {id} of role {name}")));
    }
    tracing::info!(role = %name, token_id = %id, "role token revoked");
    Ok((StatusCode::NO_CONTENT, Extension(Audited)))
}

/// `GET /v1/whoami`: which kind of token the caller holds, and its role's bounds.
pub async fn whoami(
    authorized: crate::auth::Authorized,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(match &authorized.caller {
        crate::role::Caller::Admin => json!({ "kind": "admin" }),
        crate::role::Caller::Role { role, token_id } => {
            let spent = state
                .store()
                .roles(Utc::now())
                .await?
                .into_iter()
                .find(|(r, _)| r.name == role.name)
                .map_or(0, |(_, spent)| spent);
            json!({ "kind": "role", "token_id": token_id, "role": view(role, spent) })
        }
    }))
}
