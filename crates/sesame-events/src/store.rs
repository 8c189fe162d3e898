//! The outbox table's trait.

use crate::Envelope;
use async_trait::async_trait;
use sesame_core::{StoreError, Tx};
use time::OffsetDateTime;
use uuid::Uuid;

/// An undelivered outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    /// Same as the envelope id.
    pub id: Uuid,
    /// The topic.
    pub topic: String,
    /// The envelope as it will be sent.
    pub payload: serde_json::Value,
    /// Delivery attempts so far.
    pub attempts: i64,
}

/// Stores events until they are delivered.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Writes an event in the caller's transaction.
    async fn enqueue(&self, tx: &mut dyn Tx, envelope: &Envelope) -> Result<(), StoreError>;
    /// The oldest undelivered events (on a shared database, leased to the
    /// caller for a while). This and the marks below commit on their own.
    async fn pending(&self, limit: i64) -> Result<Vec<OutboxMessage>, StoreError>;
    /// Marks events delivered.
    async fn mark_published(&self, ids: &[Uuid], at: OffsetDateTime) -> Result<(), StoreError>;
    /// Counts a failed delivery attempt.
    async fn mark_failed(&self, id: Uuid) -> Result<(), StoreError>;
}
