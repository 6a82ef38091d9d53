//! SQLite connections of the broker's own (`rusqlite`), beside sqlx's.
//!
//! sqlx runs each SQLite connection on a thread of its own and reaches it
//! through a channel, so every statement costs two thread switches; the
//! broker's profile (issue 24) spent more time switching threads than in
//! SQLite. Its hot path therefore talks to SQLite directly: the writer
//! thread ([`crate::group_commit`]) runs a whole batch in one hop, and a
//! read runs on the thread that asked for it ([`crate::store`]). sqlx still
//! migrates the file and runs retention's reads; both link the one
//! `libsqlite3-sys`.
//!
//! Every connection is opened as sqlx's are (WAL, `synchronous = FULL`, a
//! busy timeout, foreign keys on), and its errors are turned into
//! `sqlx::Error::Database` with SQLite's extended code, so that callers see
//! one error type and [`crate::group_commit::is_storage_failure`] still
//! tells a failing disk from a refused statement.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

/// How long a connection waits for a lock another process holds (the
/// migrations, `keylease-broker tidy`) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The file a `sqlite://` URL names, as sqlx reads it (percent-decoded,
/// options after `?`), so that every connection opens the one file sqlx
/// migrated. An in-memory database is refused: each connection would have
/// one of its own, empty, and a restart would keep nothing.
pub fn path_of(url: &str) -> Result<PathBuf, sqlx::Error> {
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
    let path = options.get_filename();
    // Read as sqlx reads it: percent-decoded (`%3Amemory%3A`, `mode=memor%79`).
    let decoded = percent_encoding::percent_decode_str(url).decode_utf8_lossy();
    let lossy = path.to_string_lossy();
    if [":memory:", "mode=memory", "memdb"]
        .iter()
        .any(|memory| decoded.contains(memory) || lossy.contains(memory))
        || lossy.starts_with("file:")
    {
        return Err(sqlx::Error::Configuration(
            "an in-memory SQLite database is not one file the broker can share between its connections and keep across restarts: name a file".into(),
        ));
    }
    Ok(path.to_owned())
}

/// Whether a connection may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The writer's.
    ReadWrite,
    /// A reader's: `query_only`, so that a statement sent to it by mistake
    /// cannot write beside the writer.
    Read,
    /// Opened read-only (`tidy --dry-run`): the file is not created.
    ReadOnly,
}

