//! Reads, as rows of one shape on both backends.
//!
//! On SQLite a read runs on the thread that asks for it, on a connection of
//! its own taken from [`Readers`]: WAL readers never wait for the writer,
//! and the broker's reads are indexed lookups of a few rows, so the read
//! costs less than the two thread switches of handing it to another thread
//! (issue 24). On PostgreSQL a read goes to the server through sqlx's pool.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Backend, Store};
use crate::group_commit::{Arg, bind};
use crate::sqlite::{Access, error, open};

/// Idle reader connections kept for reuse: one per thread that reads at
/// once; more are opened when needed and closed after.
const IDLE_READERS: usize = 8;

/// One column's value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
}

/// A row read, its values by column name.
#[derive(Debug)]
pub(crate) struct Row {
    names: Arc<[String]>,
    values: Vec<Value>,
}

/// What a column can be read as.
pub(crate) trait FromValue: Sized {
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(text) => Some(text.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl Row {
    /// Column `name` as a `T`.
    pub(crate) fn get<T: FromValue>(&self, name: &str) -> Result<T, sqlx::Error> {
        let index = self
            .names
            .iter()
            .position(|column| column == name)
            .ok_or_else(|| sqlx::Error::ColumnNotFound(name.to_owned()))?;
        T::from_value(&self.values[index]).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: name.to_owned(),
            source: format!(
                "{:?} is not a {}",
                self.values[index],
                std::any::type_name::<T>()
            )
            .into(),
        })
    }

