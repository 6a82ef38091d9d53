//! Migrations carry what a broker already holds: a database written by the
//! previous schema opens under the new one with the same spend and holds.

use std::borrow::Cow;

use chrono::Utc;
use keylease_broker::key::{SpendPeriod, SpendRow};
use keylease_broker::store::{Integrity, Store};
use sqlx::migrate::{MigrateDatabase, Migrator};

use crate::helpers::{Backend, TestDatabase};

/// The embedded migrations of `backend` up to and including number `last`.
fn migrations_up_to(backend: Backend, last: i64) -> Migrator {
    let mut migrator = match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    let kept: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= last)
        .cloned()
        .collect();
    migrator.migrations = Cow::Owned(kept);
    migrator
}

/// Migration 0004 renamed `spend.day` to `spend.period` and split
/// `objects.held_for` (`<key>/<period>`) into `held_key` and `held_period`:
/// a key's spend and every object's hold read the same afterwards, and a
/// hold of no key, or of an unreadable row, still pays for nothing.
pub async fn naming_columns_for_what_they_hold_keeps_spend_and_holds(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    sqlx::any::install_default_drivers();
    if backend == Backend::Sqlite {
        sqlx::Any::create_database(&database.url).await.unwrap();
    }
    let pool = sqlx::AnyPool::connect(&database.url).await.unwrap();
    migrations_up_to(backend, 3).run(&pool).await.unwrap();

    let now = Utc::now().timestamp_millis();
    let sql = |text: &str| {
        let text = if backend == Backend::Postgres {
            text.replace('?', "$")
        } else {
            text.to_owned()
        };
        sqlx::AssertSqlSafe(text)
    };
    for (id, hours) in [("key_life", 1), ("key_daily", 48)] {
        sqlx::query(sql(
            "INSERT INTO keys (id, token_hash, label, vendor, daily_cap_micros, allowed_endpoints, metadata, created_at, expires_at)
             VALUES (?1, ?2, 'temporal-m-charge', 'stripe', 10000000, '[]', '{}', ?3, ?4)",
        ))
        .bind(id)
        .bind(format!("hash-{id}"))
        .bind(now)
        .bind(now + hours * 3_600_000)
        .execute(&pool)
        .await
        .unwrap();
    }
    let today = SpendPeriod::day_of(Utc::now()).to_string();
    for (key, day, micros) in [
        ("key_life", "life", 2_500_000_i64),
        ("key_daily", today.as_str(), 4_000_000),
    ] {
        sqlx::query(sql(
            "INSERT INTO spend (key_id, day, micros) VALUES (?1, ?2, ?3)",
        ))
        .bind(key)
        .bind(day)
        .bind(micros)
        .execute(&pool)
        .await
        .unwrap();
    }
    let held_daily = format!("key_daily/{today}");
    for (object, held_for) in [
        ("pi_life", Some("key_life/life")),
        ("pi_daily", Some(held_daily.as_str())),
        ("pi_none", None),
        ("pi_odd", Some("no-slash")),
    ] {
        sqlx::query(sql(
            "INSERT INTO objects (vendor, object_id, label, amount, currency, held_micros, created_at, held_for)
             VALUES ('stripe', ?1, 'temporal-m-charge', 2500, 'usd', 2500000, ?2, ?3)",
        ))
        .bind(object)
        .bind(now)
        .bind(held_for)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let store = Store::connect(&database.url, Integrity::Check)
        .await
        .unwrap();
    let key = |id: &'static str| {
        let store = store.clone();
        async move { store.key(id).await.unwrap().unwrap() }
    };
    let (life, daily) = (key("key_life").await, key("key_daily").await);
    assert_eq!(store.spent(&life, Utc::now()).await.unwrap(), 2_500_000);
    assert_eq!(store.spent(&daily, Utc::now()).await.unwrap(), 4_000_000);

    let held_in = |id: &'static str| {
        let store = store.clone();
        async move { store.object("stripe", id).await.unwrap().unwrap().held_in }
    };
    let row = |key_id: &str, period: SpendPeriod| SpendRow {
        key_id: key_id.to_owned(),
        period,
    };
    let life_row = row("key_life", life.spend_period(Utc::now()));
    let daily_row = row("key_daily", daily.spend_period(Utc::now()));
    assert_eq!(life_row.period.as_str(), "life");
    assert_eq!(held_in("pi_life").await, Some(life_row.clone()));
    assert_eq!(held_in("pi_daily").await, Some(daily_row));
    assert_eq!(held_in("pi_none").await, None);
    assert_eq!(
        held_in("pi_odd").await,
        None,
        "an unreadable hold pays for nothing"
    );
    let object = store.object("stripe", "pi_life").await.unwrap().unwrap();
    assert_eq!(object.held_against(&life_row), 2_500_000);
}

