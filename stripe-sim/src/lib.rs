//! stripe-sim: a Stripe API simulator for tests and the local stack.
//!
//! It speaks Stripe's API where Keylease depends on it: form-encoded
//! PaymentIntents and refunds, test payment methods that succeed or decline,
//! Stripe's error envelope, and `Idempotency-Key` replay, on which
//! exactly-once charges rest. A test-only control API under `/_sim` stages
//! faults (error statuses, delays, and responses lost before or after the
//! operation commits) and shows what the simulator holds and was sent.
//! State is in memory and scoped per secret key, as on Stripe.
//!
//! Modules:
//! - [`api`]: the Stripe endpoints and the order a request goes through.
//! - [`payment_intents`], [`refunds`]: the objects' rules; [`objects`] their shapes.
//! - [`params`]: bracket-nested form parameters.
//! - [`idempotency`]: saving and replaying answers by key.
//! - [`faults`], [`control`]: staged faults and the `/_sim` API.
//! - [`server`]: the accept loop that can drop a connection unanswered.
//! - [`state`], [`account`], [`error`], [`response`], [`ids`]: the plumbing.

pub mod account;
pub mod api;
pub mod control;
pub mod error;
pub mod faults;
pub mod idempotency;
pub mod ids;
pub mod objects;
pub mod params;
pub mod payment_intents;
pub mod refunds;
pub mod response;
pub mod server;
pub mod state;

use std::future::Future;
use std::sync::Arc;

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
    server::serve(listener, app(Arc::new(Sim::default())), shutdown).await
}
