//! `RetentionStore` on SQLite.

use crate::{SqliteStore, map_err};
use async_trait::async_trait;
use sesame_core::StoreError;
use sesame_credentials::{RetentionStore, SweepBefore, Swept};

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn sweep(&self, before: SweepBefore) -> Result<Swept, StoreError> {
        let run = |sql: &'static str, at: time::OffsetDateTime| async move {
            sqlx::query(sql)
                .bind(at)
                .execute(&self.writer)
                .await
                .map(|done| done.rows_affected())
                .map_err(map_err)
        };
        Ok(Swept {
            codes: run(
                "DELETE FROM verification_codes WHERE expires_at < $1",
                before.expired_codes,
            )
            .await?,
            refresh_tokens: run(
                "DELETE FROM refresh_tokens WHERE used_at IS NOT NULL AND used_at < $1",
                before.used_refresh_tokens,
            )
            .await?,
            // Their refresh tokens go with them (ON DELETE CASCADE).
            sessions: run(
                "DELETE FROM sessions
                 WHERE (revoked_at IS NOT NULL AND revoked_at < $1) OR expires_at < $1",
                before.ended_sessions,
            )
            .await?,
            login_attempts: run(
                "DELETE FROM login_attempts WHERE at < $1",
                before.login_attempts,
            )
            .await?,
            counters: 0,
        })
    }
}
