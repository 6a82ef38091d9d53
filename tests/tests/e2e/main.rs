//! End to end: the Temporal dev server, the broker, stripe-sim and the worker, for real.

mod bad_input;
mod cancellation;
mod checkout;
mod commands;
mod compose;
mod compose_postgres;
mod demo;
mod faults;
mod foreign;
mod fulfilment;
mod ids;
mod observe;
mod production;
mod reconcile;
mod reuse;
mod roles;
mod secrets;
mod shutdown;
mod statuses;
mod stripe_libraries;
mod sweep;
mod tls;
mod weak_tokens;
mod worker_identity;
