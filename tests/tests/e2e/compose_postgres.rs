//! The broker, started with the environment docker-compose.yml gives it, runs on
//! PostgreSQL with a password full of characters a URL gives a meaning to. Compose
//! used to paste the password into a `postgres://` URL, and the broker crash-looped.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use keylease_testkit::bins::binary;
use keylease_testkit::ports::free_port;
use keylease_testkit::postgres::TestDatabase;
use keylease_tests::compose;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// The role `scripts/start-postgres.sh` makes for this test, and its password.
const ROLE: &str = "keylease_hostile";
const PASSWORD: &str = "p@ss:w/rd?#%41 $HOME&y=z";
const ADMIN_TOKEN: &str = "compose-pg-admin-token-6a0f93d2e18c4b7e";

async fn connect(database: &str) -> PgConnection {
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(5432)
        .username(ROLE)
        .password(PASSWORD)
        .database(database);
    PgConnection::connect_with(&options)
        .await
        .unwrap_or_else(|err| {
            panic!(
                "cannot log in as {ROLE} ({err}): run scripts/start-postgres.sh (make test does)"
            )
        })
}

/// The server as [`ROLE`], every byte of the password but letters and digits
/// percent-encoded: the database this test makes must be the role's own.
fn server_url_as_role() -> String {
    let password: String = PASSWORD
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("postgres://{ROLE}:{password}@127.0.0.1:5432/postgres")
}

#[tokio::test]
async fn the_broker_runs_on_postgres_with_a_url_hostile_password() {
    let test_database = TestDatabase::create_on(&server_url_as_role(), "compose_pg").await;
    let database = test_database.name();

    // What compose gives the broker when .env sets these.
    let vars: BTreeMap<&str, &str> = [
        ("POSTGRES_USER", ROLE),
        ("POSTGRES_PASSWORD", PASSWORD),
        ("KEYLEASE_BROKER_ADMIN_TOKEN", ADMIN_TOKEN),
        ("KEYLEASE_STRIPE_SECRET_KEY", "sk_test_compose_pg"),
    ]
    .into();
    let mut env = compose::interpolated_environment("broker", &vars);
    // Only what names compose's network changes: the `postgresql` service is this
    // machine's server, the port a free one, the database this test's own.
    let listen = format!("127.0.0.1:{}", free_port());
    let stripe_listen = format!("127.0.0.1:{}", free_port());
    for (name, value) in [
        ("PGHOST", "127.0.0.1"),
        ("PGDATABASE", database),
        ("KEYLEASE_BROKER_LISTEN", listen.as_str()),
        ("KEYLEASE_BROKER_STRIPE_LISTEN", stripe_listen.as_str()),
    ] {
        let given = env.insert(name.to_owned(), value.to_owned());
        assert!(given.is_some(), "compose gives the broker {name}");
    }

    let mut broker = Command::new(binary("keylease-broker"))
        .env_clear()
        .envs(&env)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start keylease-broker (make test builds it)");
    let http = reqwest::Client::new();
    let base = format!("http://{listen}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(exit) = broker.try_wait().unwrap() {
            let mut stderr = String::new();
            let mut pipe = broker.stderr.take().expect("stderr");
            pipe.read_to_string(&mut stderr).await.ok();
            panic!("the broker exited ({exit}): {stderr}");
        }
        let health = http.get(format!("{base}/healthz")).send().await;
        if health.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broker was not healthy within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let issued: serde_json::Value = http
        .post(format!("{base}/v1/keys"))
        .bearer_auth(ADMIN_TOKEN)
        .json(
            &serde_json::json!({"label": "compose-pg", "vendor": "stripe", "daily_usd_cap": 1,
                                   "allowed_endpoints": ["GET /v1/balance"], "expires_in": 60}),
        )
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let key_id = issued["id"].as_str().expect("a key id");

    // The key is in this test's PostgreSQL database, not in some SQLite file.
    let mut db = connect(database).await;
    let (held,): (i64,) = sqlx::query_as("SELECT count(*) FROM keys WHERE id = $1")
        .bind(key_id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(held, 1);
    db.close().await.ok();

    broker.start_kill().unwrap();
    broker.wait().await.unwrap();
    let mut stderr = String::new();
    let mut pipe = broker.stderr.take().expect("stderr");
    pipe.read_to_string(&mut stderr).await.unwrap();
    assert!(!stderr.contains(PASSWORD), "the password is never logged");
    assert!(!stderr.contains(ADMIN_TOKEN), "the token is never logged");
}
