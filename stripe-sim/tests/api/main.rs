//! stripe-sim over real HTTP on port 0: Stripe's endpoints, idempotency and
//! staged faults, observed through the `/_sim` control API.

mod binary;
mod contract;
mod endpoints;
mod faults;
mod helpers;
mod idempotency;
mod methods;
mod payment_intents;
mod refunds;
mod search;
mod shapes;
mod versions;
