//! `Stripe-Version`: every released version served, a later one served as the
//! newest known, malformed or unreleased ones refused, and the automatic
//! payment methods rules of each version (a `return_url` since 2023-08-16).

use serde_json::json;

use crate::helpers::TestSim;

const VISA_CONFIRMED: &[(&str, &str)] = &[
    ("amount", "1000"),
    ("currency", "usd"),
    ("payment_method", "pm_card_visa"),
    ("confirm", "true"),
];

fn with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    VISA_CONFIRMED.iter().chain(extra).copied().collect()
}

#[tokio::test]
async fn a_malformed_or_unreleased_version_is_refused_as_stripe_does() {
    let sim = TestSim::spawn().await;
    for bad in [
        "2019-2-19",
        "2025-03-31.acacia",
        "latest",
        "2024-10-29.acacia",
        "2020-08-28",
        "2026-02-30.endive",
    ] {
        let answer = sim
            .post_version(
                "/v1/payment_intents",
                &with(&[("return_url", "https://x.example")]),
                bad,
            )
            .await;
        assert_eq!(answer.status, 400, "{bad}");
        assert_eq!(answer.body["error"]["type"], "invalid_request_error");
        assert_eq!(
            answer.body["error"]["message"],
            format!("Invalid Stripe API version: {bad}")
        );
    }
    assert!(sim.held("payment_intents").await.is_empty());
}

#[tokio::test]
async fn every_released_version_is_served_as_itself() {
    let sim = TestSim::spawn().await;
    // What Stripe's libraries pin: stripe-node 23.2 and stripe-python 16.1,
    // and the oldest, a dated one and the one-off Dashboard version.
    for version in [
        "2026-11-18.endive",
        "2026-10-28.endive",
        "2011-01-01",
        "2020-08-27",
        "2025-03-01.dashboard",
        "2024-09-30.acacia",
    ] {
        let answer = sim.get_version("/v1/payment_intents", version).await;
        assert_eq!(answer.status, 200, "{version}: {}", answer.body);
        assert_eq!(answer.header("stripe-version"), Some(version));
        assert_eq!(answer.header("warning"), None, "{version}");
    }
}

#[tokio::test]
async fn a_later_version_is_served_as_the_newest_known_with_a_warning() {
    let sim = TestSim::spawn().await;
    for later in ["2027-01-27.fig", "2099-01-01"] {
        let answer = sim
            .post_version("/v1/payment_intents", &with(&[]), later)
            .await;
        assert_eq!(answer.status, 400, "{later}: {}", answer.body);
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("A `return_url` must be specified"),
            "the rules of the newest version apply: {}",
            answer.body
        );
        assert_eq!(answer.header("stripe-version"), Some("2026-11-18.endive"));
        let warning = answer.header("warning").unwrap_or_default();
        assert!(
            warning.contains(later) && warning.contains("2026-11-18.endive"),
            "{warning}"
        );
    }
}

#[tokio::test]
async fn since_2023_08_16_confirming_without_a_return_url_needs_allow_redirects_never() {
    let sim = TestSim::spawn().await;
    for version in [None, Some("2023-08-16"), Some("2025-03-31.basil")] {
        let refused = match version {
            Some(v) => {
                sim.post_version("/v1/payment_intents", VISA_CONFIRMED, v)
                    .await
            }
            None => sim.post("/v1/payment_intents", VISA_CONFIRMED).await,
        };
        assert_eq!(refused.status, 400, "{version:?}: {}", refused.body);
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("A `return_url` must be specified because this Payment Intent is configured to automatically accept the payment methods enabled in the Dashboard"), "{message}");
    }
    assert!(
        sim.held("payment_intents").await.is_empty(),
        "a refused create creates nothing"
    );

    let unconfirmed = sim
        .post(
            "/v1/payment_intents",
            &[("amount", "100"), ("currency", "usd")],
        )
        .await
        .body;
    assert_eq!(
        unconfirmed["automatic_payment_methods"],
        json!({"enabled": true, "allow_redirects": "always"})
    );
    assert_eq!(unconfirmed["capture_method"], "automatic_async");

    let never = sim
        .post(
            "/v1/payment_intents",
            &with(&[
                ("automatic_payment_methods[enabled]", "true"),
                ("automatic_payment_methods[allow_redirects]", "never"),
            ]),
        )
        .await;
    assert_eq!(
        (never.status, &never.body["status"]),
        (200, &json!("succeeded")),
        "{}",
        never.body
    );
    assert_eq!(
        never.body["automatic_payment_methods"],
        json!({"enabled": true, "allow_redirects": "never"})
    );
    let card_only = sim
        .post(
            "/v1/payment_intents",
            &with(&[("allowed_payment_method_types[0]", "card")]),
        )
        .await;
    assert_eq!(card_only.body["status"], "succeeded", "{}", card_only.body);
    assert_eq!(card_only.body["automatic_payment_methods"], json!(null));
    assert_eq!(card_only.body["payment_method_types"], json!(["card"]));
    let with_url = sim
        .post(
            "/v1/payment_intents",
            &with(&[("return_url", "https://shop.example/back")]),
        )
        .await;
    assert_eq!(with_url.body["status"], "succeeded", "{}", with_url.body);

    let both = sim
        .post(
            "/v1/payment_intents",
            &with(&[
                ("automatic_payment_methods[enabled]", "true"),
                ("allowed_payment_method_types[0]", "card"),
            ]),
        )
        .await;
    assert_eq!(both.status, 400);
    let bad_redirects = sim
        .post(
            "/v1/payment_intents",
            &with(&[
                ("automatic_payment_methods[enabled]", "true"),
                ("automatic_payment_methods[allow_redirects]", "sometimes"),
            ]),
        )
        .await;
    assert_eq!(
        bad_redirects.body["error"]["param"], "automatic_payment_methods[allow_redirects]",
        "{}",
        bad_redirects.body
    );
    let url_without_confirm = sim
        .post(
            "/v1/payment_intents",
            &[
                ("amount", "100"),
                ("currency", "usd"),
                ("return_url", "https://x.example"),
            ],
        )
        .await;
    assert_eq!(
        (
            url_without_confirm.status,
            &url_without_confirm.body["error"]["param"]
        ),
        (400, &json!("return_url"))
    );
}

#[tokio::test]
async fn older_versions_keep_the_old_default() {
    let sim = TestSim::spawn().await;
    let old = sim
        .post_version("/v1/payment_intents", VISA_CONFIRMED, "2022-11-15")
        .await;
    assert_eq!(old.status, 200, "{}", old.body);
    assert_eq!(old.body["status"], "succeeded");
    assert_eq!(old.body["automatic_payment_methods"], json!(null));
    assert_eq!(old.body["payment_method_types"], json!(["card"]));
    assert_eq!(old.body["capture_method"], "automatic");
    let listed = sim
        .post_version(
            "/v1/payment_intents",
            &with(&[("payment_method_types[]", "card")]),
            "2024-06-20",
        )
        .await;
    assert_eq!(
        listed.status, 200,
        "the older name of the method list: {}",
        listed.body
    );
    let renamed = sim
        .post_version(
            "/v1/payment_intents",
            &with(&[("allowed_payment_method_types[]", "card")]),
            "2024-06-20",
        )
        .await;
    assert_eq!(renamed.error_code(), "parameter_unknown");
    let current = sim
        .post(
            "/v1/payment_intents",
            &with(&[("payment_method_types[]", "card")]),
        )
        .await;
    assert_eq!(
        (current.error_code(), &current.body["error"]["param"]),
        ("parameter_unknown", &json!("payment_method_types"))
    );
}
