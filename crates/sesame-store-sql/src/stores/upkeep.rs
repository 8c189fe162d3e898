//! `CounterStore` and `RetentionStore`: statements that commit on their own.

/// Stamps the counter and retention stores for a backend.
#[doc(hidden)]
#[macro_export]
macro_rules! __upkeep_stores {
    ($store:ty) => {
        const _: () = {
            use ::async_trait::async_trait;
            use ::sesame_core::{CounterStore, StoreError, Tx};
            use ::sesame_credentials::{RetentionStore, SweepBefore, Swept};
            use ::time::OffsetDateTime;
            use ::uuid::Uuid;
            use $crate::SqlBackend as _;

            /// One upsert per step, each committing on its own.
            #[async_trait]
            impl CounterStore for $store {
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn start_cooldown_at(
                    &self,
                    key: &str,
                    now_ms: i64,
                    until_ms: i64,
                ) -> Result<Option<i64>, StoreError> {
                    let started: Option<i64> = ::sqlx::query_scalar(
                        "INSERT INTO limit_state (key, count, until_ms) VALUES ($1, 1, $3)
                         ON CONFLICT (key) DO UPDATE SET count = 1, until_ms = excluded.until_ms
                         WHERE limit_state.until_ms <= $2
                         RETURNING until_ms",
                    )
                    .bind(key)
                    .bind(now_ms)
                    .bind(until_ms)
                    .fetch_optional(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    if started.is_some() {
                        return Ok(None);
                    }
                    self.cooldown_until(key, now_ms).await
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn cooldown_until(&self, key: &str, now_ms: i64) -> Result<Option<i64>, StoreError> {
                    ::sqlx::query_scalar("SELECT until_ms FROM limit_state WHERE key = $1 AND until_ms > $2")
                        .bind(key)
                        .bind(now_ms)
                        .fetch_optional(self.reader())
                        .await
                        .map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn count_at(&self, key: &str, now_ms: i64, until_ms: i64) -> Result<u64, StoreError> {
                    let count: i64 = ::sqlx::query_scalar(
                        "INSERT INTO limit_state (key, count, until_ms) VALUES ($1, 1, $3)
                         ON CONFLICT (key) DO UPDATE SET
                             count = CASE WHEN limit_state.until_ms > $2 THEN limit_state.count + 1 ELSE 1 END,
                             until_ms = excluded.until_ms
                         RETURNING count",
                    )
                    .bind(key)
                    .bind(now_ms)
                    .bind(until_ms)
                    .fetch_one(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    Ok(count.max(0) as u64)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn forget(&self, key: &str) -> Result<(), StoreError> {
                    ::sqlx::query("DELETE FROM limit_state WHERE key = $1")
                        .bind(key)
                        .execute(self.writer())
                        .await
                        .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn sweep_counters(&self, now_ms: i64) -> Result<u64, StoreError> {
                    let done = ::sqlx::query("DELETE FROM limit_state WHERE until_ms <= $1")
                        .bind(now_ms)
                        .execute(self.writer())
                        .await
                        .map_err(Self::store_err)?;
                    Ok(done.rows_affected())
                }
            }

            /// Each deletion commits on its own.
            #[async_trait]
            impl RetentionStore for $store {
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn sweep(&self, before: SweepBefore) -> Result<Swept, StoreError> {
                    let run = |sql: &'static str, at: OffsetDateTime| async move {
                        ::sqlx::query(sql)
                            .bind(at)
                            .execute(self.writer())
                            .await
                            .map(|done| done.rows_affected())
                            .map_err(Self::store_err)
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
                        events: 0,
                        federation_flows: 0,
                        mfa_challenges: run(
                            "DELETE FROM mfa_challenges WHERE expires_at < $1",
                            before.expired_codes,
                        )
                        .await?
                            + run(
                                "DELETE FROM webauthn_ceremonies WHERE expires_at < $1",
                                before.expired_codes,
                            )
                            .await?,
                    })
                }
            }
        };
    };
}
