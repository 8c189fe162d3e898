//! SQLite connections handed out in turn, first come first served.
//!
//! sqlx runs each SQLite connection on a thread of its own, and its pool
//! checks every connection given back with a round trip to that thread (and a
//! task spawned to make it). On the one writer connection, which every write
//! waits for, that trip was a large share of each write's turn. Here a
//! connection given back is ready at once: every command of a connection
//! queues on its thread in order, so a statement a cancelled caller left
//! running finishes before the next holder's first one starts, and a
//! transaction left open is rolled back the same way.

use futures_util::{FutureExt, StreamExt, future::BoxFuture, stream::BoxStream};
use sqlx::sqlite::{SqliteConnectOptions, SqliteQueryResult, SqliteRow, SqliteStatement};
use sqlx::{ConnectOptions, Either, Execute, Executor, SqlStr, Sqlite, SqliteConnection};
use sqlx_core::transaction::TransactionManager;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

type Manager = sqlx::sqlite::SqliteTransactionManager;

/// Up to `size` connections to one database file, each opened when first
/// needed.
#[derive(Clone)]
pub struct Connections(Arc<Inner>);

type Slot = Arc<Mutex<Option<SqliteConnection>>>;

struct Inner {
    options: SqliteConnectOptions,
    slots: Vec<Slot>,
    turns: Arc<Semaphore>,
    wait: Duration,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("size", &self.0.slots.len())
            .field("available", &self.0.turns.available_permits())
            .finish_non_exhaustive()
    }
}

impl Connections {
    /// Up to `size` connections with `options`, the first opened now (so a
    /// file that cannot be opened fails here); a caller waits at most `wait`
    /// for its turn.
    pub(crate) async fn open(
        options: &SqliteConnectOptions,
        size: usize,
        wait: Duration,
    ) -> Result<Self, sqlx::Error> {
        let first = options.connect().await?;
        let slots: Vec<Slot> = std::iter::once(Some(first))
            .chain(std::iter::repeat_with(|| None).take(size.max(1) - 1))
            .map(|conn| Arc::new(Mutex::new(conn)))
            .collect();
        Ok(Self(Arc::new(Inner {
            options: options.clone(),
            turns: Arc::new(Semaphore::new(slots.len())),
            slots,
            wait,
        })))
    }

    /// A connection of its own for the caller until the returned value drops.
    pub async fn acquire(&self) -> Result<Held, sqlx::Error> {
        let turn = tokio::time::timeout(self.0.wait, self.0.turns.clone().acquire_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        // A turn means a free slot: each holder of a turn holds one slot.
        let mut slot = loop {
            if let Some(slot) = self
                .0
                .slots
                .iter()
                .find_map(|s| s.clone().try_lock_owned().ok())
            {
                break slot;
            }
            tokio::task::yield_now().await;
        };
        if slot.is_none() {
            *slot = Some(self.0.options.connect().await?);
        }
        let conn =
            OwnedMutexGuard::try_map(slot, Option::as_mut).map_err(|_| sqlx::Error::PoolClosed)?;
        Ok(Held { conn, _turn: turn })
    }

    /// Refuses every later turn (`PoolClosed`); turns held end as they are given back.
    pub fn close(&self) {
        self.0.turns.close();
    }

    /// Whether [`Connections::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.0.turns.is_closed()
    }

    /// A transaction begun with `BEGIN`.
    pub async fn begin(&self) -> Result<HeldTx, sqlx::Error> {
        self.begin_with("BEGIN").await
    }

    /// A connection for a transaction whose `BEGIN` the caller sends with
    /// its first statement.
    pub async fn begin_lazily(&self) -> Result<LazyTx, sqlx::Error> {
        Ok(LazyTx {
            held: Some(self.acquire().await?),
            sent: false,
        })
    }

    /// A transaction begun with `statement` (`BEGIN IMMEDIATE`).
    pub async fn begin_with(&self, statement: &'static str) -> Result<HeldTx, sqlx::Error> {
        let mut held = self.acquire().await?;
        Manager::begin(&mut held, Some(SqlStr::from_static(statement))).await?;
        Ok(HeldTx { held, open: true })
    }
}

/// A transaction on a held connection whose `BEGIN` its owner sends with its
/// first statement. Dropped after a statement went but before
/// [`LazyTx::finished`], it is rolled back by a task that keeps the
/// connection, and the turn, until the rollback has run.
pub struct LazyTx {
    held: Option<Held>,
    sent: bool,
}

impl LazyTx {
    /// One without a connection, for a transaction whose statements run
    /// elsewhere: a statement for it fails as the pool closed.
    pub fn detached() -> Self {
        Self {
            held: None,
            sent: false,
        }
    }

    /// The connection, for a statement of the transaction (the first carries
    /// its `BEGIN`).
    pub fn conn(&mut self) -> Result<&mut SqliteConnection, sqlx::Error> {
        self.sent = true;
        self.held.as_deref_mut().ok_or(sqlx::Error::PoolClosed)
    }

    /// Whether a statement of the transaction went to the connection.
    pub fn begun(&self) -> bool {
        self.sent
    }

    /// Marks the transaction ended by a `COMMIT` its owner sent.
    pub fn finished(&mut self) {
        self.sent = false;
    }
}

impl Drop for LazyTx {
    fn drop(&mut self) {
        if !self.sent {
            return;
        }
        // Without a runtime the process is ending, and the connection with it.
        let (Some(mut held), Ok(runtime)) =
            (self.held.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            // Fails, harmlessly, when the `BEGIN` itself failed.
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *held).await;
        });
    }
}

