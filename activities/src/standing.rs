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

/// The refund that gave back all of `charge`'s money (a Charge with its
/// `refunds` expanded), if refunds Stripe reports `succeeded` cover what it
/// captured. A `pending` refund (a bank transfer on its way, which may yet
/// fail) gives nothing back yet, though Stripe already counts it in the
/// charge's `amount_refunded` and `refunded`.
pub(crate) fn refunded_in_full(charge: &serde_json::Value) -> Option<String> {
    let captured = charge["amount_captured"]
        .as_i64()
        .or_else(|| charge["amount"].as_i64())?;
    let refunds = charge["refunds"]["data"].as_array()?;
    let succeeded: Vec<&serde_json::Value> = refunds
        .iter()
        .filter(|refund| refund["status"] == "succeeded")
        .collect();
    let back: i64 = succeeded.iter().filter_map(|r| r["amount"].as_i64()).sum();
    (captured > 0 && back >= captured).then(|| {
        succeeded
            .first()
            .and_then(|r| r["id"].as_str())
            .unwrap_or("-")
            .to_owned()
    })
}

/// Whether what `charge` shows cannot tell if its money was all given
/// back: its refunds go on past the page it embeds (Stripe embeds the ten
/// most recent), those shown do not cover what it captured, and Stripe
/// counts as much refunded or on its way back as it captured. (A helper's
/// review: such a charge read as holding money, so a charge anybody made
/// with a checkout's metadata and refunded in eleven parts answered
/// "charged" for it.) With less counted back, some money is surely held.
pub(crate) fn refunds_unseen(charge: &serde_json::Value) -> bool {
    let captured = charge["amount_captured"]
        .as_i64()
        .or_else(|| charge["amount"].as_i64())
        .unwrap_or(0);
    let counted_back = charge["amount_refunded"].as_i64().unwrap_or(0);
    charge["refunds"]["has_more"] == true
        && refunded_in_full(charge).is_none()
        && counted_back >= captured
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refunds_past_the_embedded_page_are_unseen_only_when_they_may_cover_the_rest() {
        let refunds = serde_json::json!([{"id": "re_11", "amount": 10, "status": "succeeded"}]);
        let charge = |refunded: i64, has_more: bool| serde_json::json!({"amount_captured": 100, "amount_refunded": refunded, "refunds": {"data": refunds, "has_more": has_more}});
        assert!(refunds_unseen(&charge(100, true)));
        assert!(
            !refunds_unseen(&charge(99, true)),
            "some money is surely held"
        );
        assert!(
            !refunds_unseen(&charge(100, false)),
            "every refund is shown"
        );
        let covered = serde_json::json!({"amount_captured": 100, "amount_refunded": 100, "refunds": {"data": [{"id": "re_1", "amount": 100, "status": "succeeded"}], "has_more": true}});
        assert!(!refunds_unseen(&covered), "those shown give it all back");
    }

    #[test]
    fn only_succeeded_refunds_give_the_money_back() {
        let charge = |refunds: serde_json::Value| serde_json::json!({"amount_captured": 1000, "refunded": true, "refunds": {"data": refunds}});
        let done =
            charge(serde_json::json!([{"id": "re_1", "amount": 1000, "status": "succeeded"}]));
        assert_eq!(refunded_in_full(&done).as_deref(), Some("re_1"));
        let pending =
            charge(serde_json::json!([{"id": "re_1", "amount": 1000, "status": "pending"}]));
        assert_eq!(
            refunded_in_full(&pending),
            None,
            "a pending refund may yet fail"
        );
        let part = charge(serde_json::json!([
            {"id": "re_1", "amount": 400, "status": "succeeded"},
            {"id": "re_2", "amount": 600, "status": "failed"}
        ]));
        assert_eq!(refunded_in_full(&part), None);
        let unexpanded = serde_json::json!({"amount_captured": 1000, "refunded": true});
        assert_eq!(
            refunded_in_full(&unexpanded),
            None,
            "unseen refunds are not counted"
        );
    }
}
