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
//! On SQLite every write goes through one writer task and one connection
//! (kept between batches, closed after any failure: see [`Held`]).
//! The writer takes whatever units have queued, runs them in one
//! transaction and commits: the first unit of an idle broker is committed at
//! once (there is no timer), and under load the units that arrive during one
//! commit share the next. SQLite has one writer at a time anyway, so this
//! serializes nothing that was not serialized, and no connection ever waits
//! on the file lock. A reservation's conditional upsert runs in the writer
//! like any statement, so it still checks and adds in one step.
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

use std::sync::{Arc, OnceLock};

use sqlx::any::AnyArguments;
use sqlx::pool::PoolConnection;
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
    /// SQLite: to the one writer task.
    Batched(mpsc::Sender<Job>),
    /// PostgreSQL: each unit in its own transaction on the pool.
    Direct(AnyPool),
}

impl Writer {
    /// A writer task owning `pool` (a pool of one connection), batching what queues.
    pub fn batched(pool: AnyPool) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let stop = Stop::default();
        tokio::spawn(run(pool, queue, stop.clone()));
        Self {
            mode: Mode::Batched(jobs),
            stop,
        }
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

async fn run(pool: AnyPool, mut queue: mpsc::Receiver<Job>, stop: Stop) {
    let mut batch = Vec::new();
    let mut connection = Held {
        pool,
        connection: None,
        stop,
    };
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit(&mut connection, &mut batch).await;
    }
}

/// The writer's connection, kept from one batch to the next and closed
/// after any failure.
///
/// Kept, because sqlx pings a connection each time it goes back to its
/// pool: a round trip to SQLite's thread the next batch would wait behind.
/// Closed, because after a failure sqlx's idea of the open transactions may
/// no longer match SQLite's: SQLite rolls a transaction back by itself on a
/// full disk, an I/O error or `OR ROLLBACK`, sqlx's own ROLLBACK then fails
/// unseen, and a connection kept after that could run every later unit
/// inside a transaction that never commits. Closing rolls back whatever is
/// open, and the next unit gets a new connection.
struct Held {
    pool: AnyPool,
    connection: Option<PoolConnection<Any>>,
    stop: Stop,
}

impl Held {
    /// One unit in a transaction of its own.
    async fn alone(&mut self, unit: &[Statement]) -> Result<Vec<u64>, sqlx::Error> {
        if let Some(refusal) = self.stop.refusal() {
            return Err(refusal);
        }
        let connection = self.get().await?;
        let result = alone(connection, unit).await;
        if let Err(err) = &result {
            self.failed(err).await;
        }
        result
    }

    /// `batch` in one transaction.
    async fn together(&mut self, batch: &[Job]) -> Result<Vec<Vec<u64>>, Failure> {
        if let Some(refusal) = self.stop.refusal() {
            return Err(Failure::NoConnection(refusal));
        }
        let connection = self.get().await.map_err(Failure::NoConnection)?;
        let result = together(connection, batch).await;
        if let Err(Failure::RolledBack(err) | Failure::Commit(err) | Failure::NoConnection(err)) =
            &result
        {
            self.failed(err).await;
        }
        result
    }

    /// After `err`: the connection goes, and the writer stops if the file failed.
    async fn failed(&mut self, err: &sqlx::Error) {
        if is_storage_failure(err) {
            self.stop.set(err);
        }
        self.close().await;
    }

    async fn get(&mut self) -> Result<&mut AnyConnection, sqlx::Error> {
        let connection = match self.connection.take() {
            Some(connection) => connection,
            None => self.pool.acquire().await?,
        };
        Ok(&mut **self.connection.insert(connection))
    }

    async fn close(&mut self) {
        if let Some(connection) = self.connection.take()
            && let Err(err) = connection.close().await
        {
            tracing::warn!(error = %err, "closing the writer's connection failed");
        }
    }
}

/// Commits `batch` and answers its units.
async fn commit(connection: &mut Held, batch: &mut Vec<Job>) {
    // An idle broker's unit is alone: it needs no transaction of the batch's
    // (a single statement commits on its own, as atomically and durably),
    // which saves the BEGIN and COMMIT round trips to SQLite's thread.
    if let [job] = batch.as_slice() {
        let result = connection.alone(&job.unit).await;
        if let Some(job) = batch.pop() {
            let _ = job.reply.send(result);
        }
        return;
    }
    // From here on the batch holds more than one unit.
    match connection.together(batch).await {
        Ok(results) => {
            for (job, rows) in batch.drain(..).zip(results) {
                let _ = job.reply.send(Ok(rows));
            }
        }
        Err(Failure::RolledBack(err)) => {
            // One unit's failure must not fail its neighbours: nothing was
            // written, so each is tried again in a transaction of its own.
            tracing::warn!(error = %err, units = batch.len(), "a group commit rolled back; committing its units one by one");
            for job in batch.drain(..) {
                let result = connection.alone(&job.unit).await;
                let _ = job.reply.send(result);
            }
        }
        Err(Failure::NoConnection(err)) => {
            tracing::error!(error = %err, units = batch.len(), "no database connection for a group commit");
            fail(batch, &format!("no database connection: {err}"));
        }
        Err(Failure::Commit(err)) => {
            // Not retried: a unit run twice could release a hold twice.
            tracing::error!(error = %err, units = batch.len(), "a group commit failed");
            fail(batch, &format!("commit failed: {err}"));
        }
    }
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

async fn together(connection: &mut AnyConnection, batch: &[Job]) -> Result<Vec<Vec<u64>>, Failure> {
    let mut transaction = connection.begin().await.map_err(Failure::RolledBack)?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        results.push(
            execute(&mut transaction, &job.unit)
                .await
                .map_err(Failure::RolledBack)?,
        );
    }
    transaction.commit().await.map_err(Failure::Commit)?;
    Ok(results)
}

/// One unit in a transaction of its own (a single statement needs none).
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
