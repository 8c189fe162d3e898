//! `RetentionStore` on PostgreSQL.

use crate::{PgStore, map_err};
use async_trait::async_trait;
use sesame_core::StoreError;
use sesame_credentials::{RetentionStore, SweepBefore, Swept};

#[async_trait]
impl RetentionStore for PgStore {
    async fn sweep(&self, before: SweepBefore) -> Result<Swept, StoreError> {
        let run = |sql: &'static str, at: time::OffsetDateTime| async move {
            sqlx::query(sql)
                .bind(at)
                .execute(&self.credentials)
                .await
                .map(|done| done.rows_affected())
                .map_err(map_err)
        };
        Ok(Swept {
            codes: run(
                "DELETE FROM credentials.verification_codes WHERE expires_at < $1",
                before.expired_codes,
            )
            .await?,
            refresh_tokens: run(
                "DELETE FROM credentials.refresh_tokens WHERE used_at IS NOT NULL AND used_at < $1",
                before.used_refresh_tokens,
            )
            .await?,
            // Their refresh tokens go with them (ON DELETE CASCADE).
            sessions: run(
                "DELETE FROM credentials.sessions
                 WHERE (revoked_at IS NOT NULL AND revoked_at < $1) OR expires_at < $1",
                before.ended_sessions,
            )
            .await?,
            login_attempts: run(
                "DELETE FROM credentials.login_attempts WHERE at < $1",
                before.login_attempts,
            )
            .await?,
            counters: 0,
        })
    }
}
