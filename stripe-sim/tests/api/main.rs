//! stripe-sim over real HTTP on port 0: Stripe's endpoints, idempotency and
//! staged faults, observed through the `/_sim` control API.

mod binary;
mod faults;
mod helpers;
mod idempotency;
mod payment_intents;
mod refunds;
