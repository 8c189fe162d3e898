//! The transaction seam. Stores take `&mut dyn Tx` on every write so that a service
//! can put a change, its audit row and its outbox event in one commit, whatever the
//! backend. Each backend recognises its own transaction type by downcasting.

use crate::StoreError;
use async_trait::async_trait;
use std::any::Any;
use std::future::Future;
use std::pin::Pin;

/// How a grouped unit of work ends, told whether its group's commit held.
pub type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A unit of work that begins and commits its own transactions, for
/// [`Database::grouped`]; run to its end, it answers how it finishes.
pub type Grouped = Pin<Box<dyn Future<Output = Finish> + Send>>;

/// An open transaction of some backend.
pub trait Tx: Any + Send {}

/// Opens and commits transactions; dropping an uncommitted one rolls it back.
#[async_trait]
pub trait Database: Send + Sync + 'static {
    /// Starts a write transaction.
    async fn begin(&self) -> Result<Box<dyn Tx>, StoreError>;
    /// Commits a transaction started by this database.
    async fn commit(&self, tx: Box<dyn Tx>) -> Result<(), StoreError>;
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Queues `work` to run where the one writer is driven, with other
    /// writes queued meanwhile in one transaction: its commits become
    /// savepoints released into that transaction, and its [`Finish`] is
    /// called once the group's commit is known (SQLite). Where writers are
    /// many (PostgreSQL) the work is handed back to run in place.
    fn grouped(&self, work: Grouped) -> Result<(), Grouped> {
        Err(work)
    }
}
