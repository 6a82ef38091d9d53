//! What the tests find on this machine: free ports, the workspace's
//! binaries and the PostgreSQL server `scripts/start-postgres.sh` starts.

use std::net::TcpListener;
use std::path::PathBuf;

/// A port nothing listens on now (bound, then released for a process to take).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Where cargo has built the workspace's binaries: `target/debug` for a test
/// (which runs from `target/debug/deps`), the bench's own directory for `keylease-bench`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running binary's path");
    let dir = exe.parent().expect("a binary lives in a directory");
    match dir.file_name() {
        Some(name) if name == "deps" => dir.parent().unwrap_or(dir),
        _ => dir,
    }
    .to_path_buf()
}

/// A new, empty database on the test PostgreSQL server
/// (`KEYLEASE_TEST_POSTGRES_URL`, else the one `scripts/start-postgres.sh` starts); its URL.
pub async fn fresh_postgres_database(name: &str) -> String {
    use sqlx::Connection;
    let admin = std::env::var("KEYLEASE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://keylease:keylease@127.0.0.1:5432/postgres".to_owned());
    let mut connection = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|err| {
            panic!(
                "no PostgreSQL at {admin} ({err}): run scripts/start-postgres.sh (make test does)"
            )
        });
    let database = crate::stack::unique(name).replace('-', "_");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&mut connection)
        .await
        .expect("create a test database");
    let (base, _) = admin
        .rsplit_once('/')
        .expect("a database URL ends in /database");
    format!("{base}/{database}")
}
