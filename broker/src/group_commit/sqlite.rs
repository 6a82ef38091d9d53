//! The SQLite writer: one thread that owns the file's one write connection.
//!
//! It sleeps until a unit arrives, takes every unit queued behind it (up
//! to [`MAX_BATCH`]), runs them in one transaction and commits: one wake-up
//! of this thread and one fsync for the batch, each statement run where its
//! connection lives, with no further hop (issue 24 measured the hops of a
//! connection behind a channel costing more than SQLite itself).
//!
//! The connection is kept from one batch to the next and closed after any
//! failure: SQLite rolls a transaction back by itself on a full disk, an
//! I/O error or `OR ROLLBACK`, and a connection is only reused when nothing
//! of a failed batch can still be open on it.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::mpsc;

use super::{Arg, Failure, Job, MAX_BATCH, QUEUE_DEPTH, Statement, Stop, is_storage_failure};
use crate::sqlite::{Access, error, open};

/// Starts the writer thread on the database file at `path`, opening its
/// connection first so that a file that cannot be written fails here.
pub(super) fn spawn(path: &Path, stop: Stop) -> Result<mpsc::Sender<Job>, sqlx::Error> {
    let connection = open(path, Access::ReadWrite)?;
    let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
    let held = Held {
        path: path.to_owned(),
        connection: Some(connection),
        stop,
    };
    std::thread::Builder::new()
        .name("keylease-writer".to_owned())
        .spawn(move || run(held, queue))
        .map_err(sqlx::Error::Io)?;
    Ok(jobs)
}

/// Runs until every sender is gone (the store dropped), then closes the file.
fn run(mut held: Held, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::new();
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit(&mut held, &mut batch);
    }
}

/// The writer's connection, kept between batches and closed after a failure.
pub(super) struct Held {
    path: PathBuf,
    pub(super) connection: Option<Connection>,
    stop: Stop,
}

impl Held {
    #[cfg(test)]
    pub(super) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            connection: None,
            stop: Stop::default(),
        }
    }

    /// One unit in a transaction of its own (a single statement needs none).
    pub(super) fn alone(&mut self, unit: &[Statement]) -> Result<Vec<u64>, sqlx::Error> {
        if let Some(refusal) = self.stop.refusal() {
            return Err(refusal);
        }
        let connection = self.get()?;
        let result = match unit {
            [statement] => execute(connection, statement).map(|rows| vec![rows]),
            _ => in_transaction(connection, |connection| run_unit(connection, unit))
                .map_err(|(_, err)| err),
        };
        if let Err(err) = &result {
            self.failed(err);
        }
        result
    }

    /// `batch` in one transaction.
    pub(super) fn together(&mut self, batch: &[Job]) -> Result<Vec<Vec<u64>>, Failure> {
        if let Some(refusal) = self.stop.refusal() {
            return Err(Failure::NoConnection(refusal));
        }
        let connection = self.get().map_err(Failure::NoConnection)?;
        let result = in_transaction(connection, |connection| {
            batch
                .iter()
                .map(|job| run_unit(connection, &job.unit))
                .collect()
        })
        .map_err(|(committing, err)| {
            if committing {
                Failure::Commit(err)
            } else {
                Failure::RolledBack(err)
            }
        });
        if let Err(Failure::RolledBack(err) | Failure::Commit(err) | Failure::NoConnection(err)) =
            &result
        {
            self.failed(err);
        }
        result
    }

    /// After `err`: the connection goes (closing it rolls back whatever is
    /// open), and the writer stops if the file failed.
    fn failed(&mut self, err: &sqlx::Error) {
        if is_storage_failure(err) {
            self.stop.set(err);
        }
        if let Some(connection) = self.connection.take()
            && let Err((_, err)) = connection.close()
        {
            tracing::warn!(error = %err, "closing the writer's connection failed");
        }
    }

    fn get(&mut self) -> Result<&mut Connection, sqlx::Error> {
        let connection = match self.connection.take() {
            Some(connection) => connection,
            None => open(&self.path, Access::ReadWrite)?,
        };
        Ok(self.connection.insert(connection))
    }
}

/// Commits `batch` and answers its units.
fn commit(held: &mut Held, batch: &mut Vec<Job>) {
    // An idle broker's unit is alone: it needs no transaction of the batch's.
    if let [job] = batch.as_slice() {
        let result = held.alone(&job.unit);
        if let Some(job) = batch.pop() {
            let _ = job.reply.send(result);
        }
        return;
    }
    match held.together(batch) {
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
                let result = held.alone(&job.unit);
                let _ = job.reply.send(result);
            }
        }
        Err(Failure::NoConnection(err)) => {
            tracing::error!(error = %err, units = batch.len(), "no database connection for a group commit");
            super::fail(batch, &format!("no database connection: {err}"));
        }
        Err(Failure::Commit(err)) => {
            // Not retried: a unit run twice could release a hold twice.
            tracing::error!(error = %err, units = batch.len(), "a group commit failed");
            super::fail(batch, &format!("commit failed: {err}"));
        }
    }
}

/// `work` inside `BEGIN IMMEDIATE … COMMIT`; on failure whether it was the
/// commit that failed (the outcome then unknown) and why.
fn in_transaction<T>(
    connection: &mut Connection,
    work: impl FnOnce(&Connection) -> Result<T, sqlx::Error>,
) -> Result<T, (bool, sqlx::Error)> {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|err| (false, error(err)))?;
    let done = work(&transaction).map_err(|err| (false, err))?;
    transaction.commit().map_err(|err| (true, error(err)))?;
    Ok(done)
}

fn run_unit(connection: &Connection, unit: &[Statement]) -> Result<Vec<u64>, sqlx::Error> {
    unit.iter()
        .map(|statement| execute(connection, statement))
        .collect()
}

/// Runs `statement` to its end; the rows it changed.
fn execute(connection: &Connection, statement: &Statement) -> Result<u64, sqlx::Error> {
    let mut prepared = connection.prepare_cached(&statement.sql).map_err(error)?;
    bind(&mut prepared, &statement.args)?;
    let mut rows = prepared.raw_query();
    // A statement may answer rows (a pragma does); they are not wanted.
    while rows.next().map_err(error)?.is_some() {}
    drop(rows);
    Ok(connection.changes())
}

/// Binds `args` to `statement` as sqlx does: `?N` takes the N-th argument,
/// and a parameter past the last argument is NULL.
pub(crate) fn bind(
    statement: &mut rusqlite::Statement<'_>,
    args: &[Arg],
) -> Result<(), sqlx::Error> {
    for index in 1..=statement.parameter_count() {
        let position = match statement.parameter_name(index) {
            Some(name) => name
                .strip_prefix('?')
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| {
                    sqlx::Error::Protocol(format!("unsupported SQL parameter {name}"))
                })?,
            None => index,
        };
        let bound = match args.get(position.wrapping_sub(1)) {
            Some(Arg::Int(value)) => statement.raw_bind_parameter(index, value),
            Some(Arg::Text(value)) => statement.raw_bind_parameter(index, value.as_deref()),
            None => statement.raw_bind_parameter(index, rusqlite::types::Null),
        };
        bound.map_err(error)?;
    }
    Ok(())
}
