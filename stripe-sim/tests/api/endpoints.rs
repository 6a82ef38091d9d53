//! Update, increment_authorization, list, refund listing and `expand[]`.

use serde_json::json;

use crate::helpers::TestSim;

#[tokio::test]
async fn update_changes_what_stripe_lets_change() {
    let sim = TestSim::spawn().await;
    let pi = sim
        .post(
            "/v1/payment_intents",
            &[
                ("amount", "100"),
                ("currency", "usd"),
                ("metadata[a]", "1"),
                ("metadata[b]", "2"),
            ],
        )
        .await
        .body;
    let id = pi["id"].as_str().unwrap();
    let path = format!("/v1/payment_intents/{id}");
    let updated = sim
        .post(
            &path,
            &[
                ("amount", "250"),
                ("payment_method", "pm_card_visa"),
                ("description", "order 7"),
                ("metadata[a]", ""),
                ("metadata[c]", "3"),
                ("receipt_email", "a@b.example"),
            ],
        )
        .await
        .body;
    assert_eq!(updated["amount"], 250);
    assert_eq!(updated["status"], "requires_confirmation");
    assert_eq!(updated["description"], "order 7");
    assert_eq!(updated["receipt_email"], "a@b.example");
    assert_eq!(
        updated["metadata"],
        json!({"b": "2", "c": "3"}),
        "an empty value unsets a key"
    );
    let confirmed = sim
        .post(
            &format!("{path}/confirm"),
            &[("return_url", "https://shop.example")],
        )
        .await;
    assert_eq!(confirmed.body["status"], "succeeded");
    let late = sim.post(&path, &[("amount", "999")]).await;
    assert_eq!(late.error_code(), "payment_intent_unexpected_state");
    let note = sim.post(&path, &[("metadata[shipped]", "yes")]).await;
    assert_eq!(
        note.body["metadata"]["shipped"], "yes",
        "metadata changes at any time"
    );
    assert_eq!(
        sim.post(&path, &[("confirm", "true")]).await.error_code(),
        "parameter_unknown"
    );
}

#[tokio::test]
async fn increment_authorization_raises_a_held_amount_that_asked_for_it() {
    let sim = TestSim::spawn().await;
    let form = |incremental: &'static str| {
        vec![
            ("amount", "1000"),
            ("currency", "usd"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
            ("capture_method", "manual"),
            ("automatic_payment_methods[enabled]", "true"),
            ("automatic_payment_methods[allow_redirects]", "never"),
            (
                "payment_method_options[card][request_incremental_authorization]",
                incremental,
            ),
        ]
    };
    let held = sim
        .post("/v1/payment_intents", &form("if_available"))
        .await
        .body;
    assert_eq!(held["status"], "requires_capture", "{held}");
    let id = held["id"].as_str().unwrap();
    let raised = sim
        .post(
            &format!("/v1/payment_intents/{id}/increment_authorization"),
            &[("amount", "1500")],
        )
        .await;
    assert_eq!(raised.status, 200, "{}", raised.body);
    assert_eq!(
        (
            raised.body["amount"].clone(),
            raised.body["amount_capturable"].clone()
        ),
        (json!(1500), json!(1500))
    );
    let lower = sim
        .post(
            &format!("/v1/payment_intents/{id}/increment_authorization"),
            &[("amount", "10")],
        )
        .await;
    assert_eq!(lower.status, 400);
    let captured = sim
        .post(&format!("/v1/payment_intents/{id}/capture"), &[])
        .await
        .body;
    assert_eq!(captured["amount_received"], 1500);

    let plain = sim.post("/v1/payment_intents", &form("never")).await.body;
    let refused = sim
        .post(
            &format!(
                "/v1/payment_intents/{}/increment_authorization",
                plain["id"].as_str().unwrap()
            ),
            &[("amount", "1500")],
        )
        .await;
    assert_eq!(refused.status, 400, "not requested: {}", refused.body);
    let done = sim.charge("100").await;
    let not_held = sim
        .post(
            &format!(
                "/v1/payment_intents/{}/increment_authorization",
                done["id"].as_str().unwrap()
            ),
            &[("amount", "200")],
        )
        .await;
    assert_eq!(not_held.error_code(), "payment_intent_unexpected_state");
}

