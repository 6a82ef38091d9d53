//! Lists, searches and expansions show a key only the objects it may see:
//! its label's, those it was issued for, and those whose metadata matches
//! its `allowed_metadata`. Pages stay walkable to the end.

use serde_json::{Value, json};

use super::{broker_on_sim, post_form};
use crate::helpers::{Backend, TestBroker, code, json_of};

const LIST: &str = "GET /v1/payment_intents";
const SEARCH: &str = "GET /v1/payment_intents/search";

/// Creates a $1 PaymentIntent with `order_id` in its metadata; its id.
async fn create(broker: &TestBroker, token: &str, order_id: &str) -> String {
    let form = format!("amount=100&currency=usd&metadata[order_id]={order_id}");
    let (status, body) = post_form(broker, token, "/v1/payment_intents", &form).await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Every id a list or search walk returns, page by page, as a Stripe
/// library's auto-pagination walks it (`starting_after` the last item, or
/// `page` = `next_page`).
async fn walk(broker: &TestBroker, token: &str, first: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut path = first.to_owned();
    for _ in 0..100 {
        let (status, body) = json_of(broker.stripe_get(token, &path).await).await;
        assert_eq!(status, 200, "{path}: {body}");
        let data = body["data"].as_array().unwrap();
        ids.extend(
            data.iter()
                .map(|item| item["id"].as_str().unwrap().to_owned()),
        );
        if body["has_more"] != true {
            return ids;
        }
        path = match body["next_page"].as_str() {
            Some(page) => format!("{first}&page={page}"),
            None => {
                let last = data
                    .last()
                    .expect("a page with more to follow is never empty");
                format!("{first}&starting_after={}", last["id"].as_str().unwrap())
            }
        };
    }
    panic!("{first}: more than 100 pages");
}

/// A key that may list and search PaymentIntents, named exactly.
async fn reader(broker: &TestBroker, label: &str, extra: Value) -> String {
    broker
        .issue_with(label, &[LIST, SEARCH], 0.0, extra)
        .await
        .token
}

/// A list or a search shows a key only its label's PaymentIntents and those
/// whose metadata matches its `allowed_metadata`, across pages, however many
/// foreign ones lie between.
pub async fn lists_and_searches_show_a_key_only_what_it_may_see(backend: Backend) {
    let (broker, sim) = broker_on_sim(backend).await;
    let endpoints = ["POST /v1/payment_intents"];
    let own = broker
        .issue("temporal-own-charge", &endpoints, 10.0, json!(60))
        .await;
    let other = broker
        .issue("temporal-other-charge", &endpoints, 1000.0, json!(60))
        .await;
    // Newest first: own ones with 12 and 13 foreign ones between them.
    let mut own_ids = Vec::new();
    let mut order_2 = Vec::new();
    for batch in [0, 12, 13] {
        for _ in 0..batch {
            order_2.push(create(&broker, &other.token, "o-2").await);
        }
        own_ids.push(create(&broker, &own.token, "o-1").await);
    }
    own_ids.reverse();
    order_2.reverse();

    let same_label = reader(&broker, "temporal-own-charge", json!({})).await;
    for listing in ["/v1/payment_intents?limit=2", "/v1/payment_intents?limit=1"] {
        assert_eq!(
            walk(&broker, &same_label, listing).await,
            own_ids,
            "{listing}: only the label's own, all of them, newest first"
        );
    }
    // A search is narrowed at Stripe by allowed_metadata; a key without any may not search.
    let search_all = "/v1/payment_intents/search?query=currency%3A%27usd%27";
    let (status, body) = json_of(broker.stripe_get(&same_label, search_all).await).await;
    assert_eq!(
        (status, code(&body)),
        (403, "endpoint_not_allowed"),
        "{body}"
    );

    let stranger = reader(&broker, "temporal-stranger-reconcile", json!({})).await;
    let (status, body) = json_of(
        broker
            .stripe_get(&stranger, "/v1/payment_intents?limit=100")
            .await,
    )
    .await;
    assert_eq!(
        (status, body["data"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{body}"
    );

    let order_reader = reader(
        &broker,
        "temporal-order-reconcile",
        json!({"allowed_metadata": {"order_id": "o-2"}}),
    )
    .await;
    assert_eq!(
        walk(
            &broker,
            &order_reader,
            "/v1/payment_intents/search?query=currency%3A%27usd%27&limit=3"
        )
        .await,
        order_2,
        "metadata finds another label's objects of that order only"
    );
    assert_eq!(
        walk(&broker, &order_reader, "/v1/payment_intents?limit=5").await,
        order_2
    );
    // Every search it sends upstream names its metadata first; with OR, the
    // client's clause could widen it, so OR is refused.
    let searches: Vec<String> = reqwest::get(format!("{sim}/_sim/requests"))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/v1/payment_intents/search")
        .map(|r| r["query"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(!searches.is_empty());
    for query in searches {
        let query: String = form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "query")
            .map(|(_, value)| value.into_owned())
            .unwrap();
        assert!(
            query.starts_with("metadata['order_id']:'o-2' AND "),
            "narrowed at Stripe: {query}"
        );
    }
    let widened = "/v1/payment_intents/search?query=currency%3A%27usd%27%20OR%20amount%3E0";
    let (status, body) = json_of(broker.stripe_get(&order_reader, widened).await).await;
    assert_eq!((status, code(&body)), (400, "invalid_request"), "{body}");
    // A read by id is checked on the answer: an order-2 object is shown,
    // an order-1 object withheld.
    let shown = format!("/v1/payment_intents/{}", order_2[0]);
    let withheld = format!("/v1/payment_intents/{}", own_ids[0]);
    let order_reader_by_id = broker
        .issue_with(
            "temporal-order-reconcile",
            &["GET /v1/payment_intents/*"],
            0.0,
            json!({"allowed_metadata": {"order_id": "o-2"}}),
        )
        .await
        .token;
    let (status, body) = json_of(broker.stripe_get(&order_reader_by_id, &shown).await).await;
    assert_eq!(
        (status, body["id"].as_str()),
        (200, Some(order_2[0].as_str()))
    );
    let (status, body) = json_of(broker.stripe_get(&order_reader_by_id, &withheld).await).await;
    assert_eq!((status, code(&body)), (403, "object_not_allowed"), "{body}");
    assert!(
        !body.to_string().contains("o-1"),
        "nothing of it leaks: {body}"
    );
}

/// A list whose first pages hold nothing the key may see is a clear error,
/// never an empty page that claims more follow.
pub async fn a_list_with_nothing_visible_for_pages_is_refused_not_emptied(backend: Backend) {
    let (broker, _sim) = broker_on_sim(backend).await;
    let own = broker
        .issue(
            "temporal-own-charge",
            &["POST /v1/payment_intents"],
            10.0,
            json!(60),
        )
        .await;
    let other = broker
        .issue(
            "temporal-other-charge",
            &["POST /v1/payment_intents"],
            1000.0,
            json!(60),
        )
        .await;
    create(&broker, &own.token, "o-1").await;
    // More foreign objects than the broker reads for one page (5 pages of 2, then of 100).
    for _ in 0..410 {
        create(&broker, &other.token, "o-2").await;
    }
    let same_label = reader(&broker, "temporal-own-charge", json!({})).await;
    let (status, body) = json_of(
        broker
            .stripe_get(&same_label, "/v1/payment_intents?limit=2")
            .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("narrow it"),
        "{body}"
    );
}

/// An object expanded into an answer that the key may not see comes back
/// as its id; one it may see stays expanded.
pub async fn an_expansion_reaches_only_what_the_key_may_see(backend: Backend) {
    let (broker, _sim) = broker_on_sim(backend).await;
    let charger = broker
        .issue(
            "temporal-own-charge",
            &["POST /v1/payment_intents"],
            10.0,
            json!(60),
        )
        .await;
    let (status, paid) = post_form(
        &broker,
        &charger.token,
        "/v1/payment_intents",
        "amount=100&currency=usd&confirm=true&payment_method=pm_card_visa&metadata[order_id]=o-1",
    )
    .await;
    assert_eq!(status, 200, "{paid}");
    let pi = paid["id"].as_str().unwrap();
    let charge = paid["latest_charge"].as_str().unwrap();

    // Issued for the charge alone: its PaymentIntent is not the key's to read.
    let charge_only = broker
        .issue_with(
            "temporal-audit-read",
            &["GET /v1/charges/*"],
            0.0,
            json!({"allowed_objects": [charge]}),
        )
        .await
        .token;
    let path = format!("/v1/charges/{charge}?expand[]=payment_intent");
    let (status, body) = json_of(broker.stripe_get(&charge_only, &path).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["payment_intent"],
        json!(pi),
        "collapsed to its id: {body}"
    );

    // The charge's own label sees both: the expansion stays.
    let same_label = broker
        .issue(
            "temporal-own-charge",
            &["GET /v1/charges/*"],
            0.0,
            json!(60),
        )
        .await
        .token;
    let (status, body) = json_of(broker.stripe_get(&same_label, &path).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payment_intent"]["id"], json!(pi), "{body}");
    assert_eq!(body["payment_intent"]["metadata"]["order_id"], "o-1");

    // A charge seen as a PaymentIntent's own stays expanded in a list.
    let lister = reader(&broker, "temporal-own-charge", json!({})).await;
    let (status, body) = json_of(
        broker
            .stripe_get(&lister, "/v1/payment_intents?expand[]=data.latest_charge")
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"][0]["latest_charge"]["id"],
        json!(charge),
        "{body}"
    );

    // Past Stripe's depth and count limits: refused before forwarding.
    let deep = format!("/v1/charges/{charge}?expand[]=a.b.c.d.e");
    let (status, body) = json_of(broker.stripe_get(&same_label, &deep).await).await;
    assert_eq!((status, code(&body)), (400, "invalid_request"), "{body}");
}

/// Issue 24's review, with a hostile upstream: an answer to a list request
/// that is not a page the broker can read (a `data` under another object,
/// no `object`, an array) was passed on whole, whatever it held; it is
/// now refused 502. And an item that is an array is no object at all: its
/// values are not read as an id and metadata in order.
pub async fn a_list_answer_that_is_no_page_is_never_passed_on(backend: Backend) {
    use crate::helpers::Reply;
    let broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue(
            "temporal-odd-charge",
            &["POST /v1/payment_intents", "GET /v1/payment_intents"],
            10.0,
            json!(60),
        )
        .await;
    // The recording upstream answers every create with `pi_test`: this key's.
    let form = [("amount", "100"), ("currency", "usd")];
    assert_eq!(
        broker
            .stripe_post(&key.token, "/v1/payment_intents", &form)
            .await
            .status(),
        200
    );
    let hidden = json!({"id": "pi_hidden", "secret": "S"});
    for body in [
        json!({"object": "payment_intent", "data": [hidden]}),
        json!({"data": [hidden], "has_more": false}),
        json!({"object": "list", "data": [hidden], "object": "list_x"}),
        json!([hidden]),
    ] {
        broker.upstream.script([Reply {
            body: body.clone(),
            ..Reply::status(200)
        }]);
        let response = broker.stripe_get(&key.token, "/v1/payment_intents").await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 502, "{body} answered {text}");
        assert!(!text.contains("secret"), "{text}");
    }
    broker.upstream.script([Reply {
        body: json!({"object": "list", "has_more": false,
            "data": [["pi_test", {"secret": "S"}], {"id": "pi_test", "amount": 100}]}),
        ..Reply::status(200)
    }]);
    let (status, page) = json_of(broker.stripe_get(&key.token, "/v1/payment_intents").await).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"], json!([{"id": "pi_test", "amount": 100}]));
}
