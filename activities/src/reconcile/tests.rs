use super::*;

fn found(pairs: &[(&str, &str)]) -> Vec<Found> {
    pairs
        .iter()
        .map(|(id, status)| Found {
            id: (*id).to_owned(),
            status: (*status).to_owned(),
            metadata: BTreeMap::new(),
        })
        .collect()
}

#[test]
fn a_charge_found_is_charged_and_nothing_is_not_until_the_window_passes() {
    let (early, late, window) = (
        Duration::from_secs(1),
        Duration::from_secs(100),
        Duration::from_secs(90),
    );
    let charged = found(&[("pi_0", "requires_payment_method"), ("pi_1", "succeeded")]);
    assert_eq!(
        first_charged(&charged).map(|pi| pi.id.as_str()),
        Some("pi_1")
    );
    assert!(first_charged(&found(&[("pi_1", "processing")])).is_none());
    let unheld_of = |pairs: &[(&str, &str)], complete, since| {
        unheld(&found(pairs), complete, since, window, None)
    };
    assert!(matches!(
        unheld_of(&[], true, early),
        Err(AttemptFailure::NotYetIndexed)
    ));
    assert_eq!(
        unheld_of(&[], true, late).ok(),
        Some(ReconcileOutput::NotCharged { found: vec![] })
    );
    assert!(matches!(
        unheld_of(&[], false, late),
        Err(AttemptFailure::NotYetIndexed)
    ));
    assert!(matches!(
        unheld_of(&[("pi_1", "processing")], true, late),
        Err(AttemptFailure::Unsettled { .. })
    ));
    assert!(matches!(
        unheld_of(&[("pi_1", "requires_payment_method")], true, early),
        Err(AttemptFailure::NotYetIndexed)
    ));
    assert!(matches!(
        unheld_of(&[("pi_1", "requires_payment_method")], true, late),
        Ok(ReconcileOutput::NotCharged { .. })
    ));
    // A charge refunded in full is the answer only where "nothing charged" would be.
    let refunded = ReconcileOutput::Charged {
        payment_intent_id: "pi_2".to_owned(),
        status: "succeeded".to_owned(),
        refund_id: Some("re_1".to_owned()),
    };
    let pairs = found(&[("pi_2", "succeeded")]);
    assert!(matches!(
        unheld(&pairs, true, early, window, Some(refunded.clone())),
        Err(AttemptFailure::NotYetIndexed)
    ));
    assert!(matches!(
        unheld(&pairs, false, late, window, Some(refunded.clone())),
        Err(AttemptFailure::NotYetIndexed)
    ));
    assert_eq!(
        unheld(&pairs, true, late, window, Some(refunded.clone())).ok(),
        Some(refunded)
    );
    assert!(check_checkout_id("0190a8c3-7f2e-7c1a-9d1e-1f2a3b4c5d6e").is_ok());
    assert!(check_checkout_id("x' OR status:'succeeded").is_err());
}

#[test]
fn only_the_checkouts_own_payment_intents_count() {
    let found: Found = serde_json::from_value(serde_json::json!({
        "id": "pi_1", "status": "succeeded", "metadata": {"checkout_id": "c-1", "order_id": "o-1"}
    }))
    .expect("a PaymentIntent");
    assert!(found.of("c-1"));
    assert!(
        !found.of("c-2"),
        "another checkout's charge is not this one's"
    );
    let bare: Found =
        serde_json::from_value(serde_json::json!({"id": "pi_2", "status": "succeeded"}))
            .expect("a PaymentIntent");
    assert!(!bare.of("c-1"));
}

#[test]
fn a_list_the_broker_cannot_read_to_its_end_is_not_yet_an_answer() {
    let narrow = ProxyError::Broker {
        status: 400,
        code: "invalid_request".to_owned(),
        message: "no object this key may see among the next 5 pages of this list: narrow it (created, customer) or search instead".to_owned(),
    };
    assert!(matches!(unread(narrow), AttemptFailure::NotYetIndexed));
    let refused = ProxyError::Broker {
        status: 403,
        code: "endpoint_not_allowed".to_owned(),
        message: "GET /v1/payment_intents".to_owned(),
    };
    assert!(matches!(unread(refused), AttemptFailure::Call(_)));
}
