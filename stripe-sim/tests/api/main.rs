//! stripe-sim over real HTTP on port 0: Stripe's endpoints, idempotency and
//! staged faults, observed through the `/_sim` control API.

mod binary;
mod contract;
mod endpoints;
mod faults;
mod headers;
mod helpers;
mod idempotency;
mod methods;
mod payment_intents;
mod refunds;
mod schema;
mod search;
mod shapes;
mod spec;
mod validation;
mod versions;