/// Opens the existing database file at `path` with the broker's settings.
pub fn open(path: &Path, access: Access) -> Result<Connection, sqlx::Error> {
    let flags = match access {
        Access::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
        Access::ReadWrite | Access::Read => OpenFlags::SQLITE_OPEN_READ_WRITE,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(error)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(error)?;
    // WAL lets readers run beside the single writer, and `synchronous =
    // FULL` (SQLite's default, said outright) fsyncs every commit before it
    // returns, so what the broker has answered survives a power loss.
    let pragmas = match access {
        Access::ReadOnly => "PRAGMA foreign_keys = ON;",
        Access::Read => {
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA query_only = ON;"
        }
        Access::ReadWrite => {
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
        }
    };
    connection.execute_batch(pragmas).map_err(error)?;
    // A statement is planned once, for every value bound to it. Otherwise
    // SQLite plans a statement again each time a value it planned with is
    // bound anew (a `LIMIT ?`: the record's lookup, issue 24's profile), so
    // a statement kept prepared is parsed at every run. No broker query
    // needs a bound value to find its index: the partial indexes' terms
    // are literals in the statements that use them.
    connection
        .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(error)?;
    // Prepared statements kept per connection: the broker's hot path has a
    // few dozen distinct statements (a page of `IN (…)` ids makes more).
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

/// `err` as sqlx's error: a database's refusal keeps SQLite's extended code.
pub fn error(err: rusqlite::Error) -> sqlx::Error {
    match err {
        rusqlite::Error::SqliteFailure(failure, message) => {
            sqlx::Error::Database(Box::new(SqliteError {
                code: failure.extended_code,
                message: message.unwrap_or_else(|| failure.to_string()),
            }))
        }
        other => sqlx::Error::Protocol(format!("sqlite: {other}")),
    }
}

/// A statement SQLite refused, or a failure of its file.
#[derive(Debug, thiserror::Error)]
#[error("(code: {code}) {message}")]
pub struct SqliteError {
    /// SQLite's extended result code (the primary code in its low byte).
    code: i32,
    message: String,
}

impl sqlx::error::DatabaseError for SqliteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        use sqlx::error::ErrorKind;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_its_file_as_sqlx_reads_it() {
        let path = |url: &str| path_of(url).unwrap();
        assert_eq!(path("sqlite://a/b.db"), PathBuf::from("a/b.db"));
        assert_eq!(path("sqlite:///x/b.db?mode=rwc"), PathBuf::from("/x/b.db"));
        assert_eq!(path("sqlite:b.db"), PathBuf::from("b.db"));
        // Issue 24's review: sqlx migrated `a b/y.db`, the writer opened `a%20b/y.db`.
        assert_eq!(path("sqlite:///t/a%20b/y.db"), PathBuf::from("/t/a b/y.db"));
        for memory in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://?mode=memory",
            // The second review: the same, percent-encoded.
            "sqlite://%3Amemory%3A",
            "sqlite:///t/y.db?mode=memor%79",
            "sqlite:///t/y.db?vfs=memdb",
        ] {
            assert!(path_of(memory).is_err(), "{memory}");
        }
    }

    /// How often SQLite planned `sql` again over two runs with different
    /// values bound, kept prepared on `connection` as the readers keep it.
    fn planned_again(connection: &Connection, sql: &str) -> i32 {
        let mut statement = connection.prepare_cached(sql).unwrap();
        for (value, limit) in [("ord_1", 101), ("ord_2", 5)] {
            let mut rows = statement
                .query(rusqlite::params![
                    "stripe",
                    "acct",
                    "payment_intent",
                    "order_id",
                    value,
                    0,
                    limit
                ])
                .unwrap();
            while rows.next().unwrap().is_some() {}
        }
        statement.get_status(rusqlite::StatementStatus::RePrepare)
    }

    /// Issue 24's profile: the record's lookup (`LIMIT ?`) was parsed and
    /// planned again at every run of its kept statement.
    #[tokio::test]
    async fn a_kept_statement_is_not_planned_again_for_new_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.db");
        let url = format!("sqlite://{}", path.display());
        let store = crate::store::Store::connect(&url, crate::store::Integrity::Check)
            .await
            .unwrap();
        let sql = crate::store::pairs::OBJECTS_OF_PAIR;
        // Without the guarantee SQLite does plan it again: what is asserted below can fail.
        assert!(planned_again(&Connection::open(&path).unwrap(), sql) > 0);
        for access in [Access::Read, Access::ReadWrite] {
            assert_eq!(
                planned_again(&open(&path, access).unwrap(), sql),
                0,
                "{access:?}"
            );
        }
        drop(store);
    }

    #[test]
    fn a_refusal_keeps_its_kind_and_code() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(Connection::open(&path).unwrap());
        let connection = open(&path, Access::ReadWrite).unwrap();
        connection
            .execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
            .unwrap();
        let err = error(
            connection
                .execute("INSERT INTO t VALUES (1)", [])
                .unwrap_err(),
        );
        let sqlx::Error::Database(db) = &err else {
            panic!("{err}")
        };
        assert!(db.is_unique_violation(), "{err}");
        assert_eq!(db.code().as_deref(), Some("1555"));
        let reader = open(&path, Access::Read).unwrap();
        assert!(
            reader.execute("DELETE FROM t", []).is_err(),
            "a reader cannot write"
        );
    }
}
