//! `GET /v1/payment_intents/search`: Stripe's query language, paging, and an
//! index that lags behind writes by a configurable delay.

use std::time::Duration;

use keylease_testkit::eventually;
use serde_json::json;

use crate::helpers::TestSim;

async fn create(sim: &TestSim, amount: &str, order: &str, confirm: bool) -> String {
    let mut form = vec![
        ("amount", amount),
        ("currency", "usd"),
        ("metadata[order_id]", order),
        ("payment_method", "pm_card_visa"),
    ];
    if confirm {
        form.extend([("confirm", "true"), ("return_url", "https://shop.example")]);
    }
    sim.post("/v1/payment_intents", &form).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn ids(answer: &serde_json::Value) -> Vec<String> {
    answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pi| pi["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn finds_by_metadata_status_and_amount() {
    let sim = TestSim::spawn().await;
    let small = create(&sim, "100", "o-1", true).await;
    let big = create(&sim, "5000", "o-2", true).await;
    let open = create(&sim, "7000", "o-1", false).await;
    let search = |q: &str| {
        format!(
            "/v1/payment_intents/search?query={}",
            q.replace(' ', "%20").replace('\'', "%27")
        )
    };
    let by_order = sim.get(&search("metadata['order_id']:'o-1'")).await.body;
    assert_eq!(by_order["object"], "search_result");
    assert_eq!(ids(&by_order), [open.clone(), small.clone()]);
    assert_eq!(
        ids(&sim
            .get(&search("metadata['order_id']:'o-1' AND status:'succeeded'"))
            .await
            .body),
        vec![small.clone()]
    );
    assert_eq!(
        ids(&sim
            .get(&search("amount>1000 AND status:'succeeded'"))
            .await
            .body),
        vec![big.clone()]
    );
    assert_eq!(
        ids(&sim
            .get(&search("metadata['order_id']:'o-2' OR amount<=100"))
            .await
            .body),
        [big.clone(), small.clone()]
    );
    assert_eq!(
        ids(&sim.get(&search("-status:'succeeded'")).await.body),
        [open]
    );

    let page = sim
        .get(&format!("{}&limit=2", search("currency:'usd'")))
        .await
        .body;
    assert_eq!(
        (page["has_more"].clone(), ids(&page).len()),
        (json!(true), 2)
    );
    let next = sim
        .get(&format!(
            "{}&limit=2&page={}",
            search("currency:'usd'"),
            page["next_page"].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(
        (ids(&next), next["next_page"].clone()),
        (vec![small], json!(null))
    );
    let bad = sim
        .get(&search("status:'a' AND amount>1 OR currency:'usd'"))
        .await;
    assert_eq!(
        (bad.status, &bad.body["error"]["param"]),
        (400, &json!("query"))
    );
    assert_eq!(
        sim.get("/v1/payment_intents/search").await.error_code(),
        "parameter_missing"
    );
}

#[tokio::test]
async fn new_payment_intents_appear_only_after_the_indexing_delay() {
    let sim = TestSim::spawn().await;
    let config = sim
        .http
        .post(sim.url("/_sim/config"))
        .json(&json!({"search_indexing_delay_ms": 600}))
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), 204);
    let id = create(&sim, "100", "late-1", true).await;
    let path = "/v1/payment_intents/search?query=metadata%5B%27order_id%27%5D:%27late-1%27";
    assert!(ids(&sim.get(path).await.body).is_empty(), "not indexed yet");
    assert_eq!(
        sim.get(&format!("/v1/payment_intents/{id}")).await.status,
        200,
        "retrieve sees it at once"
    );
    eventually(Duration::from_secs(5), "the search index", || async {
        (ids(&sim.get(path).await.body) == [id.clone()]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn search_counts_its_matches_when_asked() {
    let sim = TestSim::spawn().await;
    for order in ["o-1", "o-1", "o-2"] {
        create(&sim, "100", order, false).await;
    }
    let path = "/v1/payment_intents/search?query=metadata%5B%27order_id%27%5D%3A%27o-1%27&limit=1";
    let plain = sim.get(path).await.body;
    assert!(
        plain.get("total_count").is_none(),
        "only when expanded: {plain}"
    );
    let counted = sim.get(&format!("{path}&expand[]=total_count")).await;
    assert_eq!(counted.status, 200, "{}", counted.body);
    assert_eq!(counted.body["total_count"], 2);
    assert_eq!(counted.body["data"].as_array().unwrap().len(), 1);
    let refused = sim.get("/v1/payment_intents?expand[]=total_count").await;
    assert_eq!(
        refused.status, 400,
        "lists have no total_count: {}",
        refused.body
    );
}
