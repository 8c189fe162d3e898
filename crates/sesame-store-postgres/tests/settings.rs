//! Connection settings and schema versions against a real PostgreSQL
//! (`SESAME_TEST_POSTGRES_URL`); skipped with a message outside CI when it is
//! absent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code fails loudly

use sesame_core::Database;
use sesame_store_postgres::{Domain, PgSettings, PgStore, PgTarget, SchemaState};
use sesame_testdb::{Postgres, postgres_available};

#[tokio::test]
async fn pool_sizes_and_the_statement_timeout_apply_to_every_connection() {
    if !postgres_available().await {
        return;
    }
    let db = Postgres::create().await;
    let settings = PgSettings {
        max_connections: 3,
        min_connections: 0,
        statement_timeout_ms: 200,
        acquire_timeout_ms: 1_000,
    };
    let store = PgStore::connect(&PgTarget::Single(db.url()), &settings)
        .await
        .unwrap();
    let pool = store.credentials_pool();
    assert_eq!(pool.options().get_max_connections(), 3);
    let shown: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(shown, "200ms");
    let err = sqlx::query("SELECT pg_sleep(2)")
        .execute(pool)
        .await
        .unwrap_err();
    let code = err
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("57014"), "{err}"); // query_canceled
    // The connection that was cancelled is still good.
    store.ping().await.unwrap();
    pool.close().await;
    db.drop_now().await;
}

#[tokio::test]
async fn schema_versions_are_compared_with_the_binary() {
    if !postgres_available().await {
        return;
    }
    let db = Postgres::create().await;
    let store = PgStore::connect(&PgTarget::Single(db.url()), &PgSettings::default())
        .await
        .unwrap();
    for domain in Domain::ALL {
        assert_eq!(
            store.schema_state(domain).await.unwrap(),
            SchemaState::Behind { applied: 0 }
        );
    }
    let err = store.require_current().await.unwrap_err().to_string();
    assert!(err.contains("run `sesame migrate`"), "{err}");
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    for domain in Domain::ALL {
        assert_eq!(
            store.schema_state(domain).await.unwrap(),
            SchemaState::Current
        );
    }
    store.require_current().await.unwrap();
    sqlx::query(
        "INSERT INTO credentials._sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (42, 'from the future', TRUE, '\\x00', 0)",
    )
    .execute(store.credentials_pool())
    .await
    .unwrap();
    assert!(matches!(
        store.schema_state(Domain::Credentials).await.unwrap(),
        SchemaState::Newer { applied: 42, .. }
    ));
    let err = store.migrate().await.unwrap_err().to_string();
    assert!(err.contains("newer than this binary"), "{err}");
    store.credentials_pool().close().await;
    db.drop_now().await;
}
