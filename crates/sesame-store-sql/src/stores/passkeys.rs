//! `PasskeyStore`.

/// Stamps the passkey store for a backend.
#[doc(hidden)]
#[macro_export]
macro_rules! __passkey_store {
    ($store:ty) => {
        const _: () = {
            use ::async_trait::async_trait;
            use ::sesame_core::{PrincipalId, StoreError, Tx};
            use ::sesame_credentials::{Ceremony, PasskeyRecord, PasskeyStore, SecurityKeyRecord};
            use ::time::OffsetDateTime;
            use ::uuid::Uuid;
            use $crate::SqlBackend as _;

            #[async_trait]
            impl PasskeyStore for $store {
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn insert_passkey(&self, tx: &mut dyn Tx, p: &PasskeyRecord) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "INSERT INTO passkeys
                             (login_id, principal_id, name, credential, counter, backup_eligible, backed_up,
                              created_at, last_used_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(p.login_id)
                    .bind(p.principal_id.0)
                    .bind(&p.name)
                    .bind(::sqlx::types::Json(&p.credential))
                    .bind(p.counter)
                    .bind(p.backup_eligible)
                    .bind(p.backed_up)
                    .bind(p.created_at)
                    .bind(p.last_used_at)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn list_passkeys(&self, principal: PrincipalId) -> Result<Vec<PasskeyRecord>, StoreError> {
                    let rows = ::sqlx::query("SELECT * FROM passkeys WHERE principal_id = $1 ORDER BY login_id")
                        .bind(principal.0)
                        .fetch_all(self.reader())
                        .await
                        .map_err(Self::store_err)?;
                    rows.iter()
                        .map($crate::passkey)
                        .collect::<Result<_, _>>()
                        .map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn get_passkey(&self, login_id: Uuid) -> Result<Option<PasskeyRecord>, StoreError> {
                    let read = $crate::Later::new("SELECT * FROM passkeys WHERE login_id = $1").arg(login_id);
                    let row = self.read_one(read).await?;
                    row.as_ref().map($crate::passkey).transpose().map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn rename_passkey(
                    &self,
                    principal: PrincipalId,
                    login_id: Uuid,
                    name: &str,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query("UPDATE passkeys SET name = $1 WHERE login_id = $2 AND principal_id = $3")
                        .bind(name)
                        .bind(login_id)
                        .bind(principal.0)
                        .execute(self.writer())
                        .await
                        .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn record_passkey_use(
                    &self,
                    tx: &mut dyn Tx,
                    login_id: Uuid,
                    seen_counter: i64,
                    used: &PasskeyRecord,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let update = $crate::Later::new(
                        "UPDATE passkeys SET credential = $1, counter = $2, backed_up = $3, last_used_at = $4
                         WHERE login_id = $5 AND counter = $6",
                    )
                    .json(&used.credential)?
                    .arg(used.counter)
                    .arg(used.backed_up)
                    .arg(at)
                    .arg(login_id)
                    .arg(seen_counter);
                    Ok(Self::run(tx, update).await?.changed == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn insert_security_key(&self, tx: &mut dyn Tx, k: &SecurityKeyRecord) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "INSERT INTO security_keys (id, principal_id, name, credential, counter, created_at, last_used_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(k.id)
                    .bind(k.principal_id.0)
                    .bind(&k.name)
                    .bind(::sqlx::types::Json(&k.credential))
                    .bind(k.counter)
                    .bind(k.created_at)
                    .bind(k.last_used_at)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn list_security_keys(&self, principal: PrincipalId) -> Result<Vec<SecurityKeyRecord>, StoreError> {
                    let rows = ::sqlx::query("SELECT * FROM security_keys WHERE principal_id = $1 ORDER BY id")
                        .bind(principal.0)
                        .fetch_all(self.reader())
                        .await
                        .map_err(Self::store_err)?;
                    rows.iter()
                        .map($crate::security_key)
                        .collect::<Result<_, _>>()
                        .map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn record_security_key_use(
                    &self,
                    tx: &mut dyn Tx,
                    id: Uuid,
                    seen_counter: i64,
                    used: &SecurityKeyRecord,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query(
                        "UPDATE security_keys SET credential = $1, counter = $2, last_used_at = $3
                         WHERE id = $4 AND counter = $5",
                    )
                    .bind(::sqlx::types::Json(&used.credential))
                    .bind(used.counter)
                    .bind(at)
                    .bind(id)
                    .bind(seen_counter)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn delete_security_key(
                    &self,
                    tx: &mut dyn Tx,
                    principal: PrincipalId,
                    id: Uuid,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query("DELETE FROM security_keys WHERE id = $1 AND principal_id = $2")
                        .bind(id)
                        .bind(principal.0)
                        .execute(Self::conn(tx).await?)
                        .await
                        .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn insert_ceremony(&self, c: &Ceremony) -> Result<(), StoreError> {
                    let insert = $crate::Later::new(
                        "INSERT INTO webauthn_ceremonies (id_hash, purpose, principal_id, state, created_at, expires_at)
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .arg(c.id_hash.as_slice())
                    .arg(&c.purpose)
                    .arg(c.principal_id.map(|p| p.0))
                    .json(&c.state)?
                    .arg(c.created_at)
                    .arg(c.expires_at);
                    self.run_alone(insert).await?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn take_ceremony(
                    &self,
                    id_hash: &[u8],
                    purpose: &str,
                    principal: Option<PrincipalId>,
                    now: OffsetDateTime,
                ) -> Result<Option<Ceremony>, StoreError> {
                    let take = $crate::Later::new(
                        "DELETE FROM webauthn_ceremonies
                         WHERE id_hash = $1 AND purpose = $2 AND principal_id IS NOT DISTINCT FROM $3
                           AND expires_at > $4
                         RETURNING *",
                    )
                    .arg(id_hash)
                    .arg(purpose)
                    .arg(principal.map(|p| p.0))
                    .arg(now);
                    let row = self.run_alone(take).await?.rows.into_iter().next();
                    row.as_ref().map($crate::ceremony).transpose().map_err(Self::store_err)
                }
            }
        };
    };
}
