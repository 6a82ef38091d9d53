//! Roles: a role token issues keys only within its role's bounds, sees and
//! revokes only its role's keys, manages nothing, stops at once when
//! revoked, and all its keys together never move more than the role's
//! daily cap (stripe-sim's record of what succeeded is the judge).

use std::net::SocketAddr;

use reqwest::Method;
use serde_json::{Value, json};

use crate::attacks::broker_on_sim;
use crate::helpers::{Backend, TestBroker, code, json_of};

mod cap;
mod revocation;

pub use cap::{
    a_restarted_broker_leaves_its_unused_slice_counted,
    a_roles_daily_cap_holds_across_its_keys_and_brokers,
};
pub use revocation::{
    a_revoked_role_token_stops_at_once, a_role_token_revoked_while_its_body_arrives_issues_nothing,
    a_role_token_revoked_while_its_revoke_waits_to_commit_revokes_nothing,
};

const CHARGE: &str = "POST /v1/payment_intents";

/// The worker's role, as the README creates it (smaller caps).
fn worker_role(name: &str, daily_usd_cap: f64) -> Value {
    json!({
        "name": name,
        "vendor": "stripe",
        "label_prefix": "temporal-",
        "allowed_endpoints": ["POST /v1/payment_intents", "POST /v1/payment_intents/*/confirm", "POST /v1/refunds", "GET /v1/payment_intents/search"],
        "max_key_usd_cap": 5,
        "daily_usd_cap": daily_usd_cap,
        "max_expires_in": "10m",
        "allow_allowed_objects": true,
    })
}

/// Creates `role` and a token for it; the token.
async fn role_token(broker: &TestBroker, role: Value) -> String {
    let (id, token) = role_token_with_id(broker, role).await;
    assert!(id.starts_with("rtok_"));
    token
}

/// Creates `role` and a token for it; the token's id and the token.
async fn role_token_with_id(broker: &TestBroker, role: Value) -> (String, String) {
    let name = role["name"].as_str().unwrap().to_owned();
    let (status, body) = broker.admin(Method::POST, "/v1/roles", Some(role)).await;
    assert_eq!(status, 201, "{body}");
    token_of(broker, &name).await
}

