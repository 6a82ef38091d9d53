//! Databases of a test's own on the test PostgreSQL server, which
//! `scripts/start-postgres.sh` starts, each dropped when its test is done.

use sqlx::{Connection, PgConnection};

/// The server's URL when `KEYLEASE_TEST_POSTGRES_URL` is not set.
const DEFAULT_SERVER_URL: &str = "postgres://keylease:keylease@127.0.0.1:5432/postgres";

/// The test PostgreSQL server, as a URL of its `postgres` database for a role
/// that may create databases: `KEYLEASE_TEST_POSTGRES_URL`, else the one
/// `scripts/start-postgres.sh` makes.
pub fn server_url() -> String {
    std::env::var("KEYLEASE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned())
}

/// A new, empty database, dropped (with whatever still holds it open) when
/// this guard is. `scripts/start-postgres.sh` drops one a crashed run left.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    server: String,
}

impl TestDatabase {
    /// A database named `<prefix>_<hex digits no other shares>` on [`server_url`].
    pub async fn create(prefix: &str) -> Self {
        Self::create_on(&server_url(), prefix).await
    }

    /// [`TestDatabase::create`] on the server at `server` (a URL of any
    /// database there); the new database belongs to `server`'s role.
    pub async fn create_on(server: &str, prefix: &str) -> Self {
        let name = format!("{prefix}_{}", unique_hex());
        let mut connection = connect(server).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await
            .expect("create a test database");
        connection.close().await.ok();
        let (base, _) = server
            .rsplit_once('/')
            .expect("a database URL ends in /database");
        Self {
            url: format!("{base}/{name}"),
            name,
            server: server.to_owned(),
        }
    }

    /// Its URL, for the broker's `KEYLEASE_BROKER_DATABASE_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop cannot await, and may run inside a test's runtime: a thread
        // of its own with a runtime of its own drops the database.
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| err.to_string())?;
            runtime.block_on(async {
                let mut connection = PgConnection::connect(&server)
                    .await
                    .map_err(|err| err.to_string())?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut connection)
                .await
                .map_err(|err| err.to_string())?;
                connection.close().await.ok();
                Ok(())
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the dropping thread panicked".to_owned()));
        // What the test checked is checked by now: a database left behind is
        // worth a line (the start script drops it later), not a failure.
        if let Err(err) = dropped {
            eprintln!("could not drop the test database {}: {err}", self.name);
        }
    }
}

async fn connect(server: &str) -> PgConnection {
    PgConnection::connect(server).await.unwrap_or_else(|err| {
        // The host only: the URL may hold a password.
        let host = server.rsplit_once('@').map_or(server, |(_, host)| host);
        panic!("no PostgreSQL at {host} ({err}): run scripts/start-postgres.sh (make test does)")
    })
}

/// Hex digits no other database of this or another run shares.
fn unique_hex() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64);
    format!(
        "{:x}_{:x}",
        nanos ^ u64::from(std::process::id()),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
