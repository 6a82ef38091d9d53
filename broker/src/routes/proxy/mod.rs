//! `ANY /stripe/{path…}`: forwards a vault-key request to Stripe with the real secret.
//!
//! [`forward`] is the list of the proxy's steps, in the order they are
//! enforced; each step is a module. The rules themselves, with the reasons
//! for their order, are written once, in `docs/proxy.md`.
//!
//! Round trips to the database: the key lookup also reads the label of the
//! object the path names; a request with no body that moves no money needs
//! no second look at the key, since its one lookup came after its (empty)
//! body had arrived; and the settlement and the audit row are one write,
//! group-committed with other requests' on SQLite.

mod audit;
mod authn;
mod authz;
mod canonical;
mod client_secret;
mod pairs;
mod recorded;
mod replay;
mod spend;
mod upstream;
mod visible;

use axum::body::HttpBody;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

use crate::allowlist::check_path;
use crate::error::ApiError;
use crate::state::AppState;
use crate::stripe::VENDOR;
use audit::Trail;
use spend::Target;
use visible::{Page, Sight};

pub use authz::namespaced_idempotency_key;
pub use canonical::bounded;
pub use recorded::recorded;
pub use upstream::MAX_ANSWER;

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

/// The handler of the `--stripe-listen` address: `/v1/...` there is
/// `/stripe/v1/...` here, with every rule and the audit the same.
pub async fn proxy_at_root(State(state): State<AppState>, mut request: Request) -> Response {
    let below = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    match format!("/{VENDOR}{below}").parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => {
            return ApiError::InvalidPath("the path is not valid".to_owned()).into_response();
        }
    }
    proxy(State(state), request).await
}

async fn handle(state: AppState, request: Request) -> Response {
    let mut trail = Trail::start(request.method().as_str());
    let result = forward(&state, request, &mut trail).await;
    audit::finish(&state, trail, result).await
}

/// The proxy's steps. Each refusal ends the request with nothing forwarded;
/// whatever happens, [`audit::finish`] records it.
async fn forward(
    state: &AppState,
    request: Request,
    trail: &mut Trail,
) -> Result<Response, ApiError> {
    // The request in its one canonical form.
    let (parts, body) = request.into_parts();
    let (vendor, path) = canonical::split_vendor(parts.uri.path());
    trail.path = canonical::bounded(path, canonical::AUDIT_PATH_LIMIT);
    canonical::check_vendor(vendor)?;
    trail.vendor = VENDOR.to_owned();
    let method = canonical::method(&parts.method)?;
    check_path(parts.uri.path()).map_err(ApiError::InvalidPath)?;
    // Known before the lookup: a request without a body has all of it already.
    let bodiless = body.is_end_stream();

    // Who calls.
    let (key, path_owner) = authn::key(state, &parts.headers, path).await?;
    trail.key = Some(key.clone());
    authn::check_live(&key)?;

    // What the key may do: the endpoint, the path's object, the headers.
    authz::check_endpoint(&key, method, path)?;
    let reach = authz::check_path_object(&key, method, path, path_owner.as_deref())?;
    let headers = authz::forward_headers(&key, &parts.headers)?;

    // The parameters, and the objects they name.
    let body = canonical::read_body(state, body).await?;
    let params = canonical::params(method, parts.uri.query(), &parts.headers, &body.bytes)?;
    let params = authz::narrow_search(&key, method, path, params)?;
    authz::check_money_params(method, path, &params)?;
    authz::check_named_objects(state, &key, method, path, &params).await?;
    let sight = Sight::of(method, path, &params, reach)?;

    // What it could move, held against the cap with the key checked again.
    let target = Target {
        key: &key,
        method,
        path,
    };
    let mut valued = spend::value(state, target, &params).await?;
    // A library's retry of a money request already counted reserves nothing more.
    let client_key = headers
        .client_idempotency_key
        .as_ref()
        .and_then(|key| key.to_str().ok());
    let idempotent = replay::replay(state, target, &params, client_key, valued.as_mut()).await?;
    // A request that moves money is on record before it is forwarded.
    let audit_row = match &valued {
        Some(valued) => Some(trail.before_forwarding(state, valued.need_micros)?),
        None => None,
    };
    // A PaymentIntent create's metadata pairs are pending with that row.
    let upstream_key = headers
        .headers
        .get(&upstream::IDEMPOTENCY_KEY)
        .and_then(|key| key.to_str().ok())
        .map(str::to_owned);
    let pending = pairs::pending(
        state,
        target,
        &params,
        trail.request_id(),
        upstream_key.as_deref(),
    )?;
    if !pending.is_empty() {
        trail.pairs_pending();
    }
    // Time passed since the lookup only if a body arrived or a price was read upstream.
    let checked_since_lookup = bodiless && valued.is_none();
    let reservation = spend::reserve(
        state,
        &key,
        valued.as_ref(),
        checked_since_lookup,
        audit_row.into_iter().chain(pending).collect(),
    )
    .await?;
    trail.reserved(reservation.as_ref().map_or(0, |r| r.micros()));

    // Stripe, then what its answer changes.
    let sent_headers = sight.may_read_pages().then(|| headers.headers.clone());
    let outcome = upstream::send(state, method, path, params.encode(), headers.headers).await;
    let (pairs, known) = pairs::answered(state, target, &outcome, upstream_key.as_deref());
    trail.forwarded(known);
    let mut settlement = spend::settle(
        state,
        target,
        path_owner.as_deref(),
        valued.as_ref(),
        reservation.as_ref(),
        &outcome,
    );
    let remembered = idempotent.and_then(|i| i.remember(state, target, spend::kept(&outcome)));
    settlement.writes.extend(remembered);
    settlement.writes.extend(pairs);
    trail.settled(settlement);
    // What of the answer the key may see.
    let answer = outcome.map_err(|failure| failure.error)?;
    let page = Page {
        path,
        params: &params,
        headers: &sent_headers.unwrap_or_default(),
    };
    let answer = sight.limit(state, &key, page, answer).await?;
    Ok(answer.into_response_for(headers.client_idempotency_key))
}
