//! Attacks on what a key may reach: other labels' objects, idempotency
//! keys, connected accounts, ids a create answer carries, objects named in
//! money parameters, and secrets that would act outside the broker.

use serde_json::{Value, json};

use super::{
    CHARGE_AND_CONFIRM, OLD_STRIPE_VERSION, broker_on_sim, post_form, sim_payment_intents,
};
use crate::helpers::{Backend, TestBroker, code, json_of};

/// A key reads only objects created under its label, or issued for it;
/// lists and searches only when its allowlist names them exactly.
pub async fn a_key_reaches_only_its_own_objects(backend: Backend) {
    let (broker, _sim) = broker_on_sim(backend).await;
    let endpoints = ["POST /v1/payment_intents", "GET /v1/payment_intents/*"];
    let owner = broker
        .issue("temporal-own-charge", &endpoints, 10.0, json!(60))
        .await;
    let (status, created) = post_form(
        &broker,
        &owner.token,
        "/v1/payment_intents",
        "amount=100&currency=usd",
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let pi = created["id"].as_str().unwrap();
    let read = |token: String, path: String| {
        let broker = &broker;
        async move { json_of(broker.stripe_get(&token, &path).await).await }
    };
    let own_path = format!("/v1/payment_intents/{pi}");
    assert_eq!(read(owner.token.clone(), own_path.clone()).await.0, 200);
    let retry = broker
        .issue("temporal-own-charge", &endpoints, 10.0, json!(60))
        .await;
    assert_eq!(
        read(retry.token.clone(), own_path.clone()).await.0,
        200,
        "the next attempt of the same activity reads what the first created"
    );
    let stranger = broker
        .issue("temporal-other-charge", &endpoints, 10.0, json!(60))
        .await;
    let (status, body) = read(stranger.token.clone(), own_path.clone()).await;
    assert_eq!((status, code(&body)), (403, "object_not_allowed"));
    for listing in [
        "/v1/payment_intents/search?query=status%3A%27succeeded%27",
        "/v1/payment_intents",
    ] {
        let (status, body) = read(stranger.token.clone(), listing.to_owned()).await;
        assert_eq!(
            (status, code(&body)),
            (403, "endpoint_not_allowed"),
            "{listing}"
        );
    }
    let issued_for = broker
        .issue_with(
            "temporal-own-refund",
            &["POST /v1/refunds"],
            0.0,
            json!({"allowed_objects": [pi]}),
        )
        .await;
    let other = broker
        .issue_with(
            "temporal-other-refund",
            &["POST /v1/refunds"],
            0.0,
            json!({"allowed_objects": ["pi_somebody_else"]}),
        )
        .await;
    let (status, body) = post_form(
        &broker,
        &other.token,
        "/v1/refunds",
        &format!("payment_intent={pi}"),
    )
    .await;
    assert_eq!((status, code(&body)), (403, "object_not_allowed"));
    let (status, body) = post_form(
        &broker,
        &issued_for.token,
        "/v1/refunds",
        &format!("payment_intent={pi}"),
    )
    .await;
    // The PaymentIntent was never confirmed: stripe-sim refuses the refund itself.
    assert_ne!(code(&body), "object_not_allowed", "{status} {body}");
}

/// Idempotency keys live in the key label's namespace: another key cannot
/// take or replay a charge's key.
pub async fn idempotency_keys_cannot_be_taken_by_another_key(backend: Backend) {
    let (broker, sim) = broker_on_sim(backend).await;
    let endpoints = ["POST /v1/payment_intents"];
    // Room for the retry: a replay through the same key is reserved again.
    let victim = broker
        .issue("temporal-victim-charge", &endpoints, 20.0, json!(60))
        .await;
    let thief = broker
        .issue("temporal-thief-charge", &endpoints, 10.0, json!(60))
        .await;
    let charge = |token: String, amount: u32| {
        let broker = &broker;
        async move {
            json_of(
                broker
                    .http
                    .post(broker.url("/stripe/v1/payment_intents"))
                    .bearer_auth(token)
                    .header("Idempotency-Key", "keylease:charge:wf:charge:o1")
                    .header("Stripe-Version", OLD_STRIPE_VERSION)
                    .form(&[
                        ("amount", amount.to_string()),
                        ("currency", "usd".to_owned()),
                    ])
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    // The thief goes first with the victim's predictable key and other
    // parameters (50 cents: Stripe's smallest USD charge).
    let (status, stolen) = charge(thief.token.clone(), 50).await;
    assert_eq!(status, 200, "{stolen}");
    let (status, own) = charge(victim.token.clone(), 700).await;
    assert_eq!(status, 200, "the victim's charge is not blocked: {own}");
    assert_eq!(own["amount"], 700);
    assert_ne!(own["id"], stolen["id"]);
    let (_, replay) = charge(victim.token.clone(), 700).await;
    assert_eq!(
        replay["id"], own["id"],
        "the victim's retry still replays its own charge: {replay}"
    );
    assert_eq!(sim_payment_intents(&sim).await.len(), 2);
}

/// `Stripe-Account` goes upstream only for a key issued for that account.
pub async fn stripe_account_is_bound_to_the_key(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let plain = broker
        .issue("temporal-acct-a", &["GET /v1/balance"], 0.0, json!(60))
        .await;
    let bound = broker
        .issue_with(
            "temporal-acct-b",
            &["GET /v1/balance"],
            0.0,
            json!({"stripe_account": "acct_1"}),
        )
        .await;
    let get = |token: String, account: Option<&'static str>| {
        let broker = &broker;
        async move {
            let mut request = broker
                .http
                .get(broker.url("/stripe/v1/balance"))
                .bearer_auth(token);
            if let Some(account) = account {
                request = request.header("Stripe-Account", account);
            }
            json_of(request.send().await.unwrap()).await
        }
    };
    let (status, body) = get(plain.token.clone(), Some("acct_1")).await;
    assert_eq!((status, code(&body)), (403, "account_not_allowed"));
    let (status, body) = get(bound.token.clone(), Some("acct_2")).await;
    assert_eq!((status, code(&body)), (403, "account_not_allowed"));
    assert!(broker.upstream.received().is_empty());
    assert_eq!(get(bound.token.clone(), None).await.0, 200);
    assert_eq!(get(plain.token.clone(), None).await.0, 200);
    let received = broker.upstream.received();
    assert_eq!(
        received[0].headers["stripe-account"], "acct_1",
        "a bound key always acts as its account"
    );
    assert!(received[1].headers.get("stripe-account").is_none());
}

/// Review finding: a create whose answer carries a caller-chosen id (a
/// product's) must not make the label the owner of that id, nor turn a
/// route word into an "object".
pub async fn a_created_object_of_another_kind_claims_nothing(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue(
            "temporal-claim-charge",
            &["POST /v1/products", "GET /v1/*", "POST /v1/refunds"],
            0.0,
            json!(60),
        )
        .await;
    for claimed in ["pi_Victim1", "history"] {
        broker.upstream.script([crate::helpers::Reply {
            body: json!({"id": claimed, "object": "product"}),
            ..crate::helpers::Reply::status(200)
        }]);
        let (status, _) = json_of(
            broker
                .stripe_post(&key.token, "/v1/products", &[("name", "x")])
                .await,
        )
        .await;
        assert_eq!(status, 200, "the answer names {claimed}: it claims nothing");
    }
    let (status, body) = json_of(
        broker
            .stripe_post(
                &key.token,
                "/v1/products",
                &[("name", "x"), ("id", "pi_Victim1")],
            )
            .await,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (403, "object_not_allowed"),
        "an id-shaped value is an object the key must own"
    );
    let (status, body) = json_of(
        broker
            .stripe_get(&key.token, "/v1/payment_intents/pi_Victim1")
            .await,
    )
    .await;
    assert_eq!((status, code(&body)), (403, "object_not_allowed"));
    let (status, body) = json_of(
        broker
            .stripe_post(
                &key.token,
                "/v1/refunds",
                &[("payment_intent", "pi_Victim1")],
            )
            .await,
    )
    .await;
    assert_eq!((status, code(&body)), (403, "object_not_allowed"));
    let (status, body) = json_of(broker.stripe_get(&key.token, "/v1/balance/history").await).await;
    assert_eq!(
        (status, code(&body)),
        (403, "endpoint_not_allowed"),
        "a list stays a list"
    );
    assert_eq!(
        broker.upstream.received().len(),
        2,
        "only the two creates were forwarded"
    );
}

/// Review finding: what a charge pays with, and where its money goes, are
/// objects too: another label's payment method, or any connected account
/// the key was not issued for, is refused.
pub async fn objects_named_in_any_money_parameter_are_checked(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let owner = broker
        .issue(
            "temporal-pm-owner",
            &["POST /v1/payment_methods"],
            0.0,
            json!(60),
        )
        .await;
    broker.upstream.script([crate::helpers::Reply {
        body: json!({"id": "pm_1OwnedByA", "object": "payment_method"}),
        ..crate::helpers::Reply::status(200)
    }]);
    let (status, _) = json_of(
        broker
            .stripe_post(&owner.token, "/v1/payment_methods", &[("type", "card")])
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let key = broker
        .issue(
            "temporal-pm-thief",
            &["POST /v1/payment_intents"],
            50.0,
            json!(60),
        )
        .await;
    for extra in [
        ("payment_method", "pm_1OwnedByA"),
        ("transfer_data[destination]", "acct_1Elsewhere"),
        ("on_behalf_of", "acct_1Elsewhere"),
        ("source", "src_1Other"),
        ("confirmation_token", "ctoken_1VictimOfA"),
        ("customer_account", "acct_1VictimOfA"),
        (
            "payment_method_options[card][mandate_options][reference]",
            "pm_1OwnedByA",
        ),
    ] {
        let (status, body) = json_of(
            broker
                .stripe_post(
                    &key.token,
                    "/v1/payment_intents",
                    &[("amount", "100"), ("currency", "usd"), extra],
                )
                .await,
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (403, "object_not_allowed"),
            "{extra:?}"
        );
    }
    let (status, _) = json_of(
        broker
            .stripe_post(
                &key.token,
                "/v1/payment_intents",
                &[
                    ("amount", "100"),
                    ("currency", "usd"),
                    ("payment_method", "pm_card_visa"),
                ],
            )
            .await,
    )
    .await;
    assert_eq!(
        status, 200,
        "Stripe's test payment methods are nobody's objects"
    );
    // A DELETE can charge (a subscription cancelled with `invoice_now`): since
    // issue 20 such a key is not even issued.
    let (status, body) = broker
        .issue_raw(json!({
            "label": "temporal-sub-cancel",
            "vendor": "stripe",
            "daily_usd_cap": 0,
            "allowed_endpoints": ["DELETE /v1/subscriptions/*"],
            "allowed_objects": ["sub_1Owned"],
            "expires_in": 60,
        }))
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_request"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("DELETE /v1/subscriptions/{id}"),
        "{body}"
    );
    assert_eq!(broker.upstream.received().len(), 2);
}

/// Review finding: a declined PaymentIntent's `client_secret` (its hold
/// released) could be confirmed straight at Stripe with the publishable key,
/// moving money no cap counts; an ephemeral key would give the same reach.
pub async fn client_secrets_never_leave_the_broker(backend: Backend) {
    let (broker, _sim) = broker_on_sim(backend).await;
    let key = broker
        .issue(
            "temporal-secret-charge",
            &CHARGE_AND_CONFIRM,
            50.0,
            json!(60),
        )
        .await;
    let form = "amount=500&currency=usd&confirm=true&payment_method=pm_card_chargeDeclined";
    let (status, declined) = post_form(&broker, &key.token, "/v1/payment_intents", form).await;
    assert_eq!(status, 402, "{declined}");
    let intent = &declined["error"]["payment_intent"];
    assert!(intent["id"].is_string(), "{declined}");
    assert_eq!(intent["client_secret"], Value::Null, "{declined}");
    // Stripe's 3-D Secure redirect URL carries the client secret in its query.
    let form = "amount=500&currency=usd&confirm=true&payment_method=pm_card_threeDSecure2Required&return_url=https%3A%2F%2Fshop.example%2Fdone";
    let (status, pending) = post_form(&broker, &key.token, "/v1/payment_intents", form).await;
    assert_eq!(
        (status, pending["status"].as_str()),
        (200, Some("requires_action")),
        "{pending}"
    );
    assert!(
        pending.get("next_action").is_some_and(Value::is_null),
        "{pending}"
    );
    assert!(!pending.to_string().contains("_secret_"), "{pending}");
    let form = "amount=500&currency=usd&metadata[ref]=pi_1NotAnObjectHere&description=order_7";
    let (status, created) = post_form(&broker, &key.token, "/v1/payment_intents", form).await;
    assert_eq!(
        status, 200,
        "metadata and free text are not objects: {created}"
    );
    assert!(created.get("client_secret").is_some() && created["client_secret"].is_null());
    let (status, body) = broker
        .issue_raw(
            json!({"label": "temporal-ek", "vendor": "stripe", "daily_usd_cap": 0,
            "allowed_endpoints": ["POST /v1/ephemeral_keys"], "expires_in": 60}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap();
    let (status, body) = post_form(&broker, token, "/v1/ephemeral_keys", "customer=cus_1X").await;
    assert_eq!((status, code(&body)), (403, "endpoint_not_allowed"));
}
