//! `OutboxStore` on PostgreSQL. Every instance runs a relay; a lease
//! (`claimed_until`) taken with `SKIP LOCKED` hands each pending row to one of
//! them at a time, and an instance that dies mid-delivery loses its lease after
//! [`LEASE`], so the row is delivered again (at least once).

use crate::{PgStore, conn, map_err};
use async_trait::async_trait;
use sesame_core::{StoreError, Tx};
use sesame_events::{Envelope, OutboxMessage, OutboxStore};
use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

/// How long a relay owns the rows it claimed.
const LEASE: &str = "30 seconds";

#[async_trait]
impl OutboxStore for PgStore {
    async fn enqueue(&self, tx: &mut dyn Tx, env: &Envelope) -> Result<(), StoreError> {
        let payload =
            serde_json::to_value(env).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        sqlx::query(
            "INSERT INTO credentials.outbox (id, topic, payload, created_at) VALUES ($1, $2, $3, $4)",
        )
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
        let sql = format!(
            "UPDATE credentials.outbox SET claimed_until = now() + interval '{LEASE}'
             WHERE id IN (
                 SELECT id FROM credentials.outbox
                 WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < now())
                 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
             )
             RETURNING id, topic, payload, attempts"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&self.credentials)
            .await
            .map_err(map_err)?;
        let mut messages = rows
            .iter()
            .map(|row| {
                Ok(OutboxMessage {
                    id: row.try_get("id")?,
                    topic: row.try_get("topic")?,
                    payload: row.try_get("payload")?,
                    attempts: row.try_get("attempts")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(map_err)?;
        messages.sort_by_key(|m| m.id);
        Ok(messages)
    }

    async fn mark_published(&self, ids: &[Uuid], at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE credentials.outbox SET published_at = $1, attempts = attempts + 1, claimed_until = NULL
             WHERE id = ANY($2)",
        )
        .bind(at)
        .bind(ids)
        .execute(&self.credentials)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn mark_failed(&self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE credentials.outbox SET attempts = attempts + 1, claimed_until = NULL WHERE id = $1",
        )
        .bind(id)
        .execute(&self.credentials)
        .await
        .map_err(map_err)?;
        Ok(())
    }
}
