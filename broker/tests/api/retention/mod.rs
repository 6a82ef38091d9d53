//! Issue 25: retention deletes what is past it, and nothing a live key, an
//! open spend period or a request in flight needs; `tidy --dry-run` deletes
//! nothing. Rows are aged by moving their times back in the database.

pub(crate) mod db;

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestBroker, json_of};
use db::{DAY_MS, Db, broker, dry_run, key_with_payment, revoke, tidy_now};

/// A revoked key 40 days past, its spend, its PaymentIntent's claim and
/// audit rows 100 days old go; a live key's go only as far as the audit
/// does; a row left in flight by a crash is marked lost, not deleted; the
/// dry run counts exactly that and changes nothing.
pub async fn retention_deletes_what_is_past_and_a_dry_run_nothing(backend: Backend) {
    let broker = broker(backend).await;
    let db = Db::open(&broker, backend).await;
    let old = key_with_payment(&broker, "temporal-old-charge", "pi_old1").await;
    revoke(&broker, &old).await;
    let live = key_with_payment(&broker, "temporal-live-charge", "pi_live1").await;
    db.age_key(&old.id, 40).await;
    db.age_audit(&old.id, 60).await;
    db.age_audit(&live.id, 100).await;
    // A money request's row its broker never completed, two hours old.
    db.run(
        "INSERT INTO audit (at, key_id, label, vendor, method, path, status, code, reserved_micros, latency_ms, requests, request_id)
         VALUES (?1, ?2, 'temporal-live-charge', 'stripe', 'POST', '/v1/payment_intents', 0, 'in_flight', 0, 0, 1, 'req_crashed')",
        chrono::Utc::now().timestamp_millis() - 2 * 3_600_000,
        &live.id,
    )
    .await;
    let old_audit = db.rows("audit", "key_id", &old.id).await;
    let live_audit = db.rows("audit", "key_id", &live.id).await - 1;
    assert!(
        old_audit >= 2 && live_audit >= 1,
        "{old_audit} {live_audit}"
    );

    let before = db.all_rows().await;
    let expected = [old_audit + live_audit, 1, 1, 1, 1, 1, 0, 0, 1].map(|n| n as u64);
    assert_eq!(
        dry_run(&broker),
        expected,
        "audit, keys, spend, holds, objects, metadata pairs, idempotent, role spend, lost"
    );
    assert_eq!(db.all_rows().await, before, "the dry run deleted nothing");

    let done = tidy_now(
        &broker,
        Duration::from_secs(90 * 86_400),
        Duration::from_secs(30 * 86_400),
    )
    .await;
    assert_eq!(
        [
            done.audit,
            done.keys,
            done.spend,
            done.holds,
            done.objects,
            done.pairs,
            done.idempotent_requests,
            done.role_spend,
            done.lost
        ],
        expected
    );
    assert_eq!(db.rows("keys", "id", &old.id).await, 0);
    assert_eq!(db.rows("spend", "key_id", &old.id).await, 0);
    assert_eq!(db.rows("objects", "object_id", "pi_old1").await, 0);
    assert_eq!(db.rows("object_pairs", "object_id", "pi_old1").await, 0);
    assert_eq!(db.rows("object_pairs", "object_id", "pi_live1").await, 1);
    assert_eq!(db.rows("audit", "key_id", &old.id).await, 0);
    assert_eq!(db.rows("keys", "id", &live.id).await, 1);
    assert_eq!(db.rows("spend", "key_id", &live.id).await, 1);
    assert_eq!(db.rows("objects", "object_id", "pi_live1").await, 1);
    assert_eq!(db.rows("audit", "request_id", "req_crashed").await, 1);
    let (status, audit) = broker
        .admin(Method::GET, &format!("/v1/audit?key_id={}", live.id), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(audit["records"][0]["code"], "in_flight_lost", "{audit}");
    let (status, _) = broker
        .admin(Method::GET, &format!("/v1/keys/{}", old.id), None)
        .await;
    assert_eq!(status, 404, "the old key is gone from the API too");
    // The live key still spends: its spend row and claim were kept.
    let again = broker
        .stripe_post(
            &live.token,
            "/v1/payment_intents",
            &[("amount", "500"), ("currency", "usd")],
        )
        .await;
    assert_eq!(again.status(), 200);
}

/// A live key issued 60 days ago keeps its spend and its claims at the
/// shortest retention, and keeps the claims of an earlier key of its label
/// (a retry reads what an earlier attempt made) once that key is gone.
pub async fn a_live_key_keeps_what_it_needs_however_old(backend: Backend) {
    let broker = broker(backend).await;
    let db = Db::open(&broker, backend).await;
    let earlier = key_with_payment(&broker, "temporal-retry-charge", "pi_first1").await;
    revoke(&broker, &earlier).await;
    db.age_key(&earlier.id, 60).await;
    let live = broker
        .issue(
            "temporal-retry-charge",
            &["POST /v1/payment_intents", "GET /v1/payment_intents/*"],
            50.0,
            json!("1h"),
        )
        .await;
    assert_eq!(
        broker
            .stripe_post(
                &live.token,
                "/v1/payment_intents",
                &[("amount", "700"), ("currency", "usd")]
            )
            .await
            .status(),
        200
    );
    db.run(
        "UPDATE keys SET created_at = created_at - ?1 WHERE id = ?2",
        60 * DAY_MS,
        &live.id,
    )
    .await;

    let done = tidy_now(&broker, Duration::from_secs(1), Duration::from_secs(1)).await;
    assert_eq!(done.keys, 1, "{done:?}");
    assert_eq!(db.rows("keys", "id", &earlier.id).await, 0);
    assert_eq!(db.rows("keys", "id", &live.id).await, 1);
    assert_eq!(db.rows("spend", "key_id", &live.id).await, 1);
    assert_eq!(
        db.rows("objects", "object_id", "pi_first1").await,
        1,
        "a live key of the label keeps the earlier attempt's claim"
    );
    // The live key still reaches the earlier attempt's PaymentIntent.
    let read = broker
        .stripe_get(&live.token, "/v1/payment_intents/pi_first1")
        .await;
    let (status, body) = json_of(read).await;
    assert_eq!(status, 200, "{body}");
}

/// A key that ended today is kept at the shortest retention (its spend
/// period, or its role's day, is still open); once it ended before today it goes.
pub async fn an_open_spend_period_keeps_its_key(backend: Backend) {
    let broker = broker(backend).await;
    let db = Db::open(&broker, backend).await;
    let daily = broker
        .issue(
            "temporal-daily-charge",
            &["POST /v1/payment_intents"],
            50.0,
            json!("36h"),
        )
        .await;
    let short = broker
        .issue(
            "temporal-short-charge",
            &["POST /v1/payment_intents"],
            50.0,
            json!("1h"),
        )
        .await;
    let form = [("amount", "900"), ("currency", "usd")];
    for key in [&daily, &short] {
        assert_eq!(
            broker
                .stripe_post(&key.token, "/v1/payment_intents", &form)
                .await
                .status(),
            200
        );
        revoke(&broker, key).await;
    }
    let midnight = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    for key in [&daily, &short] {
        db.run(
            "UPDATE keys SET revoked_at = ?1 WHERE id = ?2",
            midnight + 1,
            &key.id,
        )
        .await;
    }
    let done = tidy_now(&broker, Duration::from_secs(1), Duration::from_secs(1)).await;
    assert_eq!(done.keys, 0, "{done:?}");
    assert_eq!(db.rows("spend", "key_id", &daily.id).await, 1);
    assert_eq!(db.rows("spend", "key_id", &short.id).await, 1);

    for key in [&daily, &short] {
        db.run(
            "UPDATE keys SET revoked_at = ?1 WHERE id = ?2",
            midnight - 1,
            &key.id,
        )
        .await;
    }
    let done = tidy_now(&broker, Duration::from_secs(1), Duration::from_secs(1)).await;
    assert_eq!((done.keys, done.spend), (2, 2), "{done:?}");
}

/// A money request still in flight keeps its key, its spend row and its
/// audit row, however old they look; once it is answered they go.
pub async fn a_request_in_flight_keeps_its_key(backend: Backend) {
    let broker = broker(backend).await;
    let db = Db::open(&broker, backend).await;
    let key = broker
        .issue(
            "temporal-slow-charge",
            &["POST /v1/payment_intents"],
            50.0,
            json!("1h"),
        )
        .await;
    let charge = broker
        .charge_in_flight(&key.token, "pi_slow1", Duration::from_secs(5))
        .await;
    revoke(&broker, &key).await;
    // The key looks 40 days gone; its request's row is as young as it is.
    db.run(
        "UPDATE keys SET created_at = created_at - ?1, expires_at = expires_at - ?1,
           revoked_at = revoked_at - ?1 WHERE id = ?2",
        40 * DAY_MS,
        &key.id,
    )
    .await;

    let done = tidy_now(&broker, Duration::from_secs(1), Duration::from_secs(1)).await;
    assert_eq!(done.keys, 0, "{done:?}");
    assert_eq!(db.rows("keys", "id", &key.id).await, 1);
    assert_eq!(db.rows("spend", "key_id", &key.id).await, 1);
    assert_eq!(
        db.rows("audit", "code", "in_flight").await,
        1,
        "the in-flight row stays"
    );

    assert_eq!(charge.await.unwrap(), 200);
    db.age_audit(&key.id, 40).await;
    let done = tidy_now(&broker, Duration::from_secs(1), Duration::from_secs(1)).await;
    assert_eq!((done.keys, done.spend), (1, 1), "{done:?}");
    assert_eq!(db.rows("audit", "key_id", &key.id).await, 0);
}

/// The broker tidies by itself every `--tidy-interval`, and counts what
/// each table holds and what it deleted for `/metrics`.
pub async fn the_broker_tidies_by_itself_and_counts_rows(backend: Backend) {
    let broker = TestBroker::spawn_with(backend, |config| {
        config.tidy_interval = Duration::from_millis(300);
        config.retention.audit_retention = "1d".parse().unwrap();
    })
    .await;
    let key = key_with_payment(&broker, "temporal-metrics-charge", "pi_metrics1").await;
    let db = Db::open(&broker, backend).await;
    let aged = db.rows("audit", "key_id", &key.id).await;
    db.age_audit(&key.id, 2).await;
    keylease_testkit::poll::eventually(
        Duration::from_secs(10),
        "tidy in the background",
        || async {
            let text = broker.metrics().await;
            let deleted = format!("keylease_broker_rows_deleted_total{{table=\"audit\"}} {aged}");
            (text.contains(&deleted)
                && text.contains("keylease_broker_table_rows{table=\"keys\"} 1"))
            .then_some(())
        },
    )
    .await;
    assert_eq!(db.rows("audit", "key_id", &key.id).await, 0);
}

/// A helper's attack: `tidy --dry-run` on a mistyped path created a
/// database and migrated it. A dry run now opens read-only and refuses.
#[test]
fn a_dry_run_creates_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.db");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keylease-broker"))
        .args(["tidy", "--dry-run"])
        .env(
            "KEYLEASE_BROKER_DATABASE_URL",
            format!("sqlite://{}", path.display()),
        )
        .output()
        .unwrap();
    assert!(!output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("no database file"));
    assert!(!path.exists(), "no file was created");
}

/// A helper's attack: a broker of the release before, still running beside
/// upgraded ones on PostgreSQL, writes keys without a namespace, and such a
/// key did not keep its label's claims. The database fills it in.
#[tokio::test]
async fn on_postgres_a_key_written_without_a_namespace_gets_one() {
    let broker = broker(Backend::Postgres).await;
    let db = Db::open(&broker, Backend::Postgres).await;
    db.run(
        "INSERT INTO keys (id, token_hash, label, vendor, daily_cap_micros, allowed_endpoints, metadata, created_at, expires_at, role)
         VALUES (?2, 'h_old_release', 'temporal-old-release', 'stripe', 0, '[]', '{}', ?1, ?1, 'worker')",
        0,
        "key_old_release",
    )
    .await;
    let namespace: Option<String> =
        sqlx::query_scalar("SELECT namespace FROM keys WHERE id = 'key_old_release'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(namespace.as_deref(), Some("worker temporal-old-release"));
}