/// Migrations 0009 and 0010 (allowed_metadata, roles): a key the admin
/// issued before them opens with no role and no metadata reach, keeps its
/// spend, and reserves against its own cap alone.
pub async fn keys_issued_before_roles_keep_working(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    sqlx::any::install_default_drivers();
    if backend == Backend::Sqlite {
        sqlx::Any::create_database(&database.url).await.unwrap();
    }
    let pool = sqlx::AnyPool::connect(&database.url).await.unwrap();
    migrations_up_to(backend, 8).run(&pool).await.unwrap();
    let now = Utc::now().timestamp_millis();
    let insert = if backend == Backend::Postgres {
        "INSERT INTO keys (id, token_hash, label, vendor, daily_cap_micros, allowed_endpoints, metadata, created_at, expires_at)
         VALUES ('key_old', 'hash-old', 'temporal-old-charge', 'stripe', 3000000, '[\"POST /v1/payment_intents\"]', '{}', $1, $2)"
    } else {
        "INSERT INTO keys (id, token_hash, label, vendor, daily_cap_micros, allowed_endpoints, metadata, created_at, expires_at)
         VALUES ('key_old', 'hash-old', 'temporal-old-charge', 'stripe', 3000000, '[\"POST /v1/payment_intents\"]', '{}', ?1, ?2)"
    };
    sqlx::query(sqlx::AssertSqlSafe(insert))
        .bind(now)
        .bind(now + 3_600_000)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let store = Store::connect(&database.url, Integrity::Check)
        .await
        .unwrap();
    let (key, _) = store
        .key_by_token_hash("hash-old", None)
        .await
        .unwrap()
        .expect("the old key by its token");
    assert_eq!((key.role.clone(), key.issued_by.clone()), (None, None));
    assert!(key.allowed_metadata.is_empty());
    let period = key.spend_period(Utc::now());
    let first = store
        .reserve(
            &key,
            2_000_000,
            &period,
            &SpendPeriod::day_of(Utc::now()),
            Utc::now(),
            Vec::new(),
        )
        .await
        .unwrap();
    assert!(first.is_some(), "reserves against its own cap");
    let second = store
        .reserve(
            &key,
            2_000_000,
            &period,
            &SpendPeriod::day_of(Utc::now()),
            Utc::now(),
            Vec::new(),
        )
        .await
        .unwrap();
    assert!(second.is_none(), "and its cap still holds");
}

/// Migration 0013 starts the record of PaymentIntents' metadata pairs: a
/// database that served requests before it (whose creates the record does
/// not hold) has the time of the migration noted as unrecorded, so that a
/// lookup over it is not called whole; a new database has nothing before.
pub async fn the_record_starts_with_the_migration_on_a_database_that_served(backend: Backend) {
    for served in [false, true] {
        let database = TestDatabase::create(backend).await;
        sqlx::any::install_default_drivers();
        if backend == Backend::Sqlite {
            sqlx::Any::create_database(&database.url).await.unwrap();
        }
        let pool = sqlx::AnyPool::connect(&database.url).await.unwrap();
        migrations_up_to(backend, 12).run(&pool).await.unwrap();
        if served {
            let insert = "INSERT INTO audit (at, key_id, label, vendor, method, path, status, code, reserved_micros, latency_ms, requests)
                 VALUES (1, NULL, 'temporal-m-charge', 'stripe', 'POST', '/v1/payment_intents', 200, NULL, 0, 0, 1)";
            sqlx::query(sqlx::AssertSqlSafe(insert))
                .execute(&pool)
                .await
                .unwrap();
        }
        let before = Utc::now().timestamp_millis();
        migrations_up_to(backend, 13).run(&pool).await.unwrap();
        let noted: Vec<i64> = sqlx::query_scalar("SELECT created_at FROM unrecorded_creates")
            .fetch_all(&pool)
            .await
            .unwrap();
        if served {
            assert_eq!(noted.len(), 1, "{noted:?}");
            assert!(noted[0] >= before - 1000, "{noted:?} against {before}");
        } else {
            assert!(noted.is_empty(), "{noted:?}");
        }
        pool.close().await;
    }
}