    /// A row sqlx read from PostgreSQL, each column read as its type says.
    fn of(row: &AnyRow, names: &Arc<[String]>) -> Result<Self, sqlx::Error> {
        use sqlx::TypeInfo as _;
        use sqlx::any::AnyTypeInfoKind as Kind;
        let values = row
            .columns()
            .iter()
            .enumerate()
            .map(|(index, column)| {
                use sqlx::Column as _;
                Ok(match column.type_info().kind() {
                    Kind::Text => row
                        .try_get::<Option<String>, _>(index)?
                        .map_or(Value::Null, Value::Text),
                    Kind::Bool => row
                        .try_get::<Option<bool>, _>(index)?
                        .map_or(Value::Null, |b| Value::Int(i64::from(b))),
                    Kind::Null => Value::Null,
                    kind if kind.is_integer() => row
                        .try_get::<Option<i64>, _>(index)?
                        .map_or(Value::Null, Value::Int),
                    _ => {
                        return Err(sqlx::Error::Decode(
                            format!("a column of type {}", column.type_info().name()).into(),
                        ));
                    }
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(Self {
            names: names.clone(),
            values,
        })
    }
}

/// The SQLite file's reader connections.
pub(crate) struct Readers {
    path: PathBuf,
    access: Access,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers").field("path", &self.path).finish()
    }
}

impl Readers {
    pub(crate) fn new(path: PathBuf, access: Access) -> Self {
        Self {
            path,
            access,
            idle: Mutex::default(),
        }
    }

    /// Every row `sql` reads with `args` bound, on this thread.
    fn read(&self, sql: &str, args: &[Arg]) -> Result<Vec<Row>, sqlx::Error> {
        let taken = self.idle.lock().map(|mut idle| idle.pop()).unwrap_or(None);
        let connection = match taken {
            Some(connection) => connection,
            None => open(&self.path, self.access)?,
        };
        let rows = read_on(&connection, sql, args);
        // A connection that failed is not kept: the next read opens another.
        if rows.is_ok()
            && let Ok(mut idle) = self.idle.lock()
            && idle.len() < IDLE_READERS
        {
            idle.push(connection);
        }
        rows
    }
}

fn read_on(
    connection: &rusqlite::Connection,
    sql: &str,
    args: &[Arg],
) -> Result<Vec<Row>, sqlx::Error> {
    if args.len() <= CACHED_ARGS {
        rows_of(&mut *connection.prepare_cached(sql).map_err(error)?, args)
    } else {
        rows_of(&mut connection.prepare(sql).map_err(error)?, args)
    }
}

fn rows_of(statement: &mut rusqlite::Statement<'_>, args: &[Arg]) -> Result<Vec<Row>, sqlx::Error> {
    bind(statement, args)?;
    let names: Arc<[String]> = statement
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut rows = statement.raw_query();
    let mut read = Vec::new();
    while let Some(row) = rows.next().map_err(error)? {
        let values = (0..names.len())
            .map(|index| {
                use rusqlite::types::ValueRef;
                Ok(match row.get_ref(index).map_err(error)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::Int(n),
                    ValueRef::Text(text) => Value::Text(
                        std::str::from_utf8(text)
                            .map_err(|err| sqlx::Error::Decode(err.into()))?
                            .to_owned(),
                    ),
                    other => {
                        return Err(sqlx::Error::Decode(
                            format!("a column of type {:?}", other.data_type()).into(),
                        ));
                    }
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        read.push(Row {
            names: names.clone(),
            values,
        });
    }
    Ok(read)
}

/// Bound values past which a statement is not kept prepared: a page's
/// `IN (…)` of ids makes a statement per page size, kilobytes each.
const CACHED_ARGS: usize = 32;

/// Bound values past which a read goes to the blocking pool even when asked
/// to run here: a page of a hostile upstream's thousands of ids.
const INLINE_ARGS: usize = 128;

impl Store {
    /// Every row `sql` (in SQLite's `?N` syntax) reads with `args` bound:
    /// on SQLite on this thread, for the indexed lookups of a few rows that
    /// requests make.
    pub(crate) async fn fetch_all(&self, sql: &str, args: &[Arg]) -> Result<Vec<Row>, sqlx::Error> {
        let rows = match (&self.readers, self.backend) {
            (Some(readers), Backend::Sqlite) if args.len() <= INLINE_ARGS => {
                readers.read(sql, args)
            }
            (Some(_), Backend::Sqlite) => return self.fetch_all_aside(sql, args).await,
            _ => self.fetch_pooled(sql, args).await,
        };
        self.observe(rows)
    }

    /// [`Store::fetch_all`] for a read that may scan many rows (an admin's
    /// listing): on SQLite on the blocking pool, so that it never holds a
    /// thread that serves requests (issue 24's review measured `/healthz`
    /// waiting 0.6 s behind an audit scan of 3 million rows).
    pub(crate) async fn fetch_all_aside(
        &self,
        sql: &str,
        args: &[Arg],
    ) -> Result<Vec<Row>, sqlx::Error> {
        let rows = match (&self.readers, self.backend) {
            (Some(readers), Backend::Sqlite) => {
                let (readers, sql, args) = (readers.clone(), sql.to_owned(), args.to_vec());
                tokio::task::spawn_blocking(move || readers.read(&sql, &args))
                    .await
                    .map_err(|err| sqlx::Error::Protocol(format!("a read failed: {err}")))?
            }
            _ => self.fetch_pooled(sql, args).await,
        };
        self.observe(rows)
    }

    /// The first row `sql` reads with `args` bound, if any.
    pub(crate) async fn fetch_optional(
        &self,
        sql: &str,
        args: &[Arg],
    ) -> Result<Option<Row>, sqlx::Error> {
        Ok(self.fetch_all(sql, args).await?.into_iter().next())
    }

    async fn fetch_pooled(&self, sql: &str, args: &[Arg]) -> Result<Vec<Row>, sqlx::Error> {
        let mut query = sqlx::query(self.sql(sql));
        for arg in args {
            query = match arg {
                Arg::Int(value) => query.bind(*value),
                Arg::Text(value) => query.bind(value.clone()),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        let Some(first) = rows.first() else {
            return Ok(Vec::new());
        };
        use sqlx::Column as _;
        let names: Arc<[String]> = first
            .columns()
            .iter()
            .map(|column| column.name().to_owned())
            .collect();
        rows.iter().map(|row| Row::of(row, &names)).collect()
    }
}
