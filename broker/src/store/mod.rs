//! The broker's database: SQLite or PostgreSQL, through sqlx's `Any` driver.
//!
//! This module opens the database and holds what every table shares: the
//! writer every write goes through (durable before it returns, many
//! requests to one fsync on SQLite; see [`crate::group_commit`]) and the
//! dialect. Statements are written once with `?N` placeholders (SQLite's)
//! and turned into `$N` (PostgreSQL's) for a PostgreSQL pool; both mean the
//! N-th bind. Each table has its module:
//! - [`keys`]: issued keys (never their tokens), looked up, listed, revoked.
//! - [`spend`]: what each key holds against its cap per spend period.
//! - [`objects`]: objects seen through the proxy, who made them, what they hold.
//! - [`audit`]: one row per proxied request.

pub mod audit;
pub mod keys;
pub mod objects;
pub mod spend;

use chrono::{DateTime, Utc};
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::MigrateDatabase;
use sqlx::{Any, AnyPool, Executor};

use crate::group_commit::{Arg, Statement, Writer};

pub use audit::AuditRecord;
pub use keys::KeyFilter;
pub use objects::ObjectRecord;
pub use spend::Reservation;

/// Which database a store is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://path`: one file, one broker process.
    Sqlite,
    /// `postgres://…`: shared by any number of broker processes.
    Postgres,
}

impl Backend {
    /// The backend a database URL names.
    pub fn of(url: &str) -> Result<Self, sqlx::Error> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres)
        } else {
            Err(sqlx::Error::Configuration(
                "the database URL must start with sqlite:// or postgres://".into(),
            ))
        }
    }
}

/// The broker's database.
#[derive(Debug, Clone)]
pub struct Store {
    /// Reads. Writes on SQLite go through the writer's own connection.
    pool: AnyPool,
    backend: Backend,
    writer: Writer,
}

/// Times are stored as unix milliseconds (UTC).
fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn decode_err(err: serde_json::Error) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(err))
}

/// Pool settings for `backend`, at most `connections` connections.
fn pool_options(backend: Backend, connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        // A SQLite connection is a file handle that cannot go stale, so the
        // ping before each use (one more round trip to its thread) buys
        // nothing; a PostgreSQL server may have dropped the connection.
        .test_before_acquire(backend == Backend::Postgres)
        .after_connect(move |connection, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers run beside the single writer, and
                    // `synchronous = FULL` (SQLite's default, said outright)
                    // fsyncs every commit before it returns, so what the
                    // broker has answered survives a power loss. The busy
                    // timeout covers the migrations and any other process.
                    connection
                        .execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;")
                        .await?;
                }
                Ok(())
            })
        })
}

impl Store {
    /// Opens the database at `url` (a SQLite file is created if missing) and applies the embedded migrations.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        if backend == Backend::Sqlite && !Any::database_exists(url).await? {
            Any::create_database(url).await?;
        }
        let pool = pool_options(backend, 8).connect(url).await?;
        let writer = match backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
                Writer::batched(pool_options(backend, 1).connect(url).await?)
            }
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres").run(&pool).await?;
                Writer::direct(pool.clone())
            }
        };
        Ok(Self {
            pool,
            backend,
            writer,
        })
    }

    /// Commits `unit` (group-committed with other requests' writes on SQLite):
    /// all of it or none, and durable before this returns. The rows each statement affected.
    pub async fn write(&self, unit: Vec<Statement>) -> Result<Vec<u64>, sqlx::Error> {
        self.writer.write(unit).await
    }

    /// Commits one statement; the rows it affected.
    async fn write_one(&self, statement: Statement) -> Result<u64, sqlx::Error> {
        Ok(self
            .write(vec![statement])
            .await?
            .first()
            .copied()
            .unwrap_or(0))
    }

    /// `sql` in this backend's syntax with `args`, to be committed by [`Store::write`].
    fn statement(&self, sql: &str, args: Vec<Arg>) -> Statement {
        Statement::new(self.sql(sql).0, args)
    }

    /// `statement` in this backend's placeholder syntax.
    fn sql(&self, statement: &str) -> sqlx::AssertSqlSafe<String> {
        match self.backend {
            Backend::Sqlite => sqlx::AssertSqlSafe(statement.to_owned()),
            Backend::Postgres => sqlx::AssertSqlSafe(statement.replace('?', "$")),
        }
    }
}
