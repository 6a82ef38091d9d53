//! A role's daily cap: all its keys together, through any broker, never
//! move more than it (stripe-sim's record of what succeeded is the judge).

use std::net::SocketAddr;

use reqwest::Method;
use serde_json::{Value, json};

use super::{CHARGE, call, key_request, role_token, worker_role};
use crate::attacks::{broker_on_sim, succeeded_cents};
use crate::helpers::{Backend, TestBroker, code, json_of};

/// A $1 charge confirmed with `card` through the broker at `addr` with vault key `key`.
async fn dollar_charge(addr: SocketAddr, key: &str, card: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/stripe/v1/payment_intents"))
        .bearer_auth(key)
        .header("Stripe-Version", crate::attacks::OLD_STRIPE_VERSION)
        .form(&[
            ("amount", "100"),
            ("currency", "usd"),
            ("confirm", "true"),
            ("payment_method", card),
        ])
        .send()
        .await
        .unwrap();
    json_of(response).await
}

/// What brokers have leased today of the broker's first role's daily cap.
async fn leased_today(broker: &TestBroker) -> Value {
    let (_, roles) = broker.admin(Method::GET, "/v1/roles", None).await;
    roles["roles"][0]["leased_usd_today"].clone()
}

/// However many keys a role token issues, and across two brokers, all of
/// them together move at most the role's daily cap.
pub async fn a_roles_daily_cap_holds_across_its_keys_and_brokers(backend: Backend) {
    let (broker, sim) = broker_on_sim(backend).await;
    let token = role_token(&broker, worker_role("worker", 20.0)).await;
    let base = sim.clone();
    let sibling = match backend {
        Backend::Postgres => {
            broker
                .sibling_with(move |c| c.stripe_api_base = base.parse().unwrap())
                .await
        }
        Backend::Sqlite => broker.addr,
    };
    let charges = (0..50).map(|i| {
        let token = token.clone();
        let addr = if i % 2 == 0 { broker.addr } else { sibling };
        async move {
            let label = format!("temporal-wf{i}-charge");
            let (status, body) = call(
                addr,
                &token,
                Method::POST,
                "/v1/keys",
                Some(key_request(&label, &[CHARGE], 5.0)),
            )
            .await;
            assert_eq!(status, 201, "{body}");
            let key = body["token"].as_str().unwrap().to_owned();
            let (status, body) = dollar_charge(addr, &key, "pm_card_visa").await;
            assert!(
                status == 200 || (status == 429 && code(&body) == "cap_exhausted"),
                "{status} {body}"
            );
            status
        }
    });
    let statuses = futures::future::join_all(charges).await;
    let succeeded = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(succeeded, 20, "exactly the role's $20 in $1 charges");
    assert_eq!(
        succeeded_cents(&sim).await,
        2000,
        "stripe-sim moved the role's cap, no more"
    );
    assert_eq!(leased_today(&broker).await, json!(20.0));
}

/// A broker leases a role's cap in slices: what it leased and did not use
/// when it restarts stays counted, so the cap goes partly unused that day,
/// never passed; and a declined charge gives its part back to the slice.
pub async fn a_restarted_broker_leaves_its_unused_slice_counted(backend: Backend) {
    let (mut broker, sim) = broker_on_sim(backend).await;
    // $64 a day: slices of $2, so each $1 charge leaves $1 leased and unused.
    let mut role = worker_role("worker", 64.0);
    role["max_key_usd_cap"] = json!(100);
    let token = role_token(&broker, role).await;
    let (status, body) = call(
        broker.addr,
        &token,
        Method::POST,
        "/v1/keys",
        Some(key_request("temporal-wf-charge", &[CHARGE], 100.0)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let key = body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        dollar_charge(broker.addr, &key, "pm_card_visa").await.0,
        200
    );
    assert_eq!(
        dollar_charge(broker.addr, &key, "pm_card_chargeDeclined")
            .await
            .0,
        402,
        "a decline"
    );
    let base = sim.clone();
    broker
        .restart_with(move |c| c.stripe_api_base = base.parse().unwrap())
        .await;
    let mut succeeded = 1;
    loop {
        let (status, body) = dollar_charge(broker.addr, &key, "pm_card_visa").await;
        if status != 200 {
            assert_eq!((status, code(&body)), (429, "cap_exhausted"), "{body}");
            assert!(body.to_string().contains("role worker"), "{body}");
            break;
        }
        succeeded += 1;
        assert!(succeeded <= 64, "never past the role's cap");
    }
    assert_eq!(
        succeeded, 63,
        "the slice leased before the restart stays counted"
    );
    assert_eq!(succeeded_cents(&sim).await, 6300);
    assert_eq!(leased_today(&broker).await, json!(64.0));
}