/// A new token of role `name`; its id and the token.
async fn token_of(broker: &TestBroker, name: &str) -> (String, String) {
    let (status, body) = broker
        .admin(
            Method::POST,
            &format!("/v1/roles/{name}/tokens"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

/// A call with `token` to `addr`; status and JSON body.
async fn call(
    addr: SocketAddr,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("http://{addr}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    json_of(request.send().await.unwrap()).await
}

fn key_request(label: &str, endpoints: &[&str], cap: f64) -> Value {
    json!({
        "label": label,
        "vendor": "stripe",
        "daily_usd_cap": cap,
        "allowed_endpoints": endpoints,
        "expires_in": 60,
    })
}

/// A role token cannot issue outside any one of its role's limits; each
/// refusal is 403 `role_limit` naming the limit, and nothing is issued.
pub async fn a_role_token_issues_only_within_its_roles_limits(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let mut role = worker_role("worker", 100.0);
    role["stripe_accounts"] = json!(["acct_1Conn"]);
    let token = role_token(&broker, role).await;
    let inside = json!({
        "label": "temporal-wf-charge",
        "vendor": "stripe",
        "daily_usd_cap": 5,
        "allowed_endpoints": ["POST /v1/payment_intents", "POST /v1/payment_intents/pi_*/confirm"],
        "expires_in": 600,
        "stripe_account": "acct_1Conn",
        "allowed_objects": ["pi_1Abc"],
    });
    let with = |field: &str, value: Value| {
        let mut request = inside.clone();
        if value.is_null() {
            request.as_object_mut().unwrap().remove(field);
        } else {
            request[field] = value;
        }
        request
    };
    let cases = [
        (
            "label",
            with("label", json!("payroll-wf-charge")),
            "label must start with temporal-",
        ),
        (
            "endpoint",
            with("allowed_endpoints", json!(["GET /v1/payment_intents/*"])),
            "allowed_endpoints entry",
        ),
        (
            "endpoint method",
            with("allowed_endpoints", json!(["/v1/payment_intents"])),
            "allowed_endpoints entry",
        ),
        (
            "per-key cap",
            with("daily_usd_cap", json!(5.01)),
            "max_key_usd_cap",
        ),
        ("ttl", with("expires_in", json!(601)), "max_expires_in"),
        (
            "account",
            with("stripe_account", json!("acct_2Other")),
            "stripe_accounts",
        ),
        (
            "platform",
            with("stripe_account", Value::Null),
            "stripe_accounts",
        ),
        (
            "metadata reach",
            with("allowed_metadata", json!({"order_id": "o-1"})),
            "allow_allowed_metadata",
        ),
    ];
    for (limit, request, names) in cases {
        let (status, body) =
            call(broker.addr, &token, Method::POST, "/v1/keys", Some(request)).await;
        assert_eq!(
            (status, code(&body)),
            (403, "role_limit"),
            "{limit}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{limit}: {message}");
    }
    // A role that does not allow allowed_objects.
    let strict = role_token(&broker, worker_role("strict", 100.0)).await;
    let mut request = with("stripe_account", Value::Null);
    request["allowed_objects"] = json!(["pi_1Abc"]);
    request["label"] = json!("temporal-x");
    let (status, body) = call(
        broker.addr,
        &strict,
        Method::POST,
        "/v1/keys",
        Some(request.clone()),
    )
    .await;
    assert_eq!(
        status, 201,
        "allowed by worker_role's allow_allowed_objects: {body}"
    );
    let mut no_objects = worker_role("no-objects", 100.0);
    no_objects["allow_allowed_objects"] = json!(false);
    let no_objects = role_token(&broker, no_objects).await;
    let (status, body) = call(
        broker.addr,
        &no_objects,
        Method::POST,
        "/v1/keys",
        Some(request),
    )
    .await;
    assert_eq!((status, code(&body)), (403, "role_limit"), "{body}");
    assert!(body.to_string().contains("allow_allowed_objects"));

    // Nothing of the refused requests was issued; the one inside was, under the role.
    let (status, body) = call(broker.addr, &token, Method::POST, "/v1/keys", Some(inside)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (
            body["role"].as_str(),
            body["issued_by"].as_str().map(|t| t.starts_with("rtok_"))
        ),
        (Some("worker"), Some(true))
    );
    let (_, listed) = call(broker.addr, &token, Method::GET, "/v1/keys", None).await;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1, "{listed}");
    // The key's issue is audited with the role and the token id.
    let (_, audit) = broker
        .admin(Method::GET, "/v1/audit?kind=admin", None)
        .await;
    let issue_row = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["status"] == 201 && row["path"] == "/v1/keys")
        .expect("the issue is audited");
    assert!(
        issue_row["actor"]
            .as_str()
            .unwrap()
            .starts_with("role-worker/rtok_"),
        "{issue_row}"
    );
}

/// A role token lists, reads, revokes and audits only its role's keys, and
/// manages no role or token.
pub async fn a_role_token_reaches_only_its_roles_keys(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let a = role_token(&broker, worker_role("team-a", 100.0)).await;
    let b = role_token(&broker, worker_role("team-b", 100.0)).await;
    let issue = |token: String, label: &'static str| {
        let addr = broker.addr;
        async move {
            let (status, body) = call(
                addr,
                &token,
                Method::POST,
                "/v1/keys",
                Some(key_request(label, &[CHARGE], 1.0)),
            )
            .await;
            assert_eq!(status, 201, "{body}");
            body["id"].as_str().unwrap().to_owned()
        }
    };
    let a_key = issue(a.clone(), "temporal-a-charge").await;
    let b_key = issue(b.clone(), "temporal-b-charge").await;
    let admin_key = broker
        .issue("temporal-admin-charge", &[CHARGE], 1.0, json!(60))
        .await
        .id;

    let (_, listed) = call(
        broker.addr,
        &a,
        Method::GET,
        "/v1/keys?label_prefix=temporal-",
        None,
    )
    .await;
    let ids: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![a_key.as_str()], "{listed}");
    for other in [&b_key, &admin_key] {
        let (status, _) = call(
            broker.addr,
            &a,
            Method::GET,
            &format!("/v1/keys/{other}"),
            None,
        )
        .await;
        assert_eq!(status, 404, "another role's key is not there for it");
        let (status, _) = call(
            broker.addr,
            &a,
            Method::DELETE,
            &format!("/v1/keys/{other}"),
            None,
        )
        .await;
        assert_eq!(status, 404);
        assert_eq!(broker.key(other).await["status"], "active", "not revoked");
    }
    let (status, body) = call(
        broker.addr,
        &a,
        Method::POST,
        "/v1/keys/revoke",
        Some(json!({"label_prefix": "temporal-"})),
    )
    .await;
    assert_eq!((status, body["revoked"].as_u64()), (200, Some(1)), "{body}");
    assert_eq!(broker.key(&a_key).await["status"], "revoked");
    assert_eq!(broker.key(&b_key).await["status"], "active");
    assert_eq!(broker.key(&admin_key).await["status"], "active");

    let (_, audit) = call(broker.addr, &a, Method::GET, "/v1/audit?kind=all", None).await;
    for row in audit["records"].as_array().unwrap() {
        assert_eq!(
            row["key_id"].as_str(),
            Some(a_key.as_str()),
            "only its role's keys' rows: {row}"
        );
    }

    // No management: roles, tokens, whoever's.
    for (method, path, body) in [
        (Method::POST, "/v1/roles", Some(worker_role("team-c", 1.0))),
        (Method::GET, "/v1/roles", None),
        (Method::POST, "/v1/roles/team-a/tokens", Some(json!({}))),
        (Method::POST, "/v1/roles/team-b/tokens", Some(json!({}))),
        (Method::DELETE, "/v1/roles/team-b/tokens/rtok_x", None),
    ] {
        let (status, body) = call(broker.addr, &a, method.clone(), path, body).await;
        assert_eq!(
            (status, code(&body)),
            (403, "role_limit"),
            "{method} {path}: {body}"
        );
    }
    let (status, who) = call(broker.addr, &a, Method::GET, "/v1/whoami", None).await;
    assert_eq!(
        (status, who["kind"].as_str(), who["role"]["name"].as_str()),
        (200, Some("role"), Some("team-a"))
    );
    let (_, who) = broker.admin(Method::GET, "/v1/whoami", None).await;
    assert_eq!(who["kind"], "admin");
}

