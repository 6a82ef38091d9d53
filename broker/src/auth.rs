//! Bearer tokens: the admin extractor and the header parser shared with the proxy.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use secrecy::ExposeSecret;

use crate::error::ApiError;
use crate::routes::admin_audit::AdminCall;
use crate::state::AppState;
use crate::token::secrets_match;

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
/// audit row will name it; add it to a handler's arguments.
#[derive(Debug)]
pub struct Admin {
    /// The call, for a handler that commits its audit row with its own write.
    pub call: AdminCall,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match bearer(&parts.headers) {
            Some(token) if secrets_match(token, state.admin_token().expose_secret()) => {
                // Set by the audit middleware around every admin route.
                let call = parts
                    .extensions
                    .get::<AdminCall>()
                    .cloned()
                    .ok_or_else(|| ApiError::internal(std::fmt::Error))?;
                Ok(Admin { call })
            }
            _ => Err(ApiError::Unauthorized),
        }
    }
}
