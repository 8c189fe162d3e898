//! Every Sesame store trait on an embedded SQLite file (WAL mode).

mod codes;
mod credentials;
mod identity;
mod keys;
mod outbox;
mod rotation;
mod sessions;

use async_trait::async_trait;
use sesame_core::{Database, StoreError, Tx};
use sesame_credentials::LOGIN_IDENTIFIER_UNIQUE;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqliteConnection, SqlitePool, Transaction};
use std::any::Any;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// The migrations, in order; the stems match the PostgreSQL backend's.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "identity",
        include_str!("../migrations/0001_identity.sql"),
    ),
    (
        2,
        "credentials",
        include_str!("../migrations/0002_credentials.sql"),
    ),
    (3, "outbox", include_str!("../migrations/0003_outbox.sql")),
    (
        4,
        "verification_codes",
        include_str!("../migrations/0004_verification_codes.sql"),
    ),
];

/// The SQLite backend: one pool, every store trait.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// SQLite has one writer at a time: writes go through this one-connection
    /// pool and queue for it in order, instead of in SQLite's busy handler,
    /// which sleeps and retries.
    writer: SqlitePool,
    /// Refresh-token rotations, committed in groups.
    rotator: rotation::Rotator,
}

/// A SQLite write transaction (`BEGIN IMMEDIATE`) on the writer connection.
struct SqliteTx {
    tx: Transaction<'static, sqlx::Sqlite>,
}

impl Tx for SqliteTx {}

/// The connection inside a transaction begun by this backend.
fn conn(tx: &mut dyn Tx) -> Result<&mut SqliteConnection, StoreError> {
    let any: &mut dyn Any = tx;
    any.downcast_mut::<SqliteTx>()
        .map(|t| &mut *t.tx)
        .ok_or_else(|| StoreError::Unavailable("transaction belongs to another backend".into()))
}

/// Maps a driver error to a store error without leaking driver text to clients.
pub(crate) fn map_err(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            let msg = db.message();
            let constraint = if msg.contains("login_methods.login_type") {
                LOGIN_IDENTIFIER_UNIQUE.to_owned()
            } else {
                db.constraint()
                    .map_or_else(|| msg.to_owned(), str::to_owned)
            };
            StoreError::Conflict { constraint }
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::Conflict {
            constraint: "foreign_key".into(),
        },
        other => StoreError::Unavailable(other.to_string()),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, in WAL mode, and
    /// applies the migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new().filename(path);
        Self::connect(options).await
    }

    /// Opens a database by URL (`sqlite://path` or `sqlite::memory:`).
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url).map_err(map_err)?;
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", "-16000")
            .pragma("temp_store", "memory");
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let pool = SqlitePoolOptions::new()
            .max_connections((cores * 4).max(8) as u32)
            .min_connections(1)
            // A ping per checkout doubles the round trips of short queries; a
            // local file has no connection to go stale.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(map_err)?;
        let rotator = rotation::Rotator::spawn(writer.clone());
        let store = Self {
            pool,
            writer,
            rotator,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations; refuses a database migrated by a newer binary.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrations = MIGRATIONS
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    (*name).into(),
                    MigrationType::Simple,
                    sqlx::SqlSafeStr::into_sql_str(*sql),
                    false,
                )
            })
            .collect();
        Migrator::with_migrations(migrations)
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))
    }

    /// The pool, for tests and tools that inspect the database directly.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

#[async_trait]
impl Database for SqliteStore {
    async fn begin(&self) -> Result<Box<dyn Tx>, StoreError> {
        // IMMEDIATE takes SQLite's write lock up front, so another process on the
        // same file makes this wait on the busy timeout instead of failing to
        // upgrade a read lock.
        let tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        Ok(Box::new(SqliteTx { tx }))
    }

