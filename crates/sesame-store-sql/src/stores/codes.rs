//! `VerificationCodeStore`.

/// Stamps the verification-code store for a backend.
#[doc(hidden)]
#[macro_export]
macro_rules! __code_store {
    ($store:ty) => {
        const _: () = {
            use ::async_trait::async_trait;
            use ::sesame_core::{StoreError, Tx};
            use ::sesame_credentials::{CodePurpose, LoginType, VerificationCode, VerificationCodeStore};
            use ::time::OffsetDateTime;
            use ::uuid::Uuid;
            use $crate::SqlBackend as _;

            #[async_trait]
            impl VerificationCodeStore for $store {
                /// Commits on its own: the new code and the pruning of the oldest.
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn insert_code(&self, c: &VerificationCode, keep: i64) -> Result<(), StoreError> {
                    let mut tx = self.writer().begin().await.map_err(Self::store_err)?;
                    ::sqlx::query(
                        "INSERT INTO verification_codes
                             (id, purpose, login_type, identifier, subject, code_hash, flow_id,
                              attempts, anonymous_attempts, created_at, expires_at, consumed_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, $8, $9, NULL)",
                    )
                    .bind(c.id)
                    .bind(c.purpose.as_str())
                    .bind(c.login_type.as_str())
                    .bind(&c.identifier)
                    .bind(&c.subject)
                    .bind(&c.code_hash)
                    .bind(&c.flow_id)
                    .bind(c.created_at)
                    .bind(c.expires_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(Self::store_err)?;
                    ::sqlx::query(
                        "DELETE FROM verification_codes
                         WHERE purpose = $1 AND login_type = $2 AND identifier = $3 AND subject = $4
                           AND id NOT IN (SELECT id FROM verification_codes
                                          WHERE purpose = $1 AND login_type = $2 AND identifier = $3 AND subject = $4
                                          ORDER BY created_at DESC, id DESC LIMIT $5)",
                    )
                    .bind(c.purpose.as_str())
                    .bind(c.login_type.as_str())
                    .bind(&c.identifier)
                    .bind(&c.subject)
                    .bind(keep)
                    .execute(&mut *tx)
                    .await
                    .map_err(Self::store_err)?;
                    tx.commit().await.map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn find_code(
                    &self,
                    purpose: CodePurpose,
                    login_type: LoginType,
                    identifier: &str,
                    subject: &str,
                ) -> Result<Option<VerificationCode>, StoreError> {
                    let row = ::sqlx::query(
                        "SELECT * FROM verification_codes
                         WHERE purpose = $1 AND login_type = $2 AND identifier = $3 AND subject = $4
                         ORDER BY created_at DESC, id DESC LIMIT 1",
                    )
                    .bind(purpose.as_str())
                    .bind(login_type.as_str())
                    .bind(identifier)
                    .bind(subject)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(Self::store_err)?;
                    row.as_ref().map($crate::verification_code).transpose().map_err(Self::store_err)
                }

                /// Commits on its own: a try is spent whatever the comparison says.
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn claim_code_try(
                    &self,
                    purpose: CodePurpose,
                    login_type: LoginType,
                    identifier: &str,
                    subject: &str,
                    flow: Option<&str>,
                    max_attempts: i64,
                ) -> Result<Option<VerificationCode>, StoreError> {
                    let sql = match flow {
                        Some(_) => {
                            "UPDATE verification_codes SET attempts = attempts + 1
                             WHERE flow_id = $6 AND purpose = $1 AND login_type = $2 AND identifier = $3
                               AND subject = $4 AND consumed_at IS NULL AND attempts < $5
                             RETURNING *"
                        }
                        None => {
                            "UPDATE verification_codes SET anonymous_attempts = anonymous_attempts + 1
                             WHERE id = (SELECT id FROM verification_codes
                                         WHERE purpose = $1 AND login_type = $2 AND identifier = $3 AND subject = $4
                                         ORDER BY created_at DESC, id DESC LIMIT 1)
                               AND consumed_at IS NULL AND anonymous_attempts < $5 AND $6 IS NULL
                             RETURNING *"
                        }
                    };
                    let row = ::sqlx::query(sql)
                        .bind(purpose.as_str())
                        .bind(login_type.as_str())
                        .bind(identifier)
                        .bind(subject)
                        .bind(max_attempts)
                        .bind(flow)
                        .fetch_optional(self.writer())
                        .await
                        .map_err(Self::store_err)?;
                    row.as_ref().map($crate::verification_code).transpose().map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn consume_code(
                    &self,
                    tx: &mut dyn Tx,
                    id: Uuid,
                    max_attempts: i64,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let c = Self::conn(tx).await?;
                    let done = ::sqlx::query(
                        "UPDATE verification_codes SET consumed_at = $1
                         WHERE id = $2 AND consumed_at IS NULL AND attempts <= $3 AND anonymous_attempts <= $3",
                    )
                    .bind(at)
                    .bind(id)
                    .bind(max_attempts)
                    .execute(&mut *c)
                    .await
                    .map_err(Self::store_err)?;
                    if done.rows_affected() != 1 {
                        return Ok(false);
                    }
                    ::sqlx::query(
                        "UPDATE verification_codes SET consumed_at = $1
                         WHERE consumed_at IS NULL
                           AND (purpose, login_type, identifier, subject) =
                               (SELECT purpose, login_type, identifier, subject FROM verification_codes WHERE id = $2)",
                    )
                    .bind(at)
                    .bind(id)
                    .execute(&mut *c)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(true)
                }
            }
        };
    };
}
