use super::*;

fn pi(id: &str, status: &str, checkout: Option<&str>, charge: Option<Value>) -> Listed {
    Listed {
        id: id.to_owned(),
        status: status.to_owned(),
        metadata: checkout
            .map(|c| {
                BTreeMap::from([
                    ("checkout_id".to_owned(), c.to_owned()),
                    ("workflow_id".to_owned(), format!("wf-{c}")),
                ])
            })
            .unwrap_or_default()
            .into_iter()
            .chain([("order_id".to_owned(), "o-1".to_owned())])
            .collect(),
        latest_charge: charge,
        amount: 100,
        currency: "usd".to_owned(),
    }
}

/// Issue 24's second review: with the list read unexpanded, a
/// PaymentIntent search showed as not charged (its index behind) was
/// judged by search's copy and the list's `succeeded` one dropped: the
/// order would have been charged again. The list's copy is judged.
#[test]
fn the_lists_copy_of_a_payment_is_judged_not_searchs() {
    let searched = vec![pi("pi_5", "requires_payment_method", Some("c-old"), None)];
    let listed = vec![pi(
        "pi_5",
        "succeeded",
        Some("c-old"),
        Some(Value::String("ch_1".to_owned())),
    )];
    let found = judged(searched, listed);
    assert_eq!(found.len(), 1, "one PaymentIntent, judged once");
    let paid = earlier(&found, "o-1", Some("c-ours")).expect("the order is paid");
    assert_eq!(
        (paid.payment_intent_id.as_str(), paid.status.as_str()),
        ("pi_5", "succeeded")
    );
    // What only search found stays.
    let searched = vec![pi("pi_6", "succeeded", Some("c-old"), None)];
    assert_eq!(judged(searched, Vec::new()).len(), 1);
}

#[test]
fn only_another_checkouts_unrefunded_payment_is_an_earlier_one() {
    let ours = Some("c-ours");
    let refunded = Some(
        serde_json::json!({"amount_captured": 100, "refunded": true, "refunds": {"data": [{"id": "re_1", "amount": 100, "status": "succeeded"}]}}),
    );
    let partly = Some(serde_json::json!({"refunded": false, "amount_refunded": 100}));
    // Our own attempts' PaymentIntents, refunded ones, and ones holding no money are not.
    assert_eq!(
        earlier(
            &[
                pi("pi_1", "succeeded", ours, None),
                pi("pi_2", "succeeded", Some("c-old"), refunded.clone()),
                pi("pi_3", "requires_payment_method", Some("c-old"), None),
                pi("pi_4", "canceled", Some("c-old"), None),
            ],
            "o-1",
            ours,
        ),
        None
    );
    // Charged, held, on its way or refunded in part: the earlier payment.
    for (status, charge) in [
        ("succeeded", None),
        ("requires_capture", None),
        ("processing", None),
        ("succeeded", partly),
        // Refunded by a refund still pending: it may yet fail.
        (
            "succeeded",
            Some(
                serde_json::json!({"amount_captured": 100, "refunded": true, "refunds": {"data": [{"id": "re_2", "amount": 100, "status": "pending"}]}}),
            ),
        ),
        // A charge the broker did not expand: counted as unrefunded.
        ("succeeded", Some(Value::String("ch_1".to_owned()))),
    ] {
        let found = earlier(&[pi("pi_5", status, Some("c-old"), charge)], "o-1", ours)
            .expect("an earlier payment");
        assert_eq!(found.payment_intent_id, "pi_5");
        assert_eq!(found.workflow_id.as_deref(), Some("wf-c-old"));
        assert_eq!(found.checkout_id.as_deref(), Some("c-old"));
    }
    // One with no checkout (a charge called by another workflow) is another's.
    assert!(earlier(&[pi("pi_6", "succeeded", None, None)], "o-1", ours).is_some());
    // Another order's payment, in an answer nobody filtered: not this order's.
    assert_eq!(
        earlier(&[pi("pi_7", "succeeded", Some("c-old"), None)], "o-2", ours),
        None
    );
}
