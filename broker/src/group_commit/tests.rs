//! The writer against a real SQLite file: what it answers is committed, and a failure costs only its own unit.

use super::*;
use sqlx::migrate::MigrateDatabase;

/// A pool of `connections` on a database of one table, `t`.
async fn sqlite_pool(dir: &tempfile::TempDir, connections: u32) -> AnyPool {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}/g.db", dir.path().display());
    if !Any::database_exists(&url).await.unwrap() {
        Any::create_database(&url).await.unwrap();
    }
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(connections)
        .connect(&url)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    pool
}

/// The writer of the database [`sqlite_pool`] made in `dir`.
fn writer(dir: &tempfile::TempDir) -> Writer {
    Writer::sqlite(&dir.path().join("g.db")).unwrap()
}

fn insert(n: i64) -> Statement {
    Statement::new("INSERT INTO t (n) VALUES (?1)".to_owned(), vec![n.into()])
}

/// An insert of `n` that, if `n` is taken, makes SQLite roll back the
/// whole transaction by itself, as a full disk or an I/O error would.
fn rollback_by_sqlite(n: i64) -> Statement {
    Statement::new(
        "INSERT OR ROLLBACK INTO t (n) VALUES (?1)".to_owned(),
        vec![n.into()],
    )
}

/// A unit whose answer nobody awaits.
fn job(unit: Vec<Statement>) -> Job {
    let (reply, _) = oneshot::channel();
    Job { unit, reply }
}

async fn rows(pool: &AnyPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT n FROM t ORDER BY n")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Units that share a transaction must not share a failure: a unit the
/// database refuses fails alone, whole, and its neighbours commit.
#[tokio::test]
async fn a_refused_unit_fails_alone_and_whole() {
    let dir = tempfile::tempdir().unwrap();
    // As the store does: the writer owns its connection, reads go elsewhere.
    let pool = sqlite_pool(&dir, 2).await;
    let writer = writer(&dir);
    assert_eq!(writer.write(vec![insert(0)]).await.unwrap(), vec![1]);
    // Queued together, so most land in one batch; every fifth repeats n = 0,
    // in a unit whose first statement alone would have succeeded.
    let units = (1..=40).map(|n| {
        let writer = writer.clone();
        async move {
            let unit = if n % 5 == 0 {
                vec![insert(1000 + n), insert(0)]
            } else {
                vec![insert(n), insert(100 + n)]
            };
            (n, writer.write(unit).await)
        }
    });
    for (n, result) in futures::future::join_all(units).await {
        if n % 5 == 0 {
            assert!(result.is_err(), "unit {n} should have been refused");
        } else {
            assert_eq!(result.unwrap(), vec![1, 1], "unit {n}");
        }
    }
    let expected: Vec<i64> = std::iter::once(0)
        .chain((1..=40).filter(|n| n % 5 != 0))
        .chain((1..=40).filter(|n| n % 5 != 0).map(|n| 100 + n))
        .collect();
    let mut expected = expected;
    expected.sort_unstable();
    assert_eq!(rows(&pool).await, expected);
    // A failed batch costs the writer its connection; it goes on with a new one.
    assert_eq!(writer.write(vec![insert(500)]).await.unwrap(), vec![1]);
    assert!(rows(&pool).await.contains(&500));
}

/// SQLite may roll a transaction back by itself (a full disk, an I/O
/// error, `OR ROLLBACK`): a connection kept after that with a transaction
/// believed open could run every later unit inside a transaction that
/// never commits, answering each as written. A failure costs the writer
/// its connection instead.
#[tokio::test]
async fn a_unit_answered_as_written_is_committed_after_sqlite_rolled_back_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlite_pool(&dir, 2).await;
    let writer = writer(&dir);
    assert_eq!(writer.write(vec![insert(0)]).await.unwrap(), vec![1]);
    // In a batch and alone: SQLite ends the transaction itself.
    let units = (1..=20).map(|n| {
        let writer = writer.clone();
        let unit = if n % 4 == 0 {
            vec![insert(1000 + n), rollback_by_sqlite(0)]
        } else {
            vec![insert(n), insert(100 + n)]
        };
        async move { writer.write(unit).await }
    });
    futures::future::join_all(units).await;
    // Then an ordinary refusal, in a unit of its own.
    assert!(writer.write(vec![insert(2000), insert(0)]).await.is_err());
    assert_eq!(writer.write(vec![insert(700)]).await.unwrap(), vec![1]);
    assert!(
        rows(&pool).await.contains(&700),
        "a unit answered as written must be visible to every connection"
    );
    assert!(!rows(&pool).await.contains(&2000));
}

