//! Refunds never add up to more than was captured.

use crate::helpers::TestSim;

#[tokio::test]
async fn refunds_default_to_what_remains_and_never_exceed_it() {
    let sim = TestSim::spawn().await;
    let pi = sim.charge("3000").await;
    let pi_id = pi["id"].as_str().unwrap();
    let partial = sim
        .post(
            "/v1/refunds",
            &[
                ("payment_intent", pi_id),
                ("amount", "1000"),
                ("reason", "requested_by_customer"),
                ("metadata[order_id]", "o1"),
            ],
        )
        .await;
    assert_eq!(partial.status, 200, "{}", partial.body);
    let refund = &partial.body;
    assert!(refund["id"].as_str().unwrap().starts_with("re_"));
    assert_eq!(refund["object"], "refund");
    assert_eq!(refund["amount"], 1000);
    assert_eq!(refund["payment_intent"], pi_id);
    assert_eq!(refund["charge"], pi["latest_charge"]);
    assert_eq!(refund["status"], "succeeded");
    assert_eq!(refund["reason"], "requested_by_customer");
    assert_eq!(refund["metadata"]["order_id"], "o1");

    let over = sim
        .post(
            "/v1/refunds",
            &[("payment_intent", pi_id), ("amount", "2001")],
        )
        .await;
    assert_eq!((over.status, over.error_code()), (400, "amount_too_large"));
    let rest = sim
        .post(
            "/v1/refunds",
            &[("charge", pi["latest_charge"].as_str().unwrap())],
        )
        .await;
    assert_eq!(rest.body["amount"], 2000, "the default is what remains");
    let done = sim.post("/v1/refunds", &[("payment_intent", pi_id)]).await;
    assert_eq!(
        (done.status, done.error_code()),
        (400, "charge_already_refunded")
    );

    let charge = sim
        .get(&format!(
            "/v1/charges/{}",
            pi["latest_charge"].as_str().unwrap()
        ))
        .await;
    assert_eq!(charge.body["amount_refunded"], 3000);
    assert_eq!(charge.body["refunded"], true);
    let fetched = sim
        .get(&format!("/v1/refunds/{}", refund["id"].as_str().unwrap()))
        .await;
    assert_eq!(fetched.body, *refund);
    let held = sim.held("refunds").await;
    assert_eq!(
        held.iter()
            .map(|r| r["amount"].as_i64().unwrap())
            .sum::<i64>(),
        3000
    );
}

#[tokio::test]
async fn only_captured_money_can_be_refunded() {
    let sim = TestSim::spawn().await;
    let unconfirmed = sim
        .post(
            "/v1/payment_intents",
            &[("amount", "100"), ("currency", "usd")],
        )
        .await;
    let answer = sim
        .post(
            "/v1/refunds",
            &[("payment_intent", unconfirmed.body["id"].as_str().unwrap())],
        )
        .await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (400, "payment_intent_unexpected_state")
    );
    let held = sim
        .post(
            "/v1/payment_intents",
            &[
                ("amount", "100"),
                ("currency", "usd"),
                ("payment_method", "pm_card_visa"),
                ("confirm", "true"),
                ("automatic_payment_methods[enabled]", "true"),
                ("automatic_payment_methods[allow_redirects]", "never"),
                ("capture_method", "manual"),
            ],
        )
        .await;
    let answer = sim
        .post(
            "/v1/refunds",
            &[("charge", held.body["latest_charge"].as_str().unwrap())],
        )
        .await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (400, "charge_not_refundable")
    );
    let answer = sim
        .post("/v1/refunds", &[("payment_intent", "pi_missing")])
        .await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (404, "resource_missing")
    );
    let answer = sim.post("/v1/refunds", &[("amount", "5")]).await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (400, "parameter_missing")
    );
    let answer = sim.get("/v1/refunds/re_missing").await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (404, "resource_missing")
    );
    assert!(sim.held("refunds").await.is_empty());
}

#[tokio::test]
async fn a_charge_embeds_its_refunds_only_before_2022_11_15() {
    let sim = TestSim::spawn().await;
    let pi = sim.charge("3000").await;
    let pi_id = pi["id"].as_str().unwrap();
    let refund = sim
        .post(
            "/v1/refunds",
            &[("payment_intent", pi_id), ("amount", "700")],
        )
        .await
        .body;
    let charge_path = format!("/v1/charges/{}", pi["latest_charge"].as_str().unwrap());
    for version in ["2022-11-15", "2023-08-16", "2026-11-18.endive"] {
        let charge = sim.get_version(&charge_path, version).await.body;
        assert!(
            charge.get("refunds").is_none(),
            "{version}: Stripe stopped embedding refunds: {charge}"
        );
        let expanded = sim
            .get_version(&format!("{charge_path}?expand[]=refunds"), version)
            .await
            .body;
        assert_eq!(
            expanded["refunds"]["data"][0]["id"], refund["id"],
            "{version}"
        );
    }
    let default = sim.get(&charge_path).await.body;
    assert!(default.get("refunds").is_none(), "{default}");
    for version in ["2020-08-27", "2022-08-01"] {
        let charge = sim.get_version(&charge_path, version).await.body;
        assert_eq!(charge["refunds"]["object"], "list", "{version}");
        assert_eq!(
            charge["refunds"]["data"][0]["id"], refund["id"],
            "{version}"
        );
        let pi = sim
            .get_version(
                &format!("/v1/payment_intents/{pi_id}?expand[]=latest_charge"),
                version,
            )
            .await
            .body;
        assert_eq!(
            pi["latest_charge"]["refunds"]["data"][0]["amount"], 700,
            "{version}: an expanded charge too"
        );
    }
}

/// Stripe: "The 10 most recent refunds are always available by default on
/// the Charge object"; the rest are a page further (`has_more`).
#[tokio::test]
async fn a_charge_embeds_its_ten_most_recent_refunds() {
    let sim = TestSim::spawn().await;
    let pi = sim.charge("3000").await;
    let pi_id = pi["id"].as_str().unwrap();
    let mut made = Vec::new();
    for _ in 0..11 {
        let refund = sim
            .post(
                "/v1/refunds",
                &[("payment_intent", pi_id), ("amount", "100")],
            )
            .await
            .body;
        made.push(refund["id"].clone());
    }
    let charge_path = format!(
        "/v1/charges/{}?expand[]=refunds",
        pi["latest_charge"].as_str().unwrap()
    );
    let charge = sim.get(&charge_path).await.body;
    let shown: Vec<serde_json::Value> = charge["refunds"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|refund| refund["id"].clone())
        .collect();
    let newest: Vec<serde_json::Value> = made.iter().rev().take(10).cloned().collect();
    assert_eq!(shown, newest, "the ten most recent, newest first");
    assert_eq!(charge["refunds"]["has_more"], true);
    assert_eq!(charge["amount_refunded"], 1100);
}
