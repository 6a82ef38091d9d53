//! Keylease's workflows and the contract its activities keep with callers.
//!
//! Deterministic code only: no HTTP client, no clock, no randomness. Callers
//! in other SDKs need only [`contract`]: activity names, JSON shapes, failure
//! types and the schedule-to-close header.
//!
//! Modules:
//! - [`contract`]: `charge`, `refund` and `reconcile`, their inputs, outputs and failure types, the task queue.
//! - [`checkout`]: [`CheckoutWorkflow`], the charge → fulfilment → refund saga;
//!   [`checkout::types`] its input, outcome and status; [`checkout::charging`]
//!   (also [`charging`]) its charge step, and the reconciliation of an unknown outcome.
//! - [`fulfilment`]: the `fulfilment` signal's and `fulfil` Update's payload.
//! - [`payloads`]: [`payloads::Raw`], arguments that always decode and are parsed by their handler.
//! - [`policy`]: per-activity timeouts and retry policy.
//! - [`interceptor`]: [`ScheduleToCloseHeader`], which tells each activity its schedule-to-close timeout.

pub mod checkout;
pub mod contract;
pub mod fulfilment;
pub mod interceptor;
pub mod payloads;
pub mod policy;

// The charge step was a top-level module before it moved under the workflow
// that runs it; the worker still reaches `charging::charge_input` here.
pub use checkout::charging;
pub use checkout::{
    CheckoutInput, CheckoutOutcome, CheckoutRequest, CheckoutStatus, CheckoutStep,
    CheckoutWorkflow, ORDER_ID,
};
pub use contract::{
    Charge, ChargeInput, ChargeOutput, Reconcile, ReconcileInput, ReconcileOutput, Refund,
    RefundInput, RefundOutput, TASK_QUEUE,
};
pub use fulfilment::{Fulfilment, FulfilmentRequest};
pub use interceptor::ScheduleToCloseHeader;
pub use policy::{ActivityPolicy, CheckoutPolicy, RetrySettings};