/// The same, one step down: a batch SQLite rolled back by itself leaves
/// the writer no connection with a transaction open.
#[tokio::test]
async fn a_batch_sqlite_rolled_back_leaves_no_transaction_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(sqlite_pool(&dir, 1).await);
    let mut held = sqlite::Held::new(&dir.path().join("g.db"));
    held.alone(&[insert(0)]).unwrap();
    let batch = vec![
        job(vec![insert(1)]),
        job(vec![insert(1001), rollback_by_sqlite(0)]),
    ];
    assert!(held.together(&batch).is_err());
    assert!(
        held.connection.is_none(),
        "the failed batch's connection is closed"
    );
    assert_eq!(held.alone(&[insert(2)]).unwrap(), vec![1]);
    assert!(held.connection.as_ref().is_some_and(|c| c.is_autocommit()));
}

/// When no connection can be had, a batch is refused at once, whole, and
/// the writer opens one again once it can.
#[tokio::test]
async fn a_batch_without_a_connection_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlite_pool(&dir, 1).await;
    let writer = writer(&dir);
    writer.write(vec![insert(0)]).await.unwrap();
    // A refused unit costs the writer its connection; then none can be had
    // while the file is gone.
    assert!(writer.write(vec![insert(0)]).await.is_err());
    let path = dir.path().join("g.db");
    let aside = dir.path().join("aside");
    std::fs::create_dir(&aside).unwrap();
    std::fs::rename(&path, aside.join("g.db")).unwrap();
    std::fs::create_dir(&path).unwrap();
    let units = (1..=10).map(|n| {
        let writer = writer.clone();
        async move { writer.write(vec![insert(n)]).await }
    });
    for result in futures::future::join_all(units).await {
        assert!(result.is_err());
    }
    std::fs::remove_dir(&path).unwrap();
    std::fs::rename(aside.join("g.db"), &path).unwrap();
    assert_eq!(writer.write(vec![insert(11)]).await.unwrap(), vec![1]);
    assert_eq!(rows(&pool).await, vec![0, 11]);
}

/// Issue 20: after a disk error the broker went on answering (new
/// PaymentIntents 200) from a file it could no longer read whole. A write
/// that finds the file corrupt now stops the writer for good: it says why,
/// refuses every later unit without touching the file (a unit that would
/// have succeeded included), and signals the broker to stop.
#[tokio::test]
async fn a_write_that_finds_the_file_corrupt_stops_the_writer_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let setup = sqlite_pool(&dir, 1).await;
    // Enough rows of padding for the table to span many pages.
    sqlx::query("CREATE TABLE pad (n INTEGER PRIMARY KEY, s TEXT)")
        .execute(&setup)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO pad (n, s) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000)
         SELECT x, hex(randomblob(100)) FROM c",
    )
    .execute(&setup)
    .await
    .unwrap();
    setup.close().await;
    {
        use std::io::{Seek, SeekFrom, Write};
        let path = dir.path().join("g.db");
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len > 64 * 4096, "{len} bytes");
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start(len / 2 / 4096 * 4096)).unwrap();
        file.write_all(&[0xa5; 4096]).unwrap();
    }

    let writer = writer(&dir);
    let touch_every_row = Statement::new("UPDATE pad SET s = 'y'".to_owned(), vec![]);
    let err = writer.write(vec![touch_every_row]).await.unwrap_err();
    assert!(is_storage_failure(&err), "{err}");
    tokio::time::timeout(std::time::Duration::from_secs(5), writer.stop().stopped())
        .await
        .expect("the writer signals that it stopped");
    assert!(
        writer
            .stop()
            .reason()
            .is_some_and(|why| why.contains("malformed"))
    );

    let refused = writer.write(vec![insert(7)]).await.unwrap_err();
    assert!(refused.to_string().contains("stopped"), "{refused}");
    let reader = sqlite_pool(&dir, 1).await;
    assert_eq!(
        rows(&reader).await,
        Vec::<i64>::new(),
        "nothing was written"
    );
}
