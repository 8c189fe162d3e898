//! `FederationStore`: flows claimed once at the callback and once at the
//! exchange, each by one conditional `UPDATE … RETURNING` (atomic on both
//! backends), connections and provider tokens.

/// Stamps the federation store for a backend.
#[doc(hidden)]
#[macro_export]
macro_rules! __federation_store {
    ($store:ty) => {
        const _: () = {
            use ::async_trait::async_trait;
            use ::sesame_core::{StoreError, Tx};
            use ::sesame_credentials::{FederationFlow, FederationStore, Sealed, StoredConnection};
            use ::time::OffsetDateTime;
            use ::uuid::Uuid;
            use $crate::SqlBackend as _;

            #[async_trait]
            impl FederationStore for $store {
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn insert_flow(&self, f: &FederationFlow) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "INSERT INTO federation_flows
                             (id, connection, state_hash, intent, principal_id, nonce,
                              pkce_verifier_sealed, pkce_key_id, app_challenge, return_to,
                              created_at, expires_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    )
                    .bind(f.id)
                    .bind(&f.connection)
                    .bind(&f.state_hash)
                    .bind(&f.intent)
                    .bind(f.principal_id.map(|p| p.0))
                    .bind(&f.nonce)
                    .bind(&f.pkce_verifier.blob)
                    .bind(&f.pkce_verifier.key_id)
                    .bind(&f.app_challenge)
                    .bind(&f.return_to)
                    .bind(f.created_at)
                    .bind(f.expires_at)
                    .execute(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn claim_flow(
                    &self,
                    connection: &str,
                    state_hash: &[u8],
                    now: OffsetDateTime,
                ) -> Result<Option<FederationFlow>, StoreError> {
                    let row = ::sqlx::query(
                        "UPDATE federation_flows SET consumed_at = $3
                         WHERE state_hash = $1 AND connection = $2 AND consumed_at IS NULL
                           AND expires_at > $3
                         RETURNING *",
                    )
                    .bind(state_hash)
                    .bind(connection)
                    .bind(now)
                    .fetch_optional(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    row.as_ref().map($crate::federation_flow).transpose().map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn finish_flow(
                    &self,
                    id: Uuid,
                    login_code_hash: &[u8],
                    code_expires_at: OffsetDateTime,
                    result: &Sealed,
                ) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "UPDATE federation_flows
                         SET login_code_hash = $2, login_code_expires_at = $3,
                             result_sealed = $4, result_key_id = $5
                         WHERE id = $1 AND consumed_at IS NOT NULL AND login_code_hash IS NULL",
                    )
                    .bind(id)
                    .bind(login_code_hash)
                    .bind(code_expires_at)
                    .bind(&result.blob)
                    .bind(&result.key_id)
                    .execute(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn take_flow(
                    &self,
                    id: Uuid,
                    login_code_hash: &[u8],
                    now: OffsetDateTime,
                ) -> Result<Option<FederationFlow>, StoreError> {
                    let row = ::sqlx::query(
                        "UPDATE federation_flows SET exchanged_at = $3
                         WHERE id = $1 AND login_code_hash = $2 AND exchanged_at IS NULL
                           AND login_code_expires_at > $3
                         RETURNING *",
                    )
                    .bind(id)
                    .bind(login_code_hash)
                    .bind(now)
                    .fetch_optional(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    row.as_ref().map($crate::federation_flow).transpose().map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn list_connections(&self) -> Result<Vec<StoredConnection>, StoreError> {
                    let rows = ::sqlx::query("SELECT * FROM federation_connections ORDER BY name")
                        .fetch_all(self.reader())
                        .await
                        .map_err(Self::store_err)?;
                    rows.iter()
                        .map($crate::stored_connection)
                        .collect::<Result<_, _>>()
                        .map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn get_connection(
                    &self,
                    name: &str,
                ) -> Result<Option<StoredConnection>, StoreError> {
                    let row = ::sqlx::query("SELECT * FROM federation_connections WHERE name = $1")
                        .bind(name)
                        .fetch_optional(self.reader())
                        .await
                        .map_err(Self::store_err)?;
                    row.as_ref().map($crate::stored_connection).transpose().map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn put_connection(
                    &self,
                    tx: &mut dyn Tx,
                    c: &StoredConnection,
                ) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "INSERT INTO federation_connections
                             (name, settings, secret_sealed, secret_key_id, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (name) DO UPDATE SET settings = excluded.settings,
                             secret_sealed = excluded.secret_sealed,
                             secret_key_id = excluded.secret_key_id,
                             updated_at = excluded.updated_at",
                    )
                    .bind(&c.name)
                    .bind(::sqlx::types::Json(&c.settings))
                    .bind(c.secret.as_ref().map(|s| &s.blob))
                    .bind(c.secret.as_ref().map(|s| &s.key_id))
                    .bind(c.created_at)
                    .bind(c.updated_at)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn delete_connection(
                    &self,
                    tx: &mut dyn Tx,
                    name: &str,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query("DELETE FROM federation_connections WHERE name = $1")
                        .bind(name)
                        .execute(Self::conn(tx).await?)
                        .await
                        .map_err(Self::store_err)?;
                    Ok(done.rows_affected() > 0)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn put_provider_tokens(
                    &self,
                    tx: &mut dyn Tx,
                    login_id: Uuid,
                    sealed: &Sealed,
                    at: OffsetDateTime,
                ) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "INSERT INTO provider_tokens (login_id, sealed, key_id, updated_at)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (login_id) DO UPDATE SET sealed = excluded.sealed,
                             key_id = excluded.key_id, updated_at = excluded.updated_at",
                    )
                    .bind(login_id)
                    .bind(&sealed.blob)
                    .bind(&sealed.key_id)
                    .bind(at)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn list_provider_tokens(&self) -> Result<Vec<(Uuid, Sealed)>, StoreError> {
                    let rows: Vec<(Uuid, Vec<u8>, String)> = ::sqlx::query_as(
                        "SELECT login_id, sealed, key_id FROM provider_tokens ORDER BY login_id",
                    )
                    .fetch_all(self.reader())
                    .await
                    .map_err(Self::store_err)?;
                    Ok(rows
                        .into_iter()
                        .map(|(id, blob, key_id)| (id, Sealed { blob, key_id }))
                        .collect())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn get_provider_tokens(
                    &self,
                    login_id: Uuid,
                ) -> Result<Option<Sealed>, StoreError> {
                    let row: Option<(Vec<u8>, String)> = ::sqlx::query_as(
                        "SELECT sealed, key_id FROM provider_tokens WHERE login_id = $1",
                    )
                    .bind(login_id)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(Self::store_err)?;
                    Ok(row.map(|(blob, key_id)| Sealed { blob, key_id }))
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn delete_expired_flows(
                    &self,
                    before: OffsetDateTime,
                ) -> Result<u64, StoreError> {
                    let done = ::sqlx::query(
                        "DELETE FROM federation_flows
                         WHERE expires_at < $1
                           AND (login_code_expires_at IS NULL OR login_code_expires_at < $1)",
                    )
                    .bind(before)
                    .execute(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected())
                }
            }
        };
    };
}