/// Found by attacking roles: objects and Idempotency-Keys were owned by
/// label, so a role could issue a key of the same label as an admin's key
/// and reach (cancel, refund, replay) what that key made. A role's keys own
/// them under the role's name and the label.
pub async fn a_role_cannot_take_another_issuers_objects_by_its_label(backend: Backend) {
    let (broker, _sim) = broker_on_sim(backend).await;
    let endpoints = ["POST /v1/payment_intents", "GET /v1/payment_intents/*"];
    let admin_key = broker
        .issue("temporal-legacy-charge", &endpoints, 10.0, json!(60))
        .await;
    let create = |token: String| {
        let broker = &broker;
        async move {
            json_of(
                broker
                    .http
                    .post(broker.url("/stripe/v1/payment_intents"))
                    .bearer_auth(token)
                    .header("Idempotency-Key", "order-78")
                    .form(&[("amount", "100"), ("currency", "usd")])
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let (status, admins) = create(admin_key.token.clone()).await;
    assert_eq!(status, 200, "{admins}");
    let pi = admins["id"].as_str().unwrap().to_owned();

    let mut role = worker_role("worker", 10.0);
    role["allowed_endpoints"] = json!(endpoints);
    role["allow_allowed_objects"] = json!(false);
    let token = role_token(&broker, role).await;
    let (status, body) = call(
        broker.addr,
        &token,
        Method::POST,
        "/v1/keys",
        Some(key_request("temporal-legacy-charge", &endpoints, 5.0)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let same_label = body["token"].as_str().unwrap().to_owned();
    let (status, body) = json_of(
        broker
            .stripe_get(&same_label, &format!("/v1/payment_intents/{pi}"))
            .await,
    )
    .await;
    assert_eq!((status, code(&body)), (403, "object_not_allowed"), "{body}");
    let (status, replayed) = create(same_label).await;
    assert_eq!(status, 200, "{replayed}");
    assert_ne!(
        replayed["id"].as_str(),
        Some(pi.as_str()),
        "the admin key's Idempotency-Key is not the role's to replay"
    );
}
