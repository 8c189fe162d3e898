//! `PrincipalStore`, `LoginAttemptStore`, `LoginMethodStore` and `PasswordStore`.

/// Stamps the credential stores for a backend.
#[doc(hidden)]
#[macro_export]
macro_rules! __credential_stores {
    ($store:ty) => {
        const _: () = {
            use ::async_trait::async_trait;
            use ::sesame_core::{PrincipalId, StoreError, Tx};
            use ::sesame_credentials::{
                CredentialSummary, LoginAttempt, LoginAttemptStore, LoginMethod, LoginMethodStore, LoginType,
                PasswordStore, Principal, PrincipalStore,
            };
            use ::time::OffsetDateTime;
            use ::uuid::Uuid;
            use $crate::SqlBackend as _;

            /// Every login method of a principal, oldest first, read through `executor`.
            async fn methods_of<'e, E>(
                executor: E,
                principal: PrincipalId,
            ) -> Result<Vec<LoginMethod>, StoreError>
            where
                E: ::sqlx::Executor<'e, Database = <$store as $crate::SqlBackend>::Db>,
            {
                let rows =
                    ::sqlx::query("SELECT * FROM login_methods WHERE principal_id = $1 ORDER BY id")
                        .bind(principal.0)
                        .fetch_all(executor)
                        .await
                        .map_err(<$store>::store_err)?;
                rows.iter()
                    .map($crate::login_method)
                    .collect::<Result<_, _>>()
                    .map_err(<$store>::store_err)
            }

            #[async_trait]
            impl PrincipalStore for $store {
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn insert_principal(&self, tx: &mut dyn Tx, p: &Principal) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "INSERT INTO principals (id, kind, is_active, failed_attempts, locked_until, last_login_at, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(p.id.0)
                    .bind(&p.kind)
                    .bind(p.is_active)
                    .bind(p.failed_attempts)
                    .bind(p.locked_until)
                    .bind(p.last_login_at)
                    .bind(p.created_at)
                    .bind(p.updated_at)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn get_principal(&self, id: PrincipalId) -> Result<Principal, StoreError> {
                    let read = $crate::Later::new("SELECT * FROM principals WHERE id = $1").arg(id.0);
                    let row = self.read_one(read).await?.ok_or(StoreError::NotFound)?;
                    $crate::principal(&row).map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn list_principals(
                    &self,
                    kind: Option<&str>,
                    active: Option<bool>,
                    after: Option<PrincipalId>,
                    limit: i64,
                ) -> Result<Vec<Principal>, StoreError> {
                    let rows = ::sqlx::query(
                        "SELECT * FROM principals
                         WHERE deleted_at IS NULL AND ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR is_active = $2)
                           AND ($3 IS NULL OR id > $3)
                         ORDER BY id LIMIT $4",
                    )
                    .bind(kind)
                    .bind(active)
                    .bind(after.map(|p| p.0))
                    .bind(limit)
                    .fetch_all(self.reader())
                    .await
                    .map_err(Self::store_err)?;
                    rows.iter().map($crate::principal).collect::<Result<_, _>>().map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn set_principal_active(
                    &self,
                    tx: &mut dyn Tx,
                    id: PrincipalId,
                    active: bool,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query(
                        "UPDATE principals SET is_active = $1, updated_at = $2 WHERE id = $3 AND is_active <> $1",
                    )
                    .bind(active)
                    .bind(at)
                    .bind(id.0)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn credential_summary(&self, id: PrincipalId) -> Result<CredentialSummary, StoreError> {
                    // One row per login method (one with NULL login columns
                    // when there is none), each carrying the password state.
                    let rows = ::sqlx::query(
                        "SELECT p.password_removed_at AS account_password_removed_at,
                                CAST(EXISTS (SELECT 1 FROM passwords w WHERE w.principal_id = p.id) AS BOOLEAN)
                                    AS account_has_password,
                                CAST(EXISTS (SELECT 1 FROM totp_factors t
                                             WHERE t.principal_id = p.id AND t.confirmed_at IS NOT NULL) AS BOOLEAN)
                                    AS account_totp,
                                (SELECT COUNT(*) FROM backup_codes b WHERE b.principal_id = p.id AND b.used_at IS NULL)
                                    AS account_backup_codes_left,
                                (SELECT COUNT(*) FROM security_keys k WHERE k.principal_id = p.id)
                                    AS account_security_keys,
                                m.*
                         FROM principals p LEFT JOIN login_methods m ON m.principal_id = p.id
                         WHERE p.id = $1 ORDER BY m.id",
                    )
                    .bind(id.0)
                    .fetch_all(self.reader())
                    .await
                    .map_err(Self::store_err)?;
                    let first = rows.first().ok_or(StoreError::NotFound)?;
                    let read = || -> Result<CredentialSummary, ::sqlx::Error> {
                        use $crate::Columns as _;
                        let mut logins = Vec::with_capacity(rows.len());
                        for row in &rows {
                            if row.opt_uuid("id")?.is_some() {
                                logins.push($crate::login_method(row)?);
                            }
                        }
                        Ok(CredentialSummary {
                            logins,
                            has_password: first.flag("account_has_password")?,
                            password_removed_at: first.opt_time("account_password_removed_at")?,
                            mfa: ::sesame_credentials::MfaSummary {
                                totp: first.flag("account_totp")?,
                                backup_codes_left: first.int("account_backup_codes_left")?,
                                security_keys: first.int("account_security_keys")?,
                            },
                        })
                    };
                    read().map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn record_sign_in(
                    &self,
                    tx: &mut dyn Tx,
                    id: PrincipalId,
                    claimed: Option<i64>,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query(
                        "UPDATE principals SET last_login_at = $1, failed_attempts = 0, locked_until = NULL, updated_at = $1
                         WHERE id = $2 AND ($3 IS NULL OR attempt_seq = $3)",
                    )
                    .bind(at)
                    .bind(id.0)
                    .bind(claimed)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn record_sign_in_later(
                    &self,
                    tx: &mut dyn Tx,
                    id: PrincipalId,
                    at: OffsetDateTime,
                ) -> Result<(), StoreError> {
                    let write = $crate::Later::new(
                        "UPDATE principals SET last_login_at = $1, failed_attempts = 0, locked_until = NULL, updated_at = $1
                         WHERE id = $2",
                    )
                    .arg(at)
                    .arg(id.0);
                    Self::later(tx, write).await
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn release_sign_in_claim(
                    &self,
                    id: PrincipalId,
                    claimed: i64,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query(
                        "UPDATE principals SET failed_attempts = 0, locked_until = NULL, updated_at = $1
                         WHERE id = $2 AND attempt_seq = $3",
                    )
                    .bind(at)
                    .bind(id.0)
                    .bind(claimed)
                    .execute(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn give_back_sign_in_claim(
                    &self,
                    tx: &mut dyn Tx,
                    id: PrincipalId,
                    claimed: i64,
                    set_lock: bool,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query(
                        "UPDATE principals
                         SET failed_attempts = failed_attempts - 1,
                             locked_until = CASE WHEN $1 THEN NULL ELSE locked_until END, updated_at = $2
                         WHERE id = $3 AND attempt_seq = $4 AND failed_attempts > 0",
                    )
                    .bind(set_lock)
                    .bind(at)
                    .bind(id.0)
                    .bind(claimed)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn claim_sign_in_attempt(
                    &self,
                    id: PrincipalId,
                    seen_failures: i64,
                    seen_lock: Option<OffsetDateTime>,
                    lock: Option<OffsetDateTime>,
                    at: OffsetDateTime,
                ) -> Result<Option<i64>, StoreError> {
                    ::sqlx::query_scalar(
                        "UPDATE principals
                         SET failed_attempts = failed_attempts + 1, attempt_seq = attempt_seq + 1,
                             locked_until = COALESCE($1, locked_until), updated_at = $2
                         WHERE id = $3 AND failed_attempts = $4 AND locked_until IS NOT DISTINCT FROM $5
                         RETURNING attempt_seq",
                    )
                    .bind(lock)
                    .bind(at)
                    .bind(id.0)
                    .bind(seen_failures)
                    .bind(seen_lock)
                    .fetch_optional(self.writer())
                    .await
                    .map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn note_refused_attempt(
                    &self,
                    tx: &mut dyn Tx,
                    id: PrincipalId,
                ) -> Result<(), StoreError> {
                    ::sqlx::query("UPDATE principals SET attempt_seq = attempt_seq + 1 WHERE id = $1")
                        .bind(id.0)
                        .execute(Self::conn(tx).await?)
                        .await
                        .map_err(Self::store_err)?;
                    Ok(())
                }
            }

            #[async_trait]
            impl LoginAttemptStore for $store {
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn record_attempt(&self, tx: &mut dyn Tx, a: &LoginAttempt) -> Result<(), StoreError> {
                    let write = $crate::Later::new(
                        "INSERT INTO login_attempts (id, login_type, identifier, principal_id, ip, success, reason, at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .arg(a.id)
                    .arg(a.login_type.as_str())
                    .arg(&a.identifier)
                    .arg(a.principal_id.map(|p| p.0))
                    .arg(&a.ip)
                    .arg(a.success)
                    .arg(&a.reason)
                    .arg(a.at);
                    Self::later(tx, write).await
                }
            }

            #[async_trait]
            impl LoginMethodStore for $store {
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn insert_login_method(
                    &self,
                    tx: &mut dyn Tx,
                    m: &LoginMethod,
                ) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "INSERT INTO login_methods (id, principal_id, login_type, identifier, verified_at, created_at, last_used_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(m.id)
                    .bind(m.principal_id.0)
                    .bind(m.login_type.as_str())
                    .bind(&m.identifier)
                    .bind(m.verified_at)
                    .bind(m.created_at)
                    .bind(m.last_used_at)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn find_login_method(
                    &self,
                    login_type: LoginType,
                    identifier: &str,
                ) -> Result<Option<LoginMethod>, StoreError> {
                    let read = $crate::Later::new(
                        "SELECT * FROM login_methods WHERE login_type = $1 AND identifier = $2",
                    )
                    .arg(login_type.as_str())
                    .arg(identifier);
                    let row = self.read_one(read).await?;
                    row.as_ref().map($crate::login_method).transpose().map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn list_login_methods(
                    &self,
                    principal: PrincipalId,
                ) -> Result<Vec<LoginMethod>, StoreError> {
                    methods_of(self.reader(), principal).await
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn list_login_methods_for_update(
                    &self,
                    tx: &mut dyn Tx,
                    principal: PrincipalId,
                ) -> Result<Vec<LoginMethod>, StoreError> {
                    // Locking the principal serialises every change to its set of
                    // methods: a second unbind waits, then sees what the first one left.
                    let c = Self::conn(tx).await?;
                    Self::lock_principal(&mut *c, principal).await?;
                    methods_of(&mut *c, principal).await
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn mark_login_verified(
                    &self,
                    tx: &mut dyn Tx,
                    id: Uuid,
                    at: OffsetDateTime,
                ) -> Result<(), StoreError> {
                    ::sqlx::query("UPDATE login_methods SET verified_at = COALESCE(verified_at, $1) WHERE id = $2")
                        .bind(at)
                        .bind(id)
                        .execute(Self::conn(tx).await?)
                        .await
                        .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn delete_login_method(
                    &self,
                    tx: &mut dyn Tx,
                    principal: PrincipalId,
                    id: Uuid,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query("DELETE FROM login_methods WHERE id = $1 AND principal_id = $2")
                        .bind(id)
                        .bind(principal.0)
                        .execute(Self::conn(tx).await?)
                        .await
                        .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn touch_login_method(
                    &self,
                    tx: &mut dyn Tx,
                    id: Uuid,
                    at: OffsetDateTime,
                ) -> Result<(), StoreError> {
                    let write = $crate::Later::new("UPDATE login_methods SET last_used_at = $1 WHERE id = $2")
                        .arg(at)
                        .arg(id);
                    Self::later(tx, write).await
                }
            }

            #[async_trait]
            impl PasswordStore for $store {
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn set_password(
                    &self,
                    tx: &mut dyn Tx,
                    principal: PrincipalId,
                    phc: &str,
                    at: OffsetDateTime,
                ) -> Result<(), StoreError> {
                    let c = Self::conn(tx).await?;
                    ::sqlx::query(
                        "INSERT INTO passwords (principal_id, hash, created_at, updated_at) VALUES ($1, $2, $3, $3)
                         ON CONFLICT (principal_id) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at",
                    )
                    .bind(principal.0)
                    .bind(phc)
                    .bind(at)
                    .execute(&mut *c)
                    .await
                    .map_err(Self::store_err)?;
                    ::sqlx::query(
                        "INSERT INTO password_history (principal_id, hash, created_at) VALUES ($1, $2, $3)",
                    )
                    .bind(principal.0)
                    .bind(phc)
                    .bind(at)
                    .execute(&mut *c)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn upgrade_hash(
                    &self,
                    tx: &mut dyn Tx,
                    principal: PrincipalId,
                    old: &str,
                    new: &str,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let c = Self::conn(tx).await?;
                    let done = ::sqlx::query(
                        "UPDATE passwords SET hash = $1, updated_at = $2 WHERE principal_id = $3 AND hash = $4",
                    )
                    .bind(new)
                    .bind(at)
                    .bind(principal.0)
                    .bind(old)
                    .execute(&mut *c)
                    .await
                    .map_err(Self::store_err)?;
                    ::sqlx::query("UPDATE password_history SET hash = $1 WHERE principal_id = $2 AND hash = $3")
                        .bind(new)
                        .bind(principal.0)
                        .bind(old)
                        .execute(&mut *c)
                        .await
                        .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn remove_password(
                    &self,
                    tx: &mut dyn Tx,
                    principal: PrincipalId,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let c = Self::conn(tx).await?;
                    let removed = ::sqlx::query("DELETE FROM passwords WHERE principal_id = $1")
                        .bind(principal.0)
                        .execute(&mut *c)
                        .await
                        .map_err(Self::store_err)?;
                    if removed.rows_affected() == 0 {
                        return Ok(false);
                    }
                    ::sqlx::query("UPDATE principals SET password_removed_at = $1, updated_at = $1 WHERE id = $2")
                        .bind(at)
                        .bind(principal.0)
                        .execute(&mut *c)
                        .await
                        .map_err(Self::store_err)?;
                    Ok(true)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn get_password(&self, principal: PrincipalId) -> Result<Option<String>, StoreError> {
                    ::sqlx::query_scalar("SELECT hash FROM passwords WHERE principal_id = $1")
                        .bind(principal.0)
                        .fetch_optional(self.reader())
                        .await
                        .map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn prune_password_history(
                    &self,
                    tx: &mut dyn Tx,
                    principal: PrincipalId,
                    keep: i64,
                ) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "DELETE FROM password_history WHERE principal_id = $1 AND seq NOT IN
                             (SELECT seq FROM password_history WHERE principal_id = $1 ORDER BY seq DESC LIMIT $2)",
                    )
                    .bind(principal.0)
                    .bind(keep)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn password_history(
                    &self,
                    principal: PrincipalId,
                    limit: i64,
                ) -> Result<Vec<String>, StoreError> {
                    ::sqlx::query_scalar(
                        "SELECT hash FROM password_history WHERE principal_id = $1 ORDER BY seq DESC LIMIT $2",
                    )
                    .bind(principal.0)
                    .bind(limit)
                    .fetch_all(self.reader())
                    .await
                    .map_err(Self::store_err)
                }
            }
        };
    };
}