    async fn commit(&self, tx: Box<dyn Tx>) -> Result<(), StoreError> {
        let any: Box<dyn Any> = tx;
        let tx = any.downcast::<SqliteTx>().map_err(|_| {
            StoreError::Unavailable("transaction belongs to another backend".into())
        })?;
        tx.tx.commit().await.map_err(map_err)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(map_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order() {
        for (i, (version, _, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, i as i64 + 1);
        }
    }

    #[tokio::test]
    async fn opens_in_wal_mode_with_migrations_applied() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .fetch_all(store.pool())
                .await
                .unwrap();
        for t in [
            "users",
            "principals",
            "login_methods",
            "passwords",
            "sessions",
            "refresh_tokens",
            "outbox",
        ] {
            assert!(tables.iter().any(|n| n == t), "{t} missing from {tables:?}");
        }
        // Re-opening applies nothing twice.
        drop(store);
        SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
    }

    #[tokio::test]
    async fn rotating_a_used_refresh_token_writes_nothing() {
        use sesame_core::{Database, PrincipalId, SessionId};
        use sesame_credentials::{Principal, PrincipalStore, RefreshToken, Session, SessionStore};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
        let now = time::OffsetDateTime::now_utc();
        let principal = Principal::new(PrincipalId::new(), "user", now);
        let session = Session {
            id: SessionId::new(),
            principal_id: principal.id,
            principal_kind: "user".into(),
            aal: "aal1".into(),
            amr: vec!["pwd".into()],
            ip: None,
            user_agent: None,
            created_at: now,
            last_seen_at: now,
            expires_at: now + time::Duration::days(1),
            revoked_at: None,
            revoke_reason: None,
        };
        let token = |hash: u8, parent: Option<uuid::Uuid>| RefreshToken {
            id: uuid::Uuid::now_v7(),
            session_id: session.id,
            token_hash: vec![hash; 32],
            parent_id: parent,
            used_at: None,
            created_at: now,
            expires_at: session.expires_at,
        };
        let first = token(1, None);
        let mut tx = store.begin().await.unwrap();
        store
            .insert_principal(tx.as_mut(), &principal)
            .await
            .unwrap();
        store.insert_session(tx.as_mut(), &session).await.unwrap();
        store
            .insert_refresh_token(tx.as_mut(), &first)
            .await
            .unwrap();
        store.commit(tx).await.unwrap();

        let second = token(2, Some(first.id));
        assert!(
            store
                .rotate_refresh_token(first.id, &second, now)
                .await
                .unwrap()
        );
        let third = token(3, Some(first.id));
        assert!(
            !store
                .rotate_refresh_token(first.id, &third, now)
                .await
                .unwrap()
        );
        assert!(store.find_refresh_token(&[3; 32]).await.unwrap().is_none());
        let (found, in_session) = store.find_refresh_token(&[2; 32]).await.unwrap().unwrap();
        assert_eq!(found.parent_id, Some(first.id));
        assert_eq!(in_session.id, session.id);
        let (used, _) = store.find_refresh_token(&[1; 32]).await.unwrap().unwrap();
        assert!(used.used_at.is_some());
        // A failed statement leaves the writer usable.
        assert!(
            store
                .rotate_refresh_token(second.id, &token(2, None), now)
                .await
                .is_err()
        );
        let fourth = token(4, Some(second.id));
        assert!(
            store
                .rotate_refresh_token(second.id, &fourth, now)
                .await
                .unwrap()
        );
        // Many rotations at once are committed in groups; of twenty that use the
        // same token exactly one wins, and independent ones all succeed.
        let store = std::sync::Arc::new(store);
        let racers: Vec<_> = (0..20u8)
            .map(|i| {
                let store = store.clone();
                let next = token(100 + i, Some(fourth.id));
                tokio::spawn(async move {
                    store
                        .rotate_refresh_token(fourth.id, &next, now)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut wins = 0;
        for r in racers {
            wins += usize::from(r.await.unwrap());
        }
        assert_eq!(wins, 1);
        let independent: Vec<_> = (0..20u8)
            .map(|i| {
                let store = store.clone();
                let chain = token(200 + i, None);
                let next = token(220 + i, Some(chain.id));
                tokio::spawn(async move {
                    let mut tx = store.begin().await.unwrap();
                    store
                        .insert_refresh_token(tx.as_mut(), &chain)
                        .await
                        .unwrap();
                    store.commit(tx).await.unwrap();
                    store
                        .rotate_refresh_token(chain.id, &next, now)
                        .await
                        .unwrap()
                })
            })
            .collect();
        for r in independent {
            assert!(r.await.unwrap());
        }
    }
}
