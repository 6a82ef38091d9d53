//! Every operation stripe-sim serves answers as Stripe's OpenAPI spec says:
//! no required field missing, no value of the wrong type or outside its
//! enum, no field Stripe never had (see `spec` for the checker). Successes,
//! declines and refusals, at the default version and at the spec's own.

use std::collections::BTreeSet;

use crate::helpers::{Answer, TestSim};
use crate::spec::Spec;

const NEVER: [(&str, &str); 2] = [
    ("automatic_payment_methods[enabled]", "true"),
    ("automatic_payment_methods[allow_redirects]", "never"),
];

/// Requests at one API version, each answer kept with its operation.
struct Run<'a> {
    sim: &'a TestSim,
    version: &'a str,
    seen: Vec<(&'static str, Answer)>,
}

impl Run<'_> {
    async fn post(
        &mut self,
        operation: &'static str,
        path: &str,
        form: &[(&str, &str)],
    ) -> &Answer {
        let answer = self.sim.post_version(path, form, self.version).await;
        self.seen.push((operation, answer));
        &self.seen.last().unwrap().1
    }

    /// A confirmed create with `pm` and whatever `extra` adds.
    async fn pay(&mut self, pm: &str, extra: &[(&str, &str)]) -> &Answer {
        let mut form = vec![
            ("amount", "2000"),
            ("currency", "usd"),
            ("payment_method", pm),
            ("confirm", "true"),
        ];
        form.extend(NEVER);
        form.extend(extra);
        self.post("POST /v1/payment_intents", "/v1/payment_intents", &form)
            .await
    }

    async fn get(&mut self, operation: &'static str, path: &str) -> &Answer {
        let answer = self.sim.get_version(path, self.version).await;
        self.seen.push((operation, answer));
        &self.seen.last().unwrap().1
    }
}

fn id(answer: &Answer, field: &str) -> String {
    answer.body[field].as_str().unwrap_or_default().to_owned()
}

/// Runs each operation at least once, with expansions, declines and refusals.
async fn exercise(sim: &TestSim, version: &str) -> Vec<(&'static str, Answer)> {
    let mut run = Run {
        sim,
        version,
        seen: Vec::new(),
    };
    let paid = run.pay("pm_card_visa", &[("metadata[order]", "o-1")]).await;
    let (pi, charge) = (id(paid, "id"), id(paid, "latest_charge"));
    for pm in [
        "pm_card_visa_chargeDeclinedInsufficientFunds",
        "pm_card_chargeDeclinedExpiredCard",
        "pm_card_threeDSecure2Required",
        "pm_usBankAccount_success",
    ] {
        run.pay(pm, &[]).await;
    }
    let mut form = vec![
        ("amount", "1500"),
        ("currency", "eur"),
        ("capture_method", "manual"),
        (
            "payment_method_options[card][request_incremental_authorization]",
            "if_available",
        ),
    ];
    form.extend(NEVER);
    let held = run
        .post("POST /v1/payment_intents", "/v1/payment_intents", &form)
        .await;
    let held = format!("/v1/payment_intents/{}", id(held, "id"));
    run.post(
        "POST /v1/payment_intents/{intent}",
        &held,
        &[("description", "held"), ("metadata[k]", "v")],
    )
    .await;
    run.post(
        "POST /v1/payment_intents/{intent}/confirm",
        &format!("{held}/confirm"),
        &[("payment_method", "pm_card_mastercard")],
    )
    .await;
    run.post(
        "POST /v1/payment_intents/{intent}/increment_authorization",
        &format!("{held}/increment_authorization"),
        &[("amount", "2500")],
    )
    .await;
    run.post(
        "POST /v1/payment_intents/{intent}/capture",
        &format!("{held}/capture"),
        &[("amount_to_capture", "1000"), ("expand[]", "latest_charge")],
    )
    .await;
    run.post(
        "POST /v1/payment_intents/{intent}/capture",
        &format!("/v1/payment_intents/{pi}/capture"),
        &[],
    )
    .await;
    let open = run
        .post(
            "POST /v1/payment_intents",
            "/v1/payment_intents",
            &[("amount", "900"), ("currency", "usd")],
        )
        .await;
    let open = format!("/v1/payment_intents/{}", id(open, "id"));
    run.post(
        "POST /v1/payment_intents/{intent}/cancel",
        &format!("{open}/cancel"),
        &[("cancellation_reason", "abandoned")],
    )
    .await;
    run.post(
        "POST /v1/payment_intents",
        "/v1/payment_intents",
        &[("currency", "usd")],
    )
    .await;
    run.post(
        "POST /v1/payment_intents",
        "/v1/payment_intents",
        &[("amount", "10"), ("currency", "usd")],
    )
    .await;

    let refund = run
        .post(
            "POST /v1/refunds",
            "/v1/refunds",
            &[("payment_intent", &pi), ("amount", "500")],
        )
        .await;
    let refund = id(refund, "id");
    run.get(
        "GET /v1/refunds/{refund}",
        &format!("/v1/refunds/{refund}?expand[]=charge&expand[]=payment_intent"),
    )
    .await;
    run.get(
        "GET /v1/refunds",
        &format!("/v1/refunds?payment_intent={pi}&limit=2"),
    )
    .await;
    run.get(
        "GET /v1/charges/{charge}",
        &format!("/v1/charges/{charge}?expand[]=payment_intent"),
    )
    .await;
    run.get(
        "GET /v1/charges/{charge}",
        &format!("/v1/charges/{charge}?expand[]=refunds"),
    )
    .await;
    run.get(
        "GET /v1/payment_intents/{intent}",
        &format!("/v1/payment_intents/{pi}?expand[]=latest_charge&expand[]=payment_method"),
    )
    .await;
    run.get(
        "GET /v1/payment_intents/{intent}",
        "/v1/payment_intents/pi_missing",
    )
    .await;
    run.get(
        "GET /v1/payment_intents",
        "/v1/payment_intents?limit=3&expand[]=data.latest_charge",
    )
    .await;
    run.get("GET /v1/payment_intents/search", "/v1/payment_intents/search?query=metadata%5B%27order%27%5D%3A%27o-1%27&expand[]=total_count").await;
    let stranger = sim
        .with_secret("sk_test_")
        .get_version("/v1/payment_intents", version)
        .await;
    run.seen.push(("GET /v1/payment_intents", stranger));
    run.seen
}

#[tokio::test]
async fn every_answer_fits_stripes_openapi_spec() {
    let spec = Spec::load();
    let sim = TestSim::spawn().await;
    for version in ["2026-10-28.endive", "2023-08-16"] {
        let answers = exercise(&sim, version).await;
        let covered: BTreeSet<&str> = answers.iter().map(|(op, _)| *op).collect();
        let all: BTreeSet<&str> = spec.operations().map(String::as_str).collect();
        assert_eq!(
            covered, all,
            "every operation stripe-sim serves is exercised"
        );
        let statuses: BTreeSet<u16> = answers.iter().map(|(_, a)| a.status).collect();
        assert_eq!(
            statuses,
            BTreeSet::from([200, 400, 401, 402, 404]),
            "{version}"
        );
        for (operation, answer) in &answers {
            let problems = spec.check_answer(operation, answer.status, &answer.body);
            assert!(
                problems.is_empty(),
                "{version} {operation} ({}): {problems:#?}\n{:#}",
                answer.status,
                answer.body
            );
        }
    }
}
