//! `OutboxStore` on SQLite.

use crate::{SqliteStore, conn, map_err};
use async_trait::async_trait;
use sesame_core::{StoreError, Tx};
use sesame_events::{Envelope, OutboxMessage, OutboxStore};
use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn enqueue(&self, tx: &mut dyn Tx, env: &Envelope) -> Result<(), StoreError> {
        let payload =
            serde_json::to_string(env).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        sqlx::query("INSERT INTO outbox (id, topic, payload, created_at) VALUES (?, ?, ?, ?)")
            .bind(env.id)
            .bind(&env.topic)
            .bind(payload)
            .bind(env.time)
            .execute(conn(tx)?)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn pending(&self, limit: i64) -> Result<Vec<OutboxMessage>, StoreError> {
        let rows = sqlx::query("SELECT id, topic, payload, attempts FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let payload: String = row.try_get("payload")?;
                Ok(OutboxMessage {
                    id: row.try_get("id")?,
                    topic: row.try_get("topic")?,
                    payload: serde_json::from_str(&payload)
                        .map_err(|e| sqlx::Error::Decode(e.into()))?,
                    attempts: row.try_get("attempts")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(map_err)
    }

    async fn mark_published(&self, ids: &[Uuid], at: OffsetDateTime) -> Result<(), StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        for id in ids {
            sqlx::query("UPDATE outbox SET published_at = ?, attempts = attempts + 1 WHERE id = ?")
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn mark_failed(&self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
