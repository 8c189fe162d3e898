//! The transaction seam. Stores take `&mut dyn Tx` on every write so that a service
//! can put a change, its audit row and its outbox event in one commit, whatever the
//! backend. Each backend recognises its own transaction type by downcasting.

use crate::StoreError;
use async_trait::async_trait;
use std::any::Any;

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
    /// The runtime of a thread of its own that drives the one writer
    /// connection, where a unit of work is best run so that its turn on the
    /// writer is not spent waiting behind other requests' work (SQLite);
    /// `None` where writers are many (PostgreSQL).
    fn writer_runtime(&self) -> Option<tokio::runtime::Handle> {
        None
    }
}
