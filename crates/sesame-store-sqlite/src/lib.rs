//! Every Sesame store trait on an embedded SQLite file (WAL mode).

mod backend;
mod checkpoint;
mod direct;
mod group;
mod import;
mod pool;
mod tx;

use async_trait::async_trait;
use sesame_core::{Database, Grouped, StoreError, Tx};
use sesame_credentials::LOGIN_IDENTIFIER_UNIQUE;
use sqlx::SqlitePool;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::any::Any;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use direct::DirectRow;
pub use pool::{Connections, Held, HeldTx, LazyTx};
pub use tx::Returned;
use tx::SqliteTx;

/// The migrations, in order. They build the tables and columns the PostgreSQL
/// backend's migrations build in its two schemas (the storage contract's
/// `both_backends_migrate_to_the_same_schema` checks it).
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
    (
        5,
        "login_attempts",
        include_str!("../migrations/0005_login_attempts.sql"),
    ),
    (
        6,
        "security_state",
        include_str!("../migrations/0006_security_state.sql"),
    ),
    (
        7,
        "password_history_seq",
        include_str!("../migrations/0007_password_history_seq.sql"),
    ),
    (8, "mfa", include_str!("../migrations/0008_mfa.sql")),
    (9, "access", include_str!("../migrations/0009_access.sql")),
    (
        10,
        "erasure",
        include_str!("../migrations/0010_erasure.sql"),
    ),
    (
        11,
        "deliveries",
        include_str!("../migrations/0011_deliveries.sql"),
    ),
    (12, "inbox", include_str!("../migrations/0012_inbox.sql")),
    (
        13,
        "webhook_rotation",
        include_str!("../migrations/0013_webhook_rotation.sql"),
    ),
    (
        14,
        "federation",
        include_str!("../migrations/0014_federation.sql"),
    ),
    (
        15,
        "live_sessions",
        include_str!("../migrations/0015_live_sessions.sql"),
    ),
];

/// The SQLite backend: every store trait.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Reads run on these, several at a time (WAL mode).
    readers: Connections,
    /// SQLite has one writer at a time: writes go through this one-connection
    /// pool and queue for it in order, instead of in SQLite's busy handler,
    /// which sleeps and retries.
    writer: Connections,
    /// Writes that stand alone (refresh-token rotations, WebAuthn
    /// ceremonies) and units of work (passkey sign-ins), committed in groups.
    grouper: group::Grouper,
    /// The thread that drives the writer: the group commits run there.
    _writer_thread: Arc<WriterThread>,
    /// That thread's own connection to the file ([`direct`]).
    direct: Arc<direct::Direct>,
    /// Connections for point reads run in place.
    point_reads: Arc<direct::PointReads>,
    /// A sqlx pool, opened when first used, for tests and tools that
    /// inspect the database directly.
    inspect: SqlitePool,
}

