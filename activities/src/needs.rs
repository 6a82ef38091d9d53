//! What the activities' keys need from a broker role: the endpoints they ask for.

use crate::charge::CHARGE_ENDPOINTS;
use crate::payments::{REFUND_ENDPOINT, REFUND_READ_ENDPOINT};
use crate::reconcile::{LIST_ENDPOINT, SEARCH_ENDPOINT};

/// Every allowlist entry the activities' keys ask for: what a broker role
/// for this worker must allow.
pub fn endpoints() -> Vec<&'static str> {
    let mut all = CHARGE_ENDPOINTS.to_vec();
    all.push(REFUND_ENDPOINT);
    all.push(REFUND_READ_ENDPOINT);
    all.push(SEARCH_ENDPOINT);
    all.push(LIST_ENDPOINT);
    all
}
