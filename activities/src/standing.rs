//! What a PaymentIntent's status says of the money: the one table `charge`,
//! `reconcile` and the order check read, and the fields of a PaymentIntent
//! they take from Stripe.

use serde::Deserialize;

/// Where a charge stands, by its PaymentIntent's status.
pub(crate) enum Standing {
    Charged,
    Processing,
    NeedsAuthentication,
    NotCharged,
}

pub(crate) fn standing(status: &str) -> Standing {
    match status {
        "succeeded" | "requires_capture" => Standing::Charged,
        "requires_action" => Standing::NeedsAuthentication,
        "requires_payment_method" | "canceled" | "requires_confirmation" => Standing::NotCharged,
        // `processing`, and any status Stripe may add: not settled, so never "not charged".
        _ => Standing::Processing,
    }
}

/// The fields of a PaymentIntent the activity reads.
#[derive(Debug, Deserialize)]
pub(crate) struct PaymentIntent {
    pub(crate) id: String,
    pub(crate) status: String,
    pub(crate) amount: i64,
    pub(crate) currency: String,
}