/// A thread of its own with a one-thread runtime, stopped when the last
/// clone of the store is dropped. A task that drives the one writer
/// connection from there is woken by the connection's thread at once,
/// instead of queueing behind other requests on the server's runtime while
/// it holds every other writer up.
#[derive(Debug)]
struct WriterThread {
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl WriterThread {
    /// The thread, and its runtime.
    fn start() -> Result<(Self, tokio::runtime::Handle), StoreError> {
        let failed = |e| StoreError::unavailable_from("could not start the writer thread", e);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(failed)?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("sesame-writer".into())
            .spawn(move || runtime.block_on(async move { stopped.await.ok() }))
            .map_err(failed)?;
        Ok((Self { _stop: stop }, handle))
    }
}

/// A transaction of another backend handed to this one.
pub(crate) fn foreign() -> StoreError {
    StoreError::unavailable("transaction belongs to another backend")
}

/// Maps a driver error to a store error without leaking driver text to
/// clients. SQLite names a violated unique index by its columns in the
/// message, not by its name.
pub(crate) fn map_err(err: sqlx::Error) -> StoreError {
    sesame_store_sql::store_error(err, |db| {
        db.constraint()
            .map_or_else(|| unique_name(db.message()), str::to_owned)
    })
}

/// The name a violated unique index goes by, from SQLite's message.
pub(crate) fn unique_name(message: &str) -> String {
    if message.contains("login_methods.login_type") {
        LOGIN_IDENTIFIER_UNIQUE.to_owned()
    } else {
        message.to_owned()
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
            .pragma("temp_store", "memory")
            // A thread of the store's own checkpoints ([`checkpoint`]).
            .pragma("wal_autocheckpoint", "0");
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let wait = Duration::from_secs(30);
        let readers = Connections::open(&options, (cores * 4).max(8), wait)
            .await
            .map_err(map_err)?;
        let writer = Connections::open(&options, 1, wait)
            .await
            .map_err(map_err)?;
        let (writer_thread, runtime) = WriterThread::start()?;
        let direct = Arc::new(direct::Direct::open(options.get_filename())?);
        let point_reads = Arc::new(direct::PointReads::new(options.get_filename()));
        let grouper = group::Grouper::spawn(writer.clone(), direct.clone(), &runtime);
        let inspect = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_lazy_with(options);
        let store = Self {
            readers,
            writer,
            grouper,
            _writer_thread: Arc::new(writer_thread),
            direct,
            point_reads,
            inspect,
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
        let mut conn = self.writer.acquire().await.map_err(map_err)?;
        Migrator::with_migrations(migrations)
            .run(&mut *conn)
            .await
            .map_err(|e| StoreError::unavailable_from("migration failed", e))
    }

    /// Tunes the writer connection for a bulk load: a large page cache, and
    /// checkpoints every ~400 MB of log instead of every 4 MB, so that pages
    /// dirtied by many batches are copied into the database once.
    pub async fn prepare_bulk_load(&self) -> Result<(), StoreError> {
        self.direct.pause_checkpoints(true);
        self.on_writer(&[
            "PRAGMA cache_size = -262144",
            "PRAGMA wal_autocheckpoint = 100000",
        ])
        .await
    }

    /// Ends a bulk load: copies the log into the database and truncates it.
    pub async fn finish_bulk_load(&self) -> Result<(), StoreError> {
        self.on_writer(&[
            "PRAGMA wal_checkpoint(TRUNCATE)",
            "PRAGMA wal_autocheckpoint = 0",
        ])
        .await?;
        self.direct.pause_checkpoints(false);
        Ok(())
    }

    /// Runs `statements` in order on sqlx's writer connection.
    async fn on_writer(&self, statements: &[&'static str]) -> Result<(), StoreError> {
        for statement in statements {
            sqlx::query(*statement)
                .execute(&self.writer)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    /// Closes the store: every later statement fails as unavailable.
    pub fn close(&self) {
        self.readers.close();
        self.writer.close();
    }

    /// A pool on the same file, for tests and tools that inspect the database
    /// directly.
    pub fn pool(&self) -> &SqlitePool {
        &self.inspect
    }
}

#[async_trait]
impl Database for SqliteStore {
    async fn begin(&self) -> Result<Box<dyn Tx>, StoreError> {
        // The transaction's `BEGIN IMMEDIATE` goes with its first statement. It
        // takes SQLite's write lock before that statement runs, so another
        // process on the same file makes it wait on the busy timeout instead
        // of failing to upgrade a read lock.
        // In a group, which holds the writer's turn, its statements run in
        // place on the writer's thread.
        if group::in_group_of(&self.direct) {
            return Ok(Box::new(SqliteTx {
                conn: LazyTx::detached(),
                held: Vec::new(),
                direct: Some(self.direct.clone()),
                direct_open: false,
            }));
        }
        let conn = self.writer.begin_lazily().await.map_err(map_err)?;
        Ok(Box::new(SqliteTx {
            conn,
            held: Vec::new(),
            direct: None,
            direct_open: false,
        }))
    }

    async fn commit(&self, tx: Box<dyn Tx>) -> Result<(), StoreError> {
        let any: Box<dyn Any> = tx;
        let tx = any.downcast::<SqliteTx>().map_err(|_| foreign())?;
        tx.commit().await
    }

    fn grouped(&self, work: Grouped) -> Result<(), Grouped> {
        self.grouper.work(work);
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.readers)
            .await
            .map(|_| ())
            .map_err(map_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sesame_store_sql::Later;

    #[test]
    fn migrations_are_numbered_in_order() {
        for (i, (version, _, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, i as i64 + 1);
        }
    }

    /// Queues `work` in a group; its answer once the group's commit is
    /// known, none if it panicked.
    async fn grouped<T: Send + 'static>(
        store: &SqliteStore,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Option<(T, Result<(), StoreError>)> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let unit: Grouped = Box::pin(async move {
            let done = work.await;
            let finish: sesame_core::Finish = Box::new(move |committed| {
                let _ = answer.send((done, committed));
            });
            finish
        });
        assert!(store.grouped(unit).is_ok(), "queued");
        answered.await.ok()
    }

    #[tokio::test]
    async fn units_of_work_run_on_the_writer_thread_which_ends_with_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
        let (name, committed) = grouped(&store, async {
            std::thread::current().name().map(str::to_owned)
        })
        .await
        .unwrap();
        assert_eq!(name.as_deref(), Some("sesame-writer"));
        committed.unwrap();
        // A unit that never ends is dropped when the thread ends with the
        // store.
        let (parked, dropped) = tokio::sync::oneshot::channel::<()>();
        let unit: Grouped = Box::pin(async move {
            let _parked = parked;
            std::future::pending::<sesame_core::Finish>().await
        });
        assert!(store.grouped(unit).is_ok());
        drop(store);
        assert!(dropped.await.is_err());
    }

    async fn outbox_topics(store: &SqliteStore) -> Vec<String> {
        sqlx::query_scalar("SELECT topic FROM outbox ORDER BY topic")
            .fetch_all(store.pool())
            .await
            .unwrap()
    }

    fn event(topic: &str) -> Later {
        Later::new("INSERT INTO outbox (id, topic, payload, created_at) VALUES ($1, $2, '{}', $3)")
            .arg(uuid::Uuid::now_v7())
            .arg(topic)
            .arg(time::OffsetDateTime::UNIX_EPOCH)
    }

    #[tokio::test]
    async fn point_reads_run_in_place_see_what_was_committed_and_end_with_the_store() {
        use sesame_store_sql::{Columns, SqlBackend};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
        let read = || Later::new("SELECT topic FROM outbox WHERE topic = $1").arg("a");
        assert!(store.read_one(read()).await.unwrap().is_none());
        let mut tx = store.begin().await.unwrap();
        SqliteStore::later(tx.as_mut(), event("a")).await.unwrap();
        store.commit(tx).await.unwrap();
        let row = store.read_one(read()).await.unwrap().unwrap();
        assert!(matches!(row, Returned::Direct(_)));
        assert_eq!(row.text("topic").unwrap(), "a");
        // Closed, the store refuses them as it refuses every statement.
        store.close();
        assert!(matches!(
            store.read_one(read()).await,
            Err(StoreError::Unavailable { .. })
        ));
    }

    #[tokio::test]
    async fn a_unit_of_works_transactions_commit_with_its_group_and_roll_back_alone() {
        use sesame_store_sql::SqlBackend;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
        let in_group = store.clone();
        let ((), committed) = grouped(&store, async move {
            let store = in_group;
            // Held, then run, then released: all in place.
            let mut tx = store.begin().await.unwrap();
            SqliteStore::later(tx.as_mut(), event("a")).await.unwrap();
            let ran = SqliteStore::run(tx.as_mut(), event("b")).await.unwrap();
            assert_eq!(ran.changed, 1);
            let tx_ref = SqliteTx::of(tx.as_mut()).unwrap();
            assert!(tx_ref.direct.is_some() && tx_ref.direct_open);
            store.commit(tx).await.unwrap();
            // Dropped after a statement: only its own writes are undone.
            let mut tx = store.begin().await.unwrap();
            SqliteStore::run(tx.as_mut(), event("c")).await.unwrap();
            drop(tx);
            // A sqlx statement cannot join, sent first or after others.
            let mut tx = store.begin().await.unwrap();
            assert!(SqliteStore::conn(tx.as_mut()).await.is_err());
            SqliteStore::later(tx.as_mut(), event("d")).await.unwrap();
            assert!(SqliteStore::conn(tx.as_mut()).await.is_err());
            store.commit(tx).await.unwrap();
            // The group holds the writer: a write of its own would wait for
            // the group, and is refused.
            assert!(store.grouper.write_one(event("x")).await.is_err());
        })
        .await
        .unwrap();
        committed.unwrap();
        assert_eq!(outbox_topics(&store).await, ["a", "b", "d"]);
        // Outside a group, a transaction uses sqlx's connection.
        let mut tx = store.begin().await.unwrap();
        assert!(SqliteTx::of(tx.as_mut()).unwrap().direct.is_none());
        SqliteStore::run(tx.as_mut(), event("e")).await.unwrap();
        store.commit(tx).await.unwrap();
        assert_eq!(outbox_topics(&store).await, ["a", "b", "d", "e"]);
    }

    #[tokio::test]
    async fn units_queued_together_commit_together_and_one_that_fails_fails_alone() {
        use sesame_store_sql::SqlBackend;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
        // The first unit holds its group open until the others are queued.
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let first = store.clone();
        let first = grouped(&store, async move {
            let mut tx = first.begin().await.unwrap();
            SqliteStore::run(tx.as_mut(), event("a")).await.unwrap();
            released.await.unwrap();
            first.commit(tx).await.unwrap();
        });
        let panics = store.clone();
        let panics = grouped(&store, async move {
            let mut tx = panics.begin().await.unwrap();
            SqliteStore::run(tx.as_mut(), event("p")).await.unwrap();
            panic!("a unit of work that panics");
        });
        let statements = store.grouper.write(vec![event("s")]);
        let broken = Later::new("INSERT INTO no_such_table VALUES (1)");
        let failing = store.grouper.write(vec![event("t"), broken]);
        let last = store.clone();
        let last = grouped(&store, async move {
            let mut tx = last.begin().await.unwrap();
            SqliteStore::run(tx.as_mut(), event("z")).await.unwrap();
            last.commit(tx).await.unwrap();
        });
        let released = async {
            tokio::task::yield_now().await;
            release.send(()).unwrap();
        };
        let (first, panicked, statements, failing, last, ()) =
            tokio::join!(first, panics, statements, failing, last, released);
        first.unwrap().1.unwrap();
        // Its caller's answer went with the panic.
        assert!(panicked.is_none());
        assert_eq!(statements.unwrap().len(), 1);
        assert!(failing.is_err());
        last.unwrap().1.unwrap();
        assert_eq!(outbox_topics(&store).await, ["a", "s", "z"]);
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
}
