//! Issue 25: the audit leaves the database. `--audit-log` writes one JSON
//! line per audit record (refused and withheld answers included) and a
//! restart continues it; `GET /v1/audit?after=` pages every final row once,
//! in the order a collector can follow across restarts and brokers.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestBroker, code, json_of};

/// Makes every audit row of a path holding `Poison` fail to insert.
async fn poison_audit(broker: &TestBroker, backend: Backend) {
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&broker.database_url).await.unwrap();
    let statements: &[&str] = match backend {
        Backend::Sqlite => &["CREATE TRIGGER refuse_poison BEFORE INSERT ON audit WHEN NEW.path LIKE '%Poison%'
             BEGIN SELECT RAISE(ABORT, 'audit refused'); END"],
        Backend::Postgres => &[
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.path LIKE '%Poison%' THEN RAISE EXCEPTION 'audit refused'; END IF; RETURN NEW; END; $$",
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        ],
    };
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(*statement))
            .execute(&db)
            .await
            .unwrap();
    }
}

/// Every final row of a proxied request after `from`, followed with pages
/// of `limit` (the admin API's own rows would grow with each page read).
async fn follow(broker: &TestBroker, from: &str, limit: usize) -> (Vec<Value>, String) {
    let mut records = Vec::new();
    let mut after = from.to_owned();
    loop {
        let (status, page) = broker
            .admin(
                Method::GET,
                &format!("/v1/audit?limit={limit}&after={after}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let rows = page["records"].as_array().unwrap();
        records.extend(rows.iter().cloned());
        let next = page["next"].as_str().unwrap().to_owned();
        if rows.is_empty() {
            assert_eq!(next, after, "an empty page leaves the cursor where it was");
            return (records, next);
        }
        after = next;
    }
}

/// At least `rows` rows followed from `from`, waiting for them (a minute
/// at most): on PostgreSQL a row joins once every transaction older than its
/// own has ended, on the whole server (other tests' included: a clean-clone
/// CI run on 2 cores once saw the charge's row held back past 20 s).
async fn follow_until(broker: &TestBroker, from: &str, rows: usize) -> Vec<Value> {
    follow_until_at(broker, from, rows).await.0
}

/// [`follow_until`], with the cursor it stopped at.
async fn follow_until_at(broker: &TestBroker, from: &str, rows: usize) -> (Vec<Value>, String) {
    let mut records = Vec::new();
    let mut after = from.to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (more, next) = follow(broker, &after, 50).await;
        records.extend(more);
        after = next;
        if records.len() >= rows || std::time::Instant::now() > deadline {
            return (records, after);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What identifies a record across the log and the API.
fn identity(record: &Value) -> String {
    format!(
        "{} {} {} {} {} {} {} {}",
        record["at"],
        record["key_id"],
        record["vendor"],
        record["method"],
        record["path"],
        record["status"],
        record["requests"],
        record["latency_ms"]
    )
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

pub async fn the_audit_log_has_a_line_per_record_and_a_restart_continues_it(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let settings = |config: &mut keylease_broker::BrokerConfig| {
        config.audit_log = Some(dir.path().join("audit.jsonl"));
        config.unauthenticated_audit_interval = Duration::from_millis(200);
    };
    let mut broker = TestBroker::spawn_with(backend, settings).await;
    let key = broker
        .issue_with(
            "temporal-log-charge",
            &["GET /v1/payment_intents/*"],
            0.0,
            json!({"allowed_objects": ["pi_1Poison", "pi_1Fine"]}),
        )
        .await;
    poison_audit(&broker, backend).await;
    let (status, _) = json_of(
        broker
            .stripe_get(&key.token, "/v1/payment_intents/pi_1Fine")
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = json_of(
        broker
            .stripe_get(&key.token, "/v1/payment_intents/pi_1Poison")
            .await,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (503, "audit_unavailable"),
        "withheld: {body}"
    );
    let refused = broker
        .stripe_post(&key.token, "/v1/customers", &[("email", "a@example.com")])
        .await;
    assert_eq!(refused.status(), 403);
    for _ in 0..3 {
        let stranger = broker
            .stripe_get("sk_wrong_token", "/v1/payment_intents/pi_1Fine")
            .await;
        assert_eq!(stranger.status(), 401);
    }
    broker.restart_with(settings).await;
    let (status, _) = json_of(
        broker
            .stripe_get(&key.token, "/v1/payment_intents/pi_1Fine")
            .await,
    )
    .await;
    assert_eq!(status, 200, "after the restart");

    // Proxied rows: two reads, the refusal and the strangers' summary.
    let stored = follow_until(&broker, "0", 4).await;
    let logged = lines(&path);
    let withheld: Vec<&Value> = logged
        .iter()
        .filter(|line| line["stored"] == false)
        .collect();
    assert_eq!(withheld.len(), 1, "{logged:?}");
    assert_eq!(withheld[0]["path"], "/v1/payment_intents/pi_1Poison");
    assert_eq!(
        (
            withheld[0]["status"].as_u64(),
            withheld[0]["withheld_status"].as_u64()
        ),
        (Some(503), Some(200))
    );
    assert_eq!(withheld[0]["code"], "audit_unavailable");
    // Every stored line is a row, once, and every row written since the
    // log was opened is a line; the admin API's calls are lines too.
    assert!(logged.iter().any(|line| line["vendor"] == "admin"
        && line["path"] == "/v1/keys"
        && line["status"] == 201));
    let in_log: Vec<String> = logged
        .iter()
        .filter(|line| line["stored"] == true && line["vendor"] != "admin")
        .map(identity)
        .collect();
    let in_db: Vec<String> = stored.iter().map(identity).collect();
    assert_eq!(
        in_log.iter().collect::<BTreeSet<_>>().len(),
        in_log.len(),
        "no line twice"
    );
    assert_eq!(
        in_log.iter().collect::<BTreeSet<_>>(),
        in_db.iter().collect::<BTreeSet<_>>()
    );
    let strangers: Vec<&Value> = logged.iter().filter(|line| line["status"] == 401).collect();
    assert_eq!(
        strangers
            .iter()
            .map(|line| line["requests"].as_i64().unwrap())
            .sum::<i64>(),
        3
    );
    let fine = logged
        .iter()
        .filter(|line| line["path"] == "/v1/payment_intents/pi_1Fine" && line["status"] == 200)
        .count();
    assert_eq!(
        fine, 2,
        "one line per request, before and after the restart"
    );
    assert!(
        logged
            .iter()
            .any(|line| line["status"] == 403 && line["path"] == "/v1/customers")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&key.token) && !text.contains(crate::helpers::ADMIN_TOKEN));
}

/// A collector following the cursor while two brokers serve reads each
/// row once, none missing; a money request's row joins only once answered.
pub async fn the_audit_cursor_reads_every_row_once_across_brokers_and_restarts(backend: Backend) {
    let mut broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue_with(
            "temporal-follow-charge",
            &["GET /v1/payment_intents/*", "POST /v1/payment_intents"],
            50.0,
            json!({"allowed_objects": ["pi_1Read"]}),
        )
        .await;
    let sibling = broker.sibling().await;
    let (_, page) = broker
        .admin(Method::GET, "/v1/audit?after=nonsense", None)
        .await;
    assert_eq!(page["error"]["code"], "invalid_request", "{page}");

    // A charge held in flight at Stripe while reads go on.
    let charge = broker
        .charge_in_flight(&key.token, "pi_1Slow", Duration::from_secs(3))
        .await;
    // Six readers at once, half on each broker: commits land out of order.
    let reads = {
        let http = broker.http.clone();
        let urls = [
            broker.url("/stripe/v1/payment_intents/pi_1Read"),
            format!("http://{sibling}/stripe/v1/payment_intents/pi_1Read"),
        ];
        let token = key.token.clone();
        tokio::spawn(async move {
            let readers = (0..6).map(|reader| {
                let (http, url, token) = (http.clone(), urls[reader % 2].clone(), token.clone());
                async move {
                    for _ in 0..20 {
                        let status = http
                            .get(&url)
                            .bearer_auth(&token)
                            .send()
                            .await
                            .unwrap()
                            .status();
                        assert_eq!(status, 200);
                    }
                }
            });
            futures::future::join_all(readers).await;
        })
    };
    let mut seen: Vec<Value> = Vec::new();
    let mut after = "0".to_owned();
    let mut in_flight_seen = false;
    while !reads.is_finished() || !charge.is_finished() {
        let (records, next) = follow(&broker, &after, 7).await;
        in_flight_seen |= records.iter().any(|record| record["status"] == 0);
        seen.extend(records);
        after = next;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reads.await.unwrap();
    assert_eq!(charge.await.unwrap(), 200);
    broker.restart().await;
    // 120 reads and the charge.
    let rest = follow_until(&broker, &after, 121 - seen.len().min(121)).await;
    seen.extend(rest);
    assert!(!in_flight_seen, "a row in flight is not followed");

    let (everything, _) = follow(&broker, "0", 100).await;
    let ids: Vec<String> = seen
        .iter()
        .map(|record| record["cursor"].to_string())
        .collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "no row twice"
    );
    assert_eq!(seen.len(), everything.len(), "no row missed");
    let charged: Vec<&Value> = seen
        .iter()
        .filter(|record| record["method"] == "POST")
        .collect();
    assert_eq!(
        charged.len(),
        1,
        "the charge's row among {} followed and {} listed",
        seen.len(),
        everything.len()
    );
    assert_eq!(
        charged[0]["status"], 200,
        "the charge is followed as answered"
    );
    assert!(
        seen.iter()
            .filter(|record| record["path"] == "/v1/payment_intents/pi_1Read")
            .count()
            >= 120
    );
}

/// On PostgreSQL brokers commit concurrently: a row whose transaction is
/// still open when later rows are read must not be skipped once it commits.
#[tokio::test]
async fn on_postgres_a_row_committed_late_is_still_followed() {
    use sqlx::Connection;
    let broker = TestBroker::spawn(Backend::Postgres).await;
    let key = broker
        .issue_with(
            "temporal-late-charge",
            &["GET /v1/payment_intents/*"],
            0.0,
            json!({"allowed_objects": ["pi_1Read"]}),
        )
        .await;
    let (_, start) = follow(&broker, "0", 100).await;
    // Another broker's request: its row written, its commit not yet.
    sqlx::any::install_default_drivers();
    let mut other = sqlx::AnyConnection::connect(&broker.database_url)
        .await
        .unwrap();
    let mut open = other.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO audit (at, key_id, label, vendor, method, path, status, reserved_micros, latency_ms)
         VALUES (0, NULL, 'temporal-late-charge', 'stripe', 'GET', '/v1/late', 200, 0, 1)",
    )
    .execute(&mut *open)
    .await
    .unwrap();
    for _ in 0..3 {
        let read = broker
            .stripe_get(&key.token, "/v1/payment_intents/pi_1Read")
            .await;
        assert_eq!(read.status(), 200);
    }
    let (early, after) = follow(&broker, &start, 100).await;
    assert!(
        early.is_empty(),
        "nothing is followed past a transaction still open: {early:?}"
    );
    open.commit().await.unwrap();
    let late = follow_until(&broker, &after, 4).await;
    let paths: Vec<&str> = late.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "/v1/late",
            "/v1/payment_intents/pi_1Read",
            "/v1/payment_intents/pi_1Read",
            "/v1/payment_intents/pi_1Read"
        ]
    );
}

/// A helper's attack: a row marked `in_flight_lost` that was answered after
/// all kept the place it had when marked, and a collector past it never saw
/// the answer. It is now followed again, as answered.
pub async fn a_row_marked_lost_and_then_answered_is_followed_again(backend: Backend) {
    let broker = TestBroker::spawn(backend).await;
    let key = broker
        .issue(
            "temporal-lost-charge",
            &["POST /v1/payment_intents"],
            50.0,
            json!("1h"),
        )
        .await;
    let charge = broker
        .charge_in_flight(&key.token, "pi_1Lost", Duration::from_secs(3))
        .await;
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&broker.database_url).await.unwrap();
    sqlx::query("UPDATE audit SET code = 'in_flight_lost' WHERE status = 0")
        .execute(&db)
        .await
        .unwrap();
    // Other tests' transactions on the server may hold the row back a moment.
    let (lost, after) = follow_until_at(&broker, "0", 1).await;
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(
        (lost[0]["status"].as_u64(), lost[0]["code"].as_str()),
        (Some(0), Some("in_flight_lost"))
    );
    assert_eq!(charge.await.unwrap(), 200);
    let answered = follow_until(&broker, &after, 1).await;
    assert_eq!(answered.len(), 1, "{answered:?}");
    assert_eq!(answered[0]["status"], 200);
}
