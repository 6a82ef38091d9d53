//! The broker's database beside a test broker: rows aged, counted, tidied.

use std::time::Duration;

use keylease_broker::Store;
use keylease_broker::retention::{Pace, Retention, tidy};
use keylease_broker::store::Integrity;
use keylease_broker::store::tidy::Tidied;
use reqwest::Method;
use serde_json::json;
use sqlx::AnyPool;

use crate::helpers::{Backend, Issued, Reply, TestBroker};

pub(super) const DAY_MS: i64 = 86_400_000;

/// The broker's database, read and changed beside it.
pub(crate) struct Db {
    pub(super) pool: AnyPool,
    backend: Backend,
}

impl Db {
    pub(crate) async fn open(broker: &TestBroker, backend: Backend) -> Self {
        sqlx::any::install_default_drivers();
        let pool = AnyPool::connect(&broker.database_url).await.unwrap();
        Self { pool, backend }
    }

    fn sql(&self, sql: &str) -> sqlx::AssertSqlSafe<String> {
        match self.backend {
            Backend::Sqlite => sqlx::AssertSqlSafe(sql.to_owned()),
            Backend::Postgres => sqlx::AssertSqlSafe(sql.replace('?', "$")),
        }
    }

    /// Runs `sql` with `ms` and `id` bound as `?1` and `?2`.
    pub(crate) async fn run(&self, sql: &str, ms: i64, id: &str) -> u64 {
        sqlx::query(self.sql(sql))
            .bind(ms)
            .bind(id)
            .execute(&self.pool)
            .await
            .unwrap()
            .rows_affected()
    }

    /// Moves key `id`, and what it did, `days` into the past.
    pub(super) async fn age_key(&self, id: &str, days: i64) {
        let ms = days * DAY_MS;
        self.run(
            "UPDATE keys SET created_at = created_at - ?1, expires_at = expires_at - ?1,
               revoked_at = revoked_at - ?1 WHERE id = ?2",
            ms,
            id,
        )
        .await;
        self.age_audit(id, days).await;
        self.run(
            "UPDATE object_pairs SET created_at = created_at - ?1 WHERE object_id IN
               (SELECT object_id FROM objects WHERE label = (SELECT namespace FROM keys WHERE id = ?2))",
            ms,
            id,
        )
        .await;
        self.run(
            "UPDATE objects SET created_at = created_at - ?1
             WHERE label = (SELECT namespace FROM keys WHERE id = ?2)",
            ms,
            id,
        )
        .await;
    }

    /// Moves key `id`'s audit rows `days` into the past.
    pub(super) async fn age_audit(&self, id: &str, days: i64) {
        self.run(
            "UPDATE audit SET at = at - ?1 WHERE key_id = ?2",
            days * DAY_MS,
            id,
        )
        .await;
    }

    /// Rows of `table` where `column` is `id`.
    pub(super) async fn rows(&self, table: &str, column: &str, id: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = ?1");
        sqlx::query_scalar(self.sql(&sql))
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Rows of every table, to see that nothing changed.
    pub(super) async fn all_rows(&self) -> Vec<i64> {
        let mut counts = Vec::new();
        for table in keylease_broker::store::tidy::TABLES {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            counts.push(
                sqlx::query_scalar(self.sql(&sql))
                    .fetch_one(&self.pool)
                    .await
                    .unwrap(),
            );
        }
        counts
    }
}

/// Tidies the broker's database as its background task does, with
/// `audit` and `keys` retention.
pub(super) async fn tidy_now(broker: &TestBroker, audit: Duration, keys: Duration) -> Tidied {
    let store = Store::connect(&broker.database_url, Integrity::Skip)
        .await
        .unwrap();
    let retention = Retention {
        audit: Some(audit),
        keys: Some(keys),
        max_ttl: Duration::from_secs(24 * 3600),
    };
    tidy(&store, &retention, Pace::Full, None).await.unwrap()
}

/// A broker whose own tidy waits an hour, so that the test's runs are the only ones.
pub(super) async fn broker(backend: Backend) -> TestBroker {
    let broker = TestBroker::spawn_with(backend, |config| {
        config.tidy_interval = Duration::from_secs(3600);
        config.max_ttl = Duration::from_secs(48 * 3600);
    })
    .await;
    // Answered once its database is open.
    let (status, _) = broker.admin(Method::GET, "/v1/keys", None).await;
    assert_eq!(status, 200);
    broker
}

/// Issues a key for `label` and creates PaymentIntent `pi` with it.
pub(super) async fn key_with_payment(broker: &TestBroker, label: &str, pi: &str) -> Issued {
    let key = broker
        .issue_with(
            label,
            &["POST /v1/payment_intents"],
            50.0,
            json!({"expires_in": "1h", "allowed_metadata": {"order_id": format!("order-{pi}")}}),
        )
        .await;
    broker.upstream.script([Reply {
        body: json!({
            "id": pi, "object": "payment_intent", "amount": 1000, "currency": "usd",
            "metadata": {"order_id": format!("order-{pi}")},
        }),
        ..Reply::status(200)
    }]);
    let created = broker
        .stripe_post(
            &key.token,
            "/v1/payment_intents",
            &[("amount", "1000"), ("currency", "usd")],
        )
        .await;
    assert_eq!(created.status(), 200);
    key
}

pub(super) async fn revoke(broker: &TestBroker, key: &Issued) {
    let (status, body) = broker
        .admin(Method::DELETE, &format!("/v1/keys/{}", key.id), None)
        .await;
    assert_eq!(status, 204, "{body}");
}

/// `keylease-broker tidy --dry-run` on the broker's database: its printed counts.
pub(super) fn dry_run(broker: &TestBroker) -> Vec<u64> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keylease-broker"))
        .args(["tidy", "--dry-run", "--skip-integrity-check"])
        .env("KEYLEASE_BROKER_DATABASE_URL", &broker.database_url)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}
