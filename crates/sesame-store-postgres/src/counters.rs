//! `CounterStore` on PostgreSQL: one upsert per step.

use crate::{PgStore, map_err};
use async_trait::async_trait;
use sesame_core::{CounterStore, StoreError};

#[async_trait]
impl CounterStore for PgStore {
    async fn start_cooldown_at(
        &self,
        key: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let started: Option<i64> = sqlx::query_scalar(
            "INSERT INTO credentials.limit_state (key, count, until_ms) VALUES ($1, 1, $3)
             ON CONFLICT (key) DO UPDATE SET count = 1, until_ms = excluded.until_ms
             WHERE credentials.limit_state.until_ms <= $2
             RETURNING until_ms",
        )
        .bind(key)
        .bind(now_ms)
        .bind(until_ms)
        .fetch_optional(&self.credentials)
        .await
        .map_err(map_err)?;
        if started.is_some() {
            return Ok(None);
        }
        self.cooldown_until(key, now_ms).await
    }

    async fn cooldown_until(&self, key: &str, now_ms: i64) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(
            "SELECT until_ms FROM credentials.limit_state WHERE key = $1 AND until_ms > $2",
        )
        .bind(key)
        .bind(now_ms)
        .fetch_optional(&self.credentials)
        .await
        .map_err(map_err)
    }

    async fn count_at(&self, key: &str, now_ms: i64, until_ms: i64) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "INSERT INTO credentials.limit_state (key, count, until_ms) VALUES ($1, 1, $3)
             ON CONFLICT (key) DO UPDATE SET
                 count = CASE WHEN credentials.limit_state.until_ms > $2 THEN credentials.limit_state.count + 1 ELSE 1 END,
                 until_ms = excluded.until_ms
             RETURNING count",
        )
        .bind(key)
        .bind(now_ms)
        .bind(until_ms)
        .fetch_one(&self.credentials)
        .await
        .map_err(map_err)?;
        Ok(count.max(0) as u64)
    }

    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM credentials.limit_state WHERE key = $1")
            .bind(key)
            .execute(&self.credentials)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn sweep_counters(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM credentials.limit_state WHERE until_ms <= $1")
            .bind(now_ms)
            .execute(&self.credentials)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}