#[tokio::test]
async fn lists_page_newest_first_and_filter() {
    let sim = TestSim::spawn().await;
    let mut ids = Vec::new();
    for customer in ["cus_a", "cus_b", "cus_a"] {
        let pi = sim
            .post(
                "/v1/payment_intents",
                &[
                    ("amount", "100"),
                    ("currency", "usd"),
                    ("customer", customer),
                ],
            )
            .await
            .body;
        ids.push(pi["id"].as_str().unwrap().to_owned());
    }
    let first = sim.get("/v1/payment_intents?limit=2").await.body;
    assert_eq!(first["object"], "list");
    assert_eq!(first["url"], "/v1/payment_intents");
    assert_eq!(first["has_more"], true);
    assert_eq!(first["data"][0]["id"], ids[2].as_str());
    assert_eq!(first["data"][1]["id"], ids[1].as_str());
    let rest = sim
        .get(&format!(
            "/v1/payment_intents?limit=2&starting_after={}",
            ids[1]
        ))
        .await
        .body;
    assert_eq!(
        (rest["data"][0]["id"].clone(), rest["has_more"].clone()),
        (json!(ids[0]), json!(false))
    );
    let mine = sim.get("/v1/payment_intents?customer=cus_a").await.body;
    assert_eq!(mine["data"].as_array().unwrap().len(), 2);
    let now = first["data"][0]["created"].as_i64().unwrap();
    let later = sim
        .get(&format!("/v1/payment_intents?created[gt]={now}"))
        .await
        .body;
    assert!(later["data"].as_array().unwrap().is_empty());
    assert_eq!(sim.get("/v1/payment_intents?limit=101").await.status, 400);
    assert_eq!(
        sim.get("/v1/payment_intents?starting_after=pi_nope")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn refunds_are_listed_by_payment_intent_and_objects_expand() {
    let sim = TestSim::spawn().await;
    let pi = sim.charge("3000").await;
    let other = sim.charge("500").await;
    let id = pi["id"].as_str().unwrap();
    for amount in ["1000", "500"] {
        sim.post("/v1/refunds", &[("payment_intent", id), ("amount", amount)])
            .await;
    }
    sim.post(
        "/v1/refunds",
        &[("payment_intent", other["id"].as_str().unwrap())],
    )
    .await;
    let listed = sim
        .get(&format!("/v1/refunds?payment_intent={id}"))
        .await
        .body;
    let amounts: Vec<i64> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, [500, 1000]);
    assert_eq!(
        sim.get("/v1/refunds").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let expanded = sim
        .get(&format!(
            "/v1/refunds?payment_intent={id}&expand[]=data.charge"
        ))
        .await
        .body;
    assert_eq!(expanded["data"][0]["charge"]["object"], "charge");
    let with_pm = sim
        .get(&format!(
            "/v1/payment_intents/{id}?expand[0]=latest_charge&expand[1]=payment_method"
        ))
        .await
        .body;
    assert_eq!(with_pm["latest_charge"]["amount_refunded"], 1500);
    assert_eq!(with_pm["payment_method"]["card"]["last4"], "4242");
    let bad = sim
        .get(&format!("/v1/payment_intents/{id}?expand[]=colour"))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.body["error"]["message"],
        "This property cannot be expanded (colour)."
    );
    // Nested, as Stripe documents it: a charge's refunds are not in it by
    // default (since 2022-11-15) but expand through its PaymentIntent.
    let nested = sim
        .get(&format!(
            "/v1/payment_intents/{id}?expand[]=latest_charge.refunds"
        ))
        .await
        .body;
    let refunds = nested["latest_charge"]["refunds"]["data"]
        .as_array()
        .unwrap();
    assert_eq!(refunds.len(), 2);
    assert_eq!(refunds[0]["object"], "refund");
    for path in [
        "latest_charge.colour",
        "latest_charge.refunds.charge.payment_intent.latest_charge",
    ] {
        let refused = sim
            .get(&format!("/v1/payment_intents/{id}?expand[]={path}"))
            .await;
        assert_eq!(refused.status, 400, "{path}");
    }
}
