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
use crate::routes::proxy::bounded;
use crate::state::AppState;

/// On an answer whose audit row its handler committed with its own write.
#[derive(Debug, Clone, Copy)]
pub struct Audited;

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
    if let Some((caller, _)) = caller {
        request.extensions_mut().insert(call.clone());
        request.extensions_mut().insert(caller);
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
            ApiError::AuditUnavailable.into_response()
        }
    }
}
