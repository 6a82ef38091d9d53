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
//! - [`pairs`]: the metadata pairs of PaymentIntents made through the proxy.
//! - [`audit`]: one row per proxied request.
//! - [`tidy`]: what retention deletes, in batches.

pub mod audit;
pub mod idempotent;
pub mod keys;
pub mod objects;
pub mod pairs;
mod read;
pub mod roles;
pub mod spend;
pub mod tidy;

use chrono::{DateTime, Utc};
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::MigrateDatabase;
use sqlx::{Any, AnyPool, Executor};

use std::sync::{Arc, OnceLock};

use crate::audit_log::AuditLog;
use crate::group_commit::{Arg, Statement, Writer};
use crate::sqlite::Access as SqliteAccess;
use read::Readers;

pub use audit::{AuditKind, AuditRecord};
pub use keys::KeyFilter;
pub use objects::{Hold, MadeBy, ObjectRecord};
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

/// Whether a SQLite file is checked when it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// `PRAGMA integrity_check` before anything else: a corrupt file is refused.
    Check,
    /// Open it as it is (the operator's explicit choice).
    Skip,
}

impl Integrity {
    /// What `--skip-integrity-check` of `db` asks for.
    pub fn of(db: &crate::config::DatabaseConfig) -> Self {
        if db.skip_integrity_check {
            Self::Skip
        } else {
            Self::Check
        }
    }
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The database refused, or could not be reached or migrated.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The SQLite file failed its integrity check.
    #[error(
        "the SQLite file failed its integrity check ({0}): restore it from a backup; \
         KEYLEASE_BROKER_SKIP_INTEGRITY_CHECK=true opens it anyway"
    )]
    Corrupt(String),
}

/// The broker's database.
#[derive(Debug, Clone)]
pub struct Store {
    /// PostgreSQL's reads and writes; on SQLite the migrations and
    /// retention's reads only.
    pool: AnyPool,
    /// SQLite's reads, each on the thread that asks ([`read`]).
    readers: Option<Arc<Readers>>,
    backend: Backend,
    writer: Writer,
    /// `--audit-log`, once the server has opened it.
    audit_log: Arc<OnceLock<AuditLog>>,
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
    pool_options_of(backend, connections, Access::ReadWrite)
}

/// Whether a pool may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    /// PostgreSQL: every transaction read-only (a SQLite URL says `mode=ro`).
    ReadOnly,
}

fn pool_options_of(backend: Backend, connections: u32, access: Access) -> AnyPoolOptions {
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
                if backend == Backend::Postgres && access == Access::ReadOnly {
                    connection
                        .execute("SET default_transaction_read_only = on")
                        .await?;
                }
                Ok(())
            })
        })
}

/// SQLite's `PRAGMA integrity_check` on a connection of its own, before
/// any pool or migration touches the file: every page, record and index
/// entry read once (an index that disagrees with its table would serve one
/// key's token as another's). A file that is not a database, or an empty
/// one where the broker had kept its state, fails here at once and plainly.
async fn integrity_check(url: &str) -> Result<(), OpenError> {
    use sqlx::Connection;
    let started = std::time::Instant::now();
    let corrupt = |err: sqlx::Error| OpenError::Corrupt(err.to_string());
    let path = crate::sqlite::path_of(url)?;
    if std::fs::metadata(&path).is_ok_and(|file| file.len() == 0) {
        return Err(OpenError::Corrupt(
            "the file is empty; delete it to start afresh".to_owned(),
        ));
    }
    let mut connection = sqlx::AnyConnection::connect(url).await.map_err(corrupt)?;
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut connection)
        .await
        .map_err(corrupt)?;
    let _ = connection.close().await;
    if rows.len() == 1 && rows[0] == "ok" {
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "SQLite file passed its integrity check"
        );
        return Ok(());
    }
    let first = rows.first().map(String::as_str).unwrap_or("no answer");
    Err(OpenError::Corrupt(format!(
        "{} problem(s), first: {first}",
        rows.len()
    )))
}

/// Makes a new, empty SQLite file one whose freed pages tidy can give back
/// (`auto_vacuum = INCREMENTAL`), which SQLite allows only by rewriting the
/// file: at once here, while it is empty. docs/retention.md says how to
/// convert an older file.
async fn incremental_vacuum(url: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut connection = sqlx::AnyConnection::connect(url).await?;
    connection
        .execute("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")
        .await?;
    connection.close().await
}

