//! Group commit: the writes of concurrent requests share one transaction,
//! so one fsync makes many of them durable.
//!
//! A write is a *unit*: the statements of one request (a reservation; the
//! settlement of an answer with its audit row; a key issued or revoked),
//! answered with each statement's affected-row count only once the
//! transaction holding it has committed. Nothing is acknowledged that a
//! crash could undo, so a request never forwards on a reservation, nor
//! answers with an audit row, that is not on disk.
//!
//! On SQLite every write goes through one writer thread and one connection
//! ([`sqlite`]). The writer takes whatever units have queued, runs them in
//! one transaction and commits: the first unit of an idle broker is
//! committed at once (there is no timer), and under load the units that
//! arrive during one commit share the next. SQLite has one writer at a time
//! anyway, so this serializes nothing that was not serialized, and no
//! connection ever waits on the file lock. A reservation's conditional
//! upsert runs in the writer like any statement, so it still checks and
//! adds in one step.
//!
//! An I/O error, or a file SQLite finds corrupt, stops the writer for good
//! (see [`Stop`]): every later unit is refused without touching the file,
//! and the broker stops, so that nothing is answered from what a failing
//! disk may have lost; a restart checks the file before serving again.
//!
//! On PostgreSQL each unit commits in a transaction of its own on the pool:
//! the server already lets concurrent commits share a WAL flush, and a
//! transaction that holds only its own request's rows can never deadlock
//! with another broker's, as a batch of many requests' row locks could.

mod sqlite;

pub(crate) use sqlite::bind;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use sqlx::any::AnyArguments;
use sqlx::{Any, AnyConnection, AnyPool, Connection};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Most units in one transaction: bounds how long one commit holds the writer.
const MAX_BATCH: usize = 256;

/// Units waiting for the writer beyond which writers wait to enqueue.
const QUEUE_DEPTH: usize = 4096;

/// A bound parameter of a [`Statement`].
#[derive(Debug, Clone)]
pub enum Arg {
    /// An integer or NULL.
    Int(Option<i64>),
    /// A string or NULL.
    Text(Option<String>),
}

impl From<i64> for Arg {
    fn from(value: i64) -> Self {
        Self::Int(Some(value))
    }
}

impl From<Option<i64>> for Arg {
    fn from(value: Option<i64>) -> Self {
        Self::Int(value)
    }
}

impl From<&str> for Arg {
    fn from(value: &str) -> Self {
        Self::Text(Some(value.to_owned()))
    }
}

impl From<Option<&str>> for Arg {
    fn from(value: Option<&str>) -> Self {
        Self::Text(value.map(str::to_owned))
    }
}

/// One write statement with its parameters, in its backend's placeholder syntax.
#[derive(Debug, Clone)]
pub struct Statement {
    sql: String,
    args: Vec<Arg>,
    /// A line for the audit log, written once the statement committed and
    /// changed a row ([`crate::store::Store::write`]).
    line: Option<Vec<u8>>,
}

impl Statement {
    /// `sql` (already in the backend's syntax) with `args` bound in order.
    pub fn new(sql: String, args: Vec<Arg>) -> Self {
        Self {
            sql,
            args,
            line: None,
        }
    }

    /// This statement, with `line` to log once it has committed a row.
    pub fn with_line(mut self, line: Option<Vec<u8>>) -> Self {
        self.line = line;
        self
    }

    /// Its line to log, taken out.
    pub fn take_line(&mut self) -> Option<Vec<u8>> {
        self.line.take()
    }

    fn query(&self) -> sqlx::query::Query<'_, Any, AnyArguments> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.sql.as_str()));
        for arg in &self.args {
            query = match arg {
                Arg::Int(value) => query.bind(*value),
                Arg::Text(value) => query.bind(value.as_deref()),
            };
        }
        query
    }
}

/// The statements of one unit and where its answer goes.
struct Job {
    unit: Vec<Statement>,
    reply: oneshot::Sender<Result<Vec<u64>, sqlx::Error>>,
}

/// Where the broker's writes go.
#[derive(Debug, Clone)]
pub struct Writer {
    mode: Mode,
    stop: Stop,
}

/// The SQLite writer's fail-stop: set once, by the first write that shows
/// the file can no longer be trusted, and never cleared.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    reason: Arc<OnceLock<String>>,
    stopped: CancellationToken,
}

