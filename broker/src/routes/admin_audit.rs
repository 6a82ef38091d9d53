//! Every admin-API call (`/v1/keys…`, `/v1/roles…`, `/v1/audit`) is audited
//! with its actor: the id of the admin token it carried (`admin-` and the
//! first 12 hex digits of the token's SHA-256), or the role and id of the
//! role token (`role-<name>/<token id>`), never the token.
//!
//! A call that issues or revokes keys commits its audit row in the same unit
//! as its own write ([`crate::auth::AdminCall::record`], then [`Audited`] on the answer),
//! so it costs no extra fsync; every other answer (reads, refusals) is
//! written here once the handler is done. A call without the admin token is
//! a stranger's and is counted for the summary rows
//! ([`crate::unauthenticated`]), never written on its own.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{AdminCall, identify};
use crate::error::{ApiError, ErrorCode};
use crate::role::Caller;
use crate::routes::proxy::bounded;
use crate::state::AppState;

/// On an answer whose audit row its handler committed with its own write.
#[derive(Debug, Clone, Copy)]
pub struct Audited;

/// Largest body of an admin call: a key or role request is a few KiB.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// `request` with its whole body read, within the broker's body timeout;
/// and for a role token, the token checked again once it has: a token
/// revoked or expired while a body was on its way does nothing with it
/// (the key insert checks it once more, in its own statement). A body the
/// headers say is empty was never on its way: no second check.
async fn with_body(
    state: &AppState,
    request: Request,
    caller: &Caller,
) -> Result<Request, ApiError> {
    let (parts, body) = request.into_parts();
    // A body its headers say is empty (a revoke, a read) was whole when the
    // token was checked: nothing was on its way to check it again for.
    let on_its_way = axum::body::HttpBody::size_hint(&body).exact() != Some(0);
    let timeout = state.body_timeout();
    let bytes = tokio::time::timeout(timeout, axum::body::to_bytes(body, MAX_ADMIN_BODY))
        .await
        .map_err(|_| ApiError::RequestTimeout(timeout.as_secs()))?
        .map_err(|_| ApiError::PayloadTooLarge(MAX_ADMIN_BODY))?;
    if let Caller::Role { token_id, .. } = caller
        && on_its_way
    {
        let still = identify(state, &parts.headers).await?;
        let same =
            matches!(still, Some((Caller::Role { token_id: now, .. }, _)) if now == *token_id);
        if !same {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

/// The middleware around the admin routes.
pub async fn audit_admin_calls(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match identify(&state, request.headers()).await {
        Ok(caller) => caller,
        Err(err) => return err.into_response(),
    };
    let actor = caller.as_ref().map(|(_, actor)| actor.clone());
    let call = AdminCall::new(
        actor.clone().unwrap_or_default(),
        bounded(request.method().as_str(), 16),
        bounded(request.uri().path(), 256),
    );
    let response = match caller {
        Some((caller, _)) => {
            request.extensions_mut().insert(call.clone());
            request.extensions_mut().insert(caller.clone());
            match with_body(&state, request, &caller).await {
                Ok(request) => next.run(request).await,
                Err(refusal) => refusal.into_response(),
            }
        }
        None => next.run(request).await,
    };
    if response.extensions().get::<Audited>().is_some() {
        return response;
    }
    let status = response.status().as_u16();
    let code = response.extensions().get::<ErrorCode>().map(|code| code.0);
    let mut record = call.record(status, code, None, None);
    if actor.is_none() {
        record.actor = None;
        return super::answer_stranger(&state, &record, response);
    }
    let store = state.store();
    match store
        .write(vec![store.record_audit(&record, 0, None)])
        .await
    {
        Ok(_) => response,
        Err(err) => {
            tracing::error!(error = %err, "could not audit an admin call; withholding its answer");
            super::withhold(&state, &record)
        }
    }
}