/// A connection held by one caller; given back when dropped.
pub struct Held {
    conn: OwnedMappedMutexGuard<Option<SqliteConnection>, SqliteConnection>,
    // Dropped after the slot is unlocked.
    _turn: OwnedSemaphorePermit,
}

impl Deref for Held {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for Held {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

/// A transaction on a held connection: rolled back when dropped uncommitted
/// (the rollback queues on the connection's thread before anything the next
/// holder sends).
pub struct HeldTx {
    held: Held,
    open: bool,
}

impl HeldTx {
    /// Commits the transaction.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        Manager::commit(&mut self.held).await?;
        self.open = false;
        Ok(())
    }
}

impl Drop for HeldTx {
    fn drop(&mut self) {
        if self.open {
            Manager::start_rollback(&mut self.held);
        }
    }
}

impl Deref for HeldTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.held
    }
}

impl DerefMut for HeldTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.held
    }
}

impl<'c> Executor<'c> for &'_ Connections {
    type Database = Sqlite;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<SqliteQueryResult, SqliteRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        let pool = self.clone();
        async move {
            let results: Vec<_> = match pool.acquire().await {
                Ok(mut held) => held.fetch_many(query).collect().await,
                Err(e) => vec![Err(e)],
            };
            futures_util::stream::iter(results)
        }
        .flatten_stream()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<SqliteRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        let pool = self.clone();
        async move { pool.acquire().await?.fetch_optional(query).await }.boxed()
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [sqlx::sqlite::SqliteTypeInfo],
    ) -> BoxFuture<'e, Result<SqliteStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        let pool = self.clone();
        async move { pool.acquire().await?.prepare_with(sql, parameters).await }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;

    async fn open(dir: &tempfile::TempDir, size: usize, wait: Duration) -> Connections {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("p.db"))
            .create_if_missing(true);
        let pool = Connections::open(&options, size, wait).await.unwrap();
        sqlx::query("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        pool
    }

    async fn count(pool: &Connections) -> i64 {
        sqlx::query("SELECT count(*) FROM t")
            .fetch_one(pool)
            .await
            .unwrap()
            .get(0)
    }

    #[tokio::test]
    async fn a_transaction_dropped_uncommitted_is_rolled_back_before_the_next_holder() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open(&dir, 1, Duration::from_secs(5)).await;
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        drop(tx);
        // The same (only) connection: outside any transaction, nothing kept.
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count(&pool).await, 1);
    }

    #[tokio::test]
    async fn a_lazy_transaction_dropped_after_its_begin_is_rolled_back_before_the_next_holder() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open(&dir, 1, Duration::from_secs(5)).await;
        // Dropped before anything went: nothing to roll back.
        let tx = pool.begin_lazily().await.unwrap();
        assert!(!tx.begun());
        drop(tx);
        let mut tx = pool.begin_lazily().await.unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE; INSERT INTO t VALUES (1)")
            .execute(tx.conn().unwrap())
            .await
            .unwrap();
        drop(tx);
        // The same (only) connection, once the rollback ran: a `BEGIN` works,
        // and the first row is gone.
        let mut tx = pool.begin_lazily().await.unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE; INSERT INTO t VALUES (2); COMMIT")
            .execute(tx.conn().unwrap())
            .await
            .unwrap();
        tx.finished();
        drop(tx);
        let rows: Vec<i64> = sqlx::query_scalar("SELECT n FROM t")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(rows, [2]);
    }

    #[tokio::test]
    async fn a_turn_is_exclusive_and_waits_end_in_pool_timed_out() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open(&dir, 1, Duration::from_millis(50)).await;
        let held = pool.acquire().await.unwrap();
        let err = pool.acquire().await.err().unwrap();
        assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err:?}");
        drop(held);
        pool.acquire().await.unwrap();
    }

    #[tokio::test]
    async fn turns_are_taken_in_order_of_asking() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open(&dir, 1, Duration::from_secs(5)).await;
        let held = pool.acquire().await.unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for i in 0..5 {
            let (pool, order) = (pool.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let _held = pool.acquire().await.unwrap();
                order.lock().unwrap().push(i);
            }));
            // On this one-thread runtime, yielding runs the new task until it
            // waits for its turn: each asks before the next is spawned.
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for w in waiting {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_closed_pool_refuses_turns() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open(&dir, 2, Duration::from_secs(5)).await;
        pool.close();
        let err = sqlx::query("SELECT 1").execute(&pool).await.unwrap_err();
        assert!(matches!(err, sqlx::Error::PoolClosed), "{err:?}");
    }

    #[tokio::test]
    async fn connections_are_opened_when_first_needed() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open(&dir, 3, Duration::from_secs(5)).await;
        let opened = |pool: &Connections| {
            pool.0
                .slots
                .iter()
                .filter(|s| s.try_lock().is_ok_and(|c| c.is_some()))
                .count()
        };
        assert_eq!(opened(&pool), 1);
        count(&pool).await;
        assert_eq!(
            opened(&pool),
            1,
            "one caller at a time needs one connection"
        );
        let (a, b) = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());
        drop((a, b));
        assert_eq!(opened(&pool), 2);
    }

    #[tokio::test]
    async fn several_readers_hold_connections_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open(&dir, 3, Duration::from_millis(50)).await;
        let held: Vec<_> = [(); 3].iter().map(|_| pool.acquire()).collect();
        let mut all = Vec::new();
        for h in held {
            all.push(h.await.unwrap());
        }
        assert!(matches!(
            pool.acquire().await.err(),
            Some(sqlx::Error::PoolTimedOut)
        ));
    }
}
