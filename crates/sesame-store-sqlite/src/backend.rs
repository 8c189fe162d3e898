//! What SQLite does differently from the shared stores of `sesame-store-sql`:
//! reads on the pool and writes queued for the one writer connection, no row
//! locks (a write transaction already holds the database's only write lock),
//! refresh-token rotations committed in groups ([`crate::rotation`]), one relay
//! per file (no outbox lease), and multi-row `VALUES` for bulk inserts
//! ([`crate::import`]).

use crate::{SqliteStore, SqliteTx, map_err};
use sesame_core::{PrincipalId, StoreError, Tx};
use sesame_credentials::RefreshToken;
use sesame_events::OutboxMessage;
use sesame_identity::Profile;
use sesame_store_sql::SqlBackend;
use sqlx::{Row, Sqlite, SqliteConnection, SqlitePool};
use std::any::Any;
use time::OffsetDateTime;
use uuid::Uuid;

sesame_store_sql::stamp_stores!(SqliteStore);

impl SqlBackend for SqliteStore {
    type Db = Sqlite;

    fn reader(&self) -> &SqlitePool {
        &self.pool
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn profiles(&self) -> &SqlitePool {
        &self.pool
    }

    fn profile_writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn conn(tx: &mut dyn Tx) -> Result<&mut SqliteConnection, StoreError> {
        let any: &mut dyn Any = tx;
        any.downcast_mut::<SqliteTx>()
            .map(|t| &mut *t.tx)
            .ok_or_else(crate::foreign)
    }

    async fn identity_conn<'t>(
        &self,
        tx: &'t mut dyn Tx,
    ) -> Result<&'t mut SqliteConnection, StoreError> {
        Self::conn(tx)
    }

    fn store_err(err: sqlx::Error) -> StoreError {
        map_err(err)
    }

    async fn lock_principal(_: &mut SqliteConnection, _: PrincipalId) -> Result<(), StoreError> {
        Ok(())
    }

    async fn rotate_refresh(
        &self,
        used: Uuid,
        next: &RefreshToken,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.rotator.rotate(used, next, at).await
    }

    async fn pending_events(&self, limit: i64) -> Result<Vec<OutboxMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, topic, payload, attempts FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
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

    async fn publish_events(&self, ids: &[Uuid], at: OffsetDateTime) -> Result<(), StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        for id in ids {
            sqlx::query(
                "UPDATE outbox SET published_at = $1, attempts = attempts + 1 WHERE id = $2",
            )
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn fail_event(&self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET attempts = attempts + 1 WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn scrub_events(
        conn: &mut SqliteConnection,
        principal: PrincipalId,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET payload = json_set(payload, '$.data', json('{}'))
             WHERE json_extract(payload, '$.subject') = $1",
        )
        .bind(principal.to_string())
        .execute(conn)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn erase_profile(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(principal.0)
            .execute(Self::conn(tx)?)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn insert_profile_batch(
        conn: &mut SqliteConnection,
        profiles: &[Profile],
    ) -> Result<(), StoreError> {
        crate::import::insert_profiles(conn, profiles).await
    }
}
