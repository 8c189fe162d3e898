//! `MfaStore` and `ServerSecretStore`.

/// Stamps the second-factor and server-secret stores for a backend.
#[doc(hidden)]
#[macro_export]
macro_rules! __mfa_stores {
    ($store:ty) => {
        const _: () = {
            use ::async_trait::async_trait;
            use ::sesame_core::{PrincipalId, StoreError, Tx};
            use ::sesame_credentials::{
                MfaChallenge, MfaStore, MfaSummary, Sealed, ServerSecretStore, TotpFactor,
            };
            use ::time::OffsetDateTime;
            use ::uuid::Uuid;
            use $crate::SqlBackend as _;

            #[async_trait]
            impl MfaStore for $store {
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn put_pending_totp(&self, f: &TotpFactor) -> Result<bool, StoreError> {
                    let done = ::sqlx::query(
                        "INSERT INTO totp_factors
                             (principal_id, id, secret_sealed, master_key_id, confirmed_at, last_step, created_at)
                         VALUES ($1, $2, $3, $4, NULL, NULL, $5)
                         ON CONFLICT (principal_id) DO UPDATE
                             SET id = excluded.id, secret_sealed = excluded.secret_sealed,
                                 master_key_id = excluded.master_key_id, last_step = NULL,
                                 created_at = excluded.created_at
                             WHERE totp_factors.confirmed_at IS NULL",
                    )
                    .bind(f.principal_id.0)
                    .bind(f.id)
                    .bind(&f.secret.blob)
                    .bind(&f.secret.key_id)
                    .bind(f.created_at)
                    .execute(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn get_totp(&self, principal: PrincipalId) -> Result<Option<TotpFactor>, StoreError> {
                    let row = ::sqlx::query("SELECT * FROM totp_factors WHERE principal_id = $1")
                        .bind(principal.0)
                        .fetch_optional(self.reader())
                        .await
                        .map_err(Self::store_err)?;
                    row.as_ref().map($crate::totp_factor).transpose().map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn confirm_totp(
                    &self,
                    tx: &mut dyn Tx,
                    principal: PrincipalId,
                    id: Uuid,
                    step: i64,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query(
                        "UPDATE totp_factors SET confirmed_at = $1, last_step = $2
                         WHERE principal_id = $3 AND id = $4 AND confirmed_at IS NULL
                           AND (last_step IS NULL OR last_step < $2)",
                    )
                    .bind(at)
                    .bind(step)
                    .bind(principal.0)
                    .bind(id)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn accept_totp_step(
                    &self,
                    tx: &mut dyn Tx,
                    principal: PrincipalId,
                    step: i64,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query(
                        "UPDATE totp_factors SET last_step = $1
                         WHERE principal_id = $2 AND confirmed_at IS NOT NULL
                           AND (last_step IS NULL OR last_step < $1)",
                    )
                    .bind(step)
                    .bind(principal.0)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn delete_totp(&self, tx: &mut dyn Tx, principal: PrincipalId) -> Result<bool, StoreError> {
                    let done = ::sqlx::query("DELETE FROM totp_factors WHERE principal_id = $1")
                        .bind(principal.0)
                        .execute(Self::conn(tx).await?)
                        .await
                        .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn list_totp_seals(&self) -> Result<Vec<(PrincipalId, Sealed)>, StoreError> {
                    let rows = ::sqlx::query(
                        "SELECT principal_id, secret_sealed, master_key_id FROM totp_factors ORDER BY principal_id",
                    )
                    .fetch_all(self.reader())
                    .await
                    .map_err(Self::store_err)?;
                    rows.iter()
                        .map(|row| {
                            use $crate::Columns as _;
                            Ok((
                                PrincipalId(row.uuid("principal_id")?),
                                Sealed { key_id: row.text("master_key_id")?, blob: row.bytes("secret_sealed")? },
                            ))
                        })
                        .collect::<Result<_, ::sqlx::Error>>()
                        .map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn reseal_totp(
                    &self,
                    tx: &mut dyn Tx,
                    principal: PrincipalId,
                    old_key_id: &str,
                    sealed: &Sealed,
                ) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "UPDATE totp_factors SET secret_sealed = $1, master_key_id = $2
                         WHERE principal_id = $3 AND master_key_id = $4",
                    )
                    .bind(&sealed.blob)
                    .bind(&sealed.key_id)
                    .bind(principal.0)
                    .bind(old_key_id)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn replace_backup_codes(
                    &self,
                    tx: &mut dyn Tx,
                    principal: PrincipalId,
                    hashes: &[Vec<u8>],
                    at: OffsetDateTime,
                ) -> Result<(), StoreError> {
                    let c = Self::conn(tx).await?;
                    ::sqlx::query("DELETE FROM backup_codes WHERE principal_id = $1")
                        .bind(principal.0)
                        .execute(&mut *c)
                        .await
                        .map_err(Self::store_err)?;
                    for hash in hashes {
                        ::sqlx::query(
                            "INSERT INTO backup_codes (principal_id, code_hash, created_at, used_at)
                             VALUES ($1, $2, $3, NULL)",
                        )
                        .bind(principal.0)
                        .bind(hash)
                        .bind(at)
                        .execute(&mut *c)
                        .await
                        .map_err(Self::store_err)?;
                    }
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn use_backup_code(
                    &self,
                    tx: &mut dyn Tx,
                    principal: PrincipalId,
                    hash: &[u8],
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query(
                        "UPDATE backup_codes SET used_at = $1
                         WHERE principal_id = $2 AND code_hash = $3 AND used_at IS NULL",
                    )
                    .bind(at)
                    .bind(principal.0)
                    .bind(hash)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn mfa_summary(&self, principal: PrincipalId) -> Result<MfaSummary, StoreError> {
                    let row = ::sqlx::query(
                        "SELECT CAST(EXISTS (SELECT 1 FROM totp_factors
                                             WHERE principal_id = $1 AND confirmed_at IS NOT NULL) AS BOOLEAN) AS totp,
                                (SELECT COUNT(*) FROM backup_codes
                                 WHERE principal_id = $1 AND used_at IS NULL) AS backup_codes_left,
                                (SELECT COUNT(*) FROM security_keys WHERE principal_id = $1) AS security_keys",
                    )
                    .bind(principal.0)
                    .fetch_one(self.reader())
                    .await
                    .map_err(Self::store_err)?;
                    use $crate::Columns as _;
                    Ok(MfaSummary {
                        totp: row.flag("totp").map_err(Self::store_err)?,
                        backup_codes_left: row.int("backup_codes_left").map_err(Self::store_err)?,
                        security_keys: row.int("security_keys").map_err(Self::store_err)?,
                    })
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn insert_mfa_challenge(&self, tx: &mut dyn Tx, c: &MfaChallenge) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "INSERT INTO mfa_challenges
                             (id_hash, principal_id, login_id, login_type, identifier, amr, attempts,
                              created_at, expires_at, consumed_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(&c.id_hash)
                    .bind(c.principal_id.0)
                    .bind(c.login_id)
                    .bind(c.login_type.as_str())
                    .bind(&c.identifier)
                    .bind(::sqlx::types::Json(&c.amr))
                    .bind(c.attempts)
                    .bind(c.created_at)
                    .bind(c.expires_at)
                    .bind(c.consumed_at)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn find_mfa_challenge(
                    &self,
                    id_hash: &[u8],
                    now: OffsetDateTime,
                ) -> Result<Option<MfaChallenge>, StoreError> {
                    let row = ::sqlx::query(
                        "SELECT * FROM mfa_challenges WHERE id_hash = $1 AND consumed_at IS NULL AND expires_at > $2",
                    )
                    .bind(id_hash)
                    .bind(now)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(Self::store_err)?;
                    row.as_ref().map($crate::mfa_challenge).transpose().map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn claim_mfa_try(
                    &self,
                    id_hash: &[u8],
                    max_attempts: i64,
                    now: OffsetDateTime,
                ) -> Result<Option<MfaChallenge>, StoreError> {
                    let row = ::sqlx::query(
                        "UPDATE mfa_challenges SET attempts = attempts + 1
                         WHERE id_hash = $1 AND consumed_at IS NULL AND expires_at > $2 AND attempts < $3
                         RETURNING *",
                    )
                    .bind(id_hash)
                    .bind(now)
                    .bind(max_attempts)
                    .fetch_optional(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    row.as_ref().map($crate::mfa_challenge).transpose().map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn consume_mfa_challenge(
                    &self,
                    tx: &mut dyn Tx,
                    id_hash: &[u8],
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query(
                        "UPDATE mfa_challenges SET consumed_at = $1 WHERE id_hash = $2 AND consumed_at IS NULL",
                    )
                    .bind(at)
                    .bind(id_hash)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }
            }

            #[async_trait]
            impl ServerSecretStore for $store {
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn ensure_server_secret(
                    &self,
                    name: &str,
                    sealed: &Sealed,
                    at: OffsetDateTime,
                ) -> Result<Sealed, StoreError> {
                    ::sqlx::query(
                        "INSERT INTO server_secrets (name, secret_sealed, master_key_id, created_at)
                         VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(name)
                    .bind(&sealed.blob)
                    .bind(&sealed.key_id)
                    .bind(at)
                    .execute(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    let row = ::sqlx::query("SELECT secret_sealed, master_key_id FROM server_secrets WHERE name = $1")
                        .bind(name)
                        .fetch_one(self.writer())
                        .await
                        .map_err(Self::store_err)?;
                    use $crate::Columns as _;
                    Ok(Sealed {
                        key_id: row.text("master_key_id").map_err(Self::store_err)?,
                        blob: row.bytes("secret_sealed").map_err(Self::store_err)?,
                    })
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn list_server_secrets(&self) -> Result<Vec<(String, Sealed)>, StoreError> {
                    let rows = ::sqlx::query("SELECT name, secret_sealed, master_key_id FROM server_secrets ORDER BY name")
                        .fetch_all(self.reader())
                        .await
                        .map_err(Self::store_err)?;
                    rows.iter()
                        .map(|row| {
                            use $crate::Columns as _;
                            Ok((
                                row.text("name")?,
                                Sealed { key_id: row.text("master_key_id")?, blob: row.bytes("secret_sealed")? },
                            ))
                        })
                        .collect::<Result<_, ::sqlx::Error>>()
                        .map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn reseal_server_secret(
                    &self,
                    tx: &mut dyn Tx,
                    name: &str,
                    sealed: &Sealed,
                ) -> Result<(), StoreError> {
                    ::sqlx::query("UPDATE server_secrets SET secret_sealed = $1, master_key_id = $2 WHERE name = $3")
                        .bind(&sealed.blob)
                        .bind(&sealed.key_id)
                        .bind(name)
                        .execute(Self::conn(tx).await?)
                        .await
                        .map_err(Self::store_err)?;
                    Ok(())
                }
            }
        };
    };
}
