//! Who is calling: the key the bearer token names, and whether it is live.

use axum::http::HeaderMap;
use chrono::Utc;

use crate::auth::bearer;
use crate::error::ApiError;
use crate::key::{KeyRecord, KeyStatus};
use crate::state::AppState;
use crate::stripe::VENDOR;
use crate::stripe::ids::object_in_path;
use crate::token::token_hash;

/// The key the bearer token names, and the label that owns the object
/// `path` names (`None`: never seen), read in the same lookup.
pub async fn key(
    state: &AppState,
    headers: &HeaderMap,
    path: &str,
) -> Result<(KeyRecord, Option<String>), ApiError> {
    let token = bearer(headers).ok_or(ApiError::InvalidKey)?;
    let path_object = object_in_path(path).map(|id| (VENDOR, id));
    state
        .store()
        .key_by_token_hash(&token_hash(token), path_object)
        .await?
        .ok_or(ApiError::InvalidKey)
}

/// Refuses a key for another vendor, a revoked key and an expired one.
pub fn check_live(key: &KeyRecord) -> Result<(), ApiError> {
    if key.vendor != VENDOR {
        return Err(ApiError::EndpointNotAllowed(format!(
            "key is for vendor {}, not {VENDOR}",
            key.vendor
        )));
    }
    match key.status(Utc::now()) {
        KeyStatus::Active => Ok(()),
        KeyStatus::Revoked => Err(ApiError::KeyRevoked),
        KeyStatus::Expired => Err(ApiError::KeyExpired),
    }
}