impl Stop {
    /// Why the writer stopped, once it has.
    pub fn reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }

    /// Completes when the writer stops.
    pub async fn stopped(&self) {
        self.stopped.cancelled().await;
    }

    /// Stops the writer for good, with `err` as the reason, unless it already stopped.
    pub(crate) fn set(&self, err: &sqlx::Error) {
        if self.reason.set(err.to_string()).is_ok() {
            tracing::error!(error = %err, "the database file failed: refusing every later write and stopping");
            self.stopped.cancel();
        }
    }

    fn refusal(&self) -> Option<sqlx::Error> {
        self.reason()
            .map(|why| sqlx::Error::Protocol(format!("the writer stopped after: {why}")))
    }
}

/// Whether `err` shows the SQLite file can no longer be trusted: an I/O
/// error (`SQLITE_IOERR`), a corrupt file (`SQLITE_CORRUPT`) or not a
/// database at all (`SQLITE_NOTADB`). A full disk (`SQLITE_FULL`) is not: it
/// heals when space is freed, and nothing acknowledged was lost.
pub(crate) fn is_storage_failure(err: &sqlx::Error) -> bool {
    const IOERR: i32 = 10;
    const CORRUPT: i32 = 11;
    const NOTADB: i32 = 26;
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    // SQLite's extended result codes keep the primary code in the low byte.
    db.code()
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, IOERR | CORRUPT | NOTADB))
}

#[derive(Debug, Clone)]
enum Mode {
    /// SQLite: to the one writer thread.
    Batched(mpsc::Sender<Job>),
    /// PostgreSQL: each unit in its own transaction on the pool.
    Direct(AnyPool),
}

impl Writer {
    /// A writer thread owning the one write connection of the SQLite file
    /// at `path`, batching what queues.
    pub fn sqlite(path: &Path) -> Result<Self, sqlx::Error> {
        let stop = Stop::default();
        Ok(Self {
            mode: Mode::Batched(sqlite::spawn(path, stop.clone())?),
            stop,
        })
    }

    /// Each unit committed on its own on `pool`.
    pub fn direct(pool: AnyPool) -> Self {
        Self {
            mode: Mode::Direct(pool),
            stop: Stop::default(),
        }
    }

    /// The writer's fail-stop (never set on PostgreSQL, whose server owns its files).
    pub fn stop(&self) -> &Stop {
        &self.stop
    }

    /// Commits `unit`, all of it or none; the rows each statement affected.
    pub async fn write(&self, unit: Vec<Statement>) -> Result<Vec<u64>, sqlx::Error> {
        match &self.mode {
            Mode::Direct(pool) => alone(&mut *pool.acquire().await?, &unit).await,
            Mode::Batched(jobs) => {
                let (reply, answer) = oneshot::channel();
                jobs.send(Job { unit, reply })
                    .await
                    .map_err(|_| sqlx::Error::WorkerCrashed)?;
                answer.await.map_err(|_| sqlx::Error::WorkerCrashed)?
            }
        }
    }
}

/// Why a batch did not commit.
enum Failure {
    /// No connection could be had: nothing was run, and trying each unit
    /// alone would only wait for one again, once per unit.
    NoConnection(sqlx::Error),
    /// A statement failed: the transaction rolled back and nothing of it was written.
    RolledBack(sqlx::Error),
    /// `COMMIT` itself failed: whether it was written is unknown.
    Commit(sqlx::Error),
}

/// Answers every unit of `batch` with an error: none of them was written.
fn fail(batch: &mut Vec<Job>, message: &str) {
    for job in batch.drain(..) {
        let _ = job
            .reply
            .send(Err(sqlx::Error::Protocol(message.to_owned())));
    }
}

async fn execute(
    connection: &mut AnyConnection,
    unit: &[Statement],
) -> Result<Vec<u64>, sqlx::Error> {
    let mut rows = Vec::with_capacity(unit.len());
    for statement in unit {
        rows.push(
            statement
                .query()
                .execute(&mut *connection)
                .await?
                .rows_affected(),
        );
    }
    Ok(rows)
}

/// One unit in a transaction of its own on PostgreSQL (a single statement needs none).
async fn alone(
    connection: &mut AnyConnection,
    unit: &[Statement],
) -> Result<Vec<u64>, sqlx::Error> {
    if let [statement] = unit {
        let done = statement.query().execute(&mut *connection).await?;
        return Ok(vec![done.rows_affected()]);
    }
    let mut transaction = connection.begin().await?;
    let rows = execute(&mut transaction, unit).await?;
    transaction.commit().await?;
    Ok(rows)
}

#[cfg(test)]
mod tests;
