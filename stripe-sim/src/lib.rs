//! stripe-sim: a Stripe API simulator for tests and the local stack.
//!
//! It behaves as Stripe does for any client (Stripe's official Python library
//! runs against it in `contract/`): form-encoded PaymentIntents and refunds
//! with every parameter Stripe's own definitions list (`reference/`), objects
//! with every field of Stripe's example objects, `Stripe-Version` and the
//! rules that change with it, Stripe's test payment methods (declines, 3-D
//! Secure, a bank debit that stays `processing`), list and search, Stripe's
//! error envelope, and `Idempotency-Key` replay, on which exactly-once
//! charges rest. A test-only control API under `/_sim` stages
//! faults (error statuses, delays, and responses lost before or after the
//! operation commits; on the next N requests, or on a share of them for a
//! while) and shows what the simulator holds and was sent, and when.
//! State is in memory and scoped per secret key, as on Stripe.
//!
//! Modules:
//! - [`api`]: the order a request goes through; [`routes`]: the endpoints.
//! - [`payment_intents`], [`attempts`], [`pi_changes`], [`refunds`]: the objects' rules;
//!   [`objects`] their shapes; [`cards`] the test payment methods.
//! - [`listing`], [`search`]: list endpoints and the search query language.
//! - [`params`], [`reference`]: form parameters, and which ones Stripe takes;
//!   [`currencies`]: the currencies Stripe takes and their minimum amounts.
//! - [`version`], the API version a request is served at (`Stripe-Version`).
//! - [`idempotency`]: the answers saved by key, and the rules for replaying them.
//! - [`faults`], [`control`]: staged faults and the `/_sim` API.
//! - [`server`]: the accept loop that can drop a connection unanswered.
//! - [`state`], [`account`], [`error`], [`response`], [`ids`]: the plumbing.

pub mod account;
pub mod api;
pub mod attempts;
pub mod cards;
pub mod control;
pub mod currencies;
pub mod error;
pub mod faults;
pub mod idempotency;
pub mod ids;
pub mod listing;
pub mod objects;
pub mod params;
pub mod payment_intents;
pub mod pi_changes;
pub mod reference;
pub mod refunds;
pub mod response;
pub mod routes;
pub mod search;
pub mod server;
pub mod state;
pub mod version;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

pub use state::Sim;

/// The simulator's routes over `sim`.
pub fn app(sim: Arc<Sim>) -> Router {
    Router::new()
        .route(
            "/_sim/faults",
            post(control::add_fault)
                .get(control::faults)
                .delete(control::clear_faults),
        )
        .route("/_sim/payment_intents", get(control::payment_intents))
        .route(
            "/_sim/payment_intents/{id}/authenticate",
            post(control::authenticate),
        )
        .route("/_sim/payment_intents/{id}/settle", post(control::settle))
        .route("/_sim/refunds/{id}/settle", post(control::settle_refund))
        .route("/_sim/clock", post(control::advance_clock))
        .route("/_sim/config", post(control::config))
        .route("/_sim/charges", get(control::charges))
        .route("/_sim/refunds", get(control::refunds))
        .route("/_sim/requests", get(control::requests))
        .route("/_sim/reset", post(control::reset))
        .fallback(api::stripe)
        .with_state(sim)
}

/// Serves a fresh simulator on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_with(listener, Duration::ZERO, shutdown).await
}

/// [`run`], with new PaymentIntents out of search results for `search_delay`.
pub async fn run_with(
    listener: TcpListener,
    search_delay: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener, app(Arc::new(Sim::new(search_delay))), shutdown).await
}