impl Store {
    /// Opens the database at `url` (a SQLite file is created if missing),
    /// checks an existing SQLite file's integrity unless told to skip it, and
    /// applies the embedded migrations.
    pub async fn connect(url: &str, integrity: Integrity) -> Result<Self, OpenError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        if backend == Backend::Sqlite {
            crate::sqlite::path_of(url)?;
        }
        let existed = backend == Backend::Postgres || Any::database_exists(url).await?;
        if backend == Backend::Sqlite && existed && integrity == Integrity::Check {
            integrity_check(url).await?;
        }
        if !existed {
            Any::create_database(url).await?;
            if backend == Backend::Sqlite {
                incremental_vacuum(url).await?;
            }
        }
        let (pool, writer, readers) = match backend {
            Backend::Sqlite => {
                let pool = pool_options(backend, 2).connect(url).await?;
                sqlx::migrate!("./migrations/sqlite")
                    .run(&pool)
                    .await
                    .map_err(sqlx::Error::from)?;
                let path = crate::sqlite::path_of(url)?;
                let writer = Writer::sqlite(&path)?;
                let readers = Readers::new(path, SqliteAccess::Read);
                (pool, writer, Some(Arc::new(readers)))
            }
            Backend::Postgres => {
                let pool = pool_options(backend, 8).connect(url).await?;
                sqlx::migrate!("./migrations/postgres")
                    .run(&pool)
                    .await
                    .map_err(sqlx::Error::from)?;
                (pool.clone(), Writer::direct(pool), None)
            }
        };
        Ok(Self {
            pool,
            readers,
            backend,
            writer,
            audit_log: Arc::default(),
        })
    }

    /// Opens the existing database at `url` read-only, as migrated by a
    /// broker of this release (for `tidy --dry-run`): a missing SQLite file
    /// is refused, not created, and no migration runs.
    pub async fn connect_read_only(url: &str) -> Result<Self, OpenError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        let url = match backend {
            Backend::Sqlite if !Any::database_exists(url).await? => {
                return Err(OpenError::Database(sqlx::Error::Configuration(
                    "there is no database file there (a dry run creates none)".into(),
                )));
            }
            Backend::Sqlite if url.contains('?') => format!("{url}&mode=ro"),
            Backend::Sqlite => format!("{url}?mode=ro"),
            Backend::Postgres => url.to_owned(),
        };
        let pool = pool_options_of(backend, 2, Access::ReadOnly)
            .connect(&url)
            .await?;
        let latest = match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        }
        .iter()
        .map(|migration| migration.version)
        .max()
        .unwrap_or(0);
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&pool)
                .await
                .unwrap_or(None);
        if applied != Some(latest) {
            return Err(OpenError::Database(sqlx::Error::Configuration(
                format!(
                    "the database is at migration {}, this release's is {latest}: start this release's broker on it first",
                    applied.unwrap_or(0)
                )
                .into(),
            )));
        }
        let readers = match backend {
            Backend::Sqlite => Some(Arc::new(Readers::new(
                crate::sqlite::path_of(&url)?,
                SqliteAccess::ReadOnly,
            ))),
            Backend::Postgres => None,
        };
        Ok(Self {
            writer: Writer::direct(pool.clone()),
            pool,
            readers,
            backend,
            audit_log: Arc::default(),
        })
    }

    /// Commits `unit` (group-committed with other requests' writes on SQLite):
    /// all of it or none, and durable before this returns. The rows each
    /// statement affected. The audit log's line of each statement that
    /// changed a row is written once the unit has committed.
    pub async fn write(&self, mut unit: Vec<Statement>) -> Result<Vec<u64>, sqlx::Error> {
        let lines: Vec<Option<Vec<u8>>> = unit.iter_mut().map(Statement::take_line).collect();
        let rows = self.writer.write(unit).await?;
        if let Some(log) = self.audit_log.get() {
            for (line, affected) in lines.iter().zip(&rows) {
                if let Some(line) = line
                    && *affected > 0
                {
                    log.write(line);
                }
            }
        }
        Ok(rows)
    }

    /// Sends every audit record committed from now on to `log` as well
    /// (once: a second log is refused and returned).
    pub fn set_audit_log(&self, log: AuditLog) -> Result<(), AuditLog> {
        self.audit_log.set(log)
    }

    /// `--audit-log`, when set.
    pub fn audit_log(&self) -> Option<&AuditLog> {
        self.audit_log.get()
    }

    /// The SQLite writer's fail-stop: set when a write shows the file can no
    /// longer be trusted, after which every write is refused.
    pub fn stop(&self) -> &crate::group_commit::Stop {
        self.writer.stop()
    }

    /// `result` of a read, after stopping the writer if the read showed the
    /// file can no longer be trusted: a page that reads back corrupt fails
    /// the broker as a failed write does, rather than leave it serving.
    fn observe<T>(&self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        if let Err(err) = &result
            && self.backend == Backend::Sqlite
            && crate::group_commit::is_storage_failure(err)
        {
            self.writer.stop().set(err);
        }
        result
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

#[cfg(test)]
mod tests;
