//! `AccessStore`: roles, role assignments and service API keys.

/// Stamps the access store for a backend.
#[doc(hidden)]
#[macro_export]
macro_rules! __access_store {
    ($store:ty) => {
        const _: () = {
            use ::async_trait::async_trait;
            use ::sesame_core::{PrincipalId, StoreError, Tx};
            use ::sesame_credentials::{AccessStore, ApiKeyRecord, Role};
            use ::time::OffsetDateTime;
            use ::uuid::Uuid;
            use $crate::SqlBackend as _;

            #[async_trait]
            impl AccessStore for $store {
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn put_role(&self, tx: &mut dyn Tx, role: &Role) -> Result<Role, StoreError> {
                    let row = ::sqlx::query(
                        "INSERT INTO roles (name, permissions, created_at, updated_at) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (name) DO UPDATE SET permissions = excluded.permissions, updated_at = excluded.updated_at
                         RETURNING *",
                    )
                    .bind(&role.name)
                    .bind(::sqlx::types::Json(&role.permissions))
                    .bind(role.created_at)
                    .bind(role.updated_at)
                    .fetch_one(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    $crate::role(&row).map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn delete_role(&self, tx: &mut dyn Tx, name: &str) -> Result<bool, StoreError> {
                    let done = ::sqlx::query("DELETE FROM roles WHERE name = $1")
                        .bind(name)
                        .execute(Self::conn(tx).await?)
                        .await
                        .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn list_roles(&self) -> Result<Vec<Role>, StoreError> {
                    let rows = ::sqlx::query("SELECT * FROM roles ORDER BY name")
                        .fetch_all(self.reader())
                        .await
                        .map_err(Self::store_err)?;
                    rows.iter().map($crate::role).collect::<Result<_, _>>().map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn assign_role(
                    &self,
                    tx: &mut dyn Tx,
                    principal: PrincipalId,
                    role: &str,
                    by: Option<PrincipalId>,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query(
                        "INSERT INTO role_assignments (principal_id, role, assigned_by, assigned_at)
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    )
                    .bind(principal.0)
                    .bind(role)
                    .bind(by.map(|p| p.0))
                    .bind(at)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn revoke_role(
                    &self,
                    tx: &mut dyn Tx,
                    principal: PrincipalId,
                    role: &str,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query("DELETE FROM role_assignments WHERE principal_id = $1 AND role = $2")
                        .bind(principal.0)
                        .bind(role)
                        .execute(Self::conn(tx).await?)
                        .await
                        .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn roles_of(&self, principal: PrincipalId) -> Result<Vec<Role>, StoreError> {
                    let rows = ::sqlx::query(
                        "SELECT r.* FROM role_assignments a JOIN roles r ON r.name = a.role
                         WHERE a.principal_id = $1 ORDER BY r.name",
                    )
                    .bind(principal.0)
                    .fetch_all(self.reader())
                    .await
                    .map_err(Self::store_err)?;
                    rows.iter().map($crate::role).collect::<Result<_, _>>().map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn insert_api_key(&self, tx: &mut dyn Tx, k: &ApiKeyRecord) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "INSERT INTO api_keys
                             (id, key_id, secret_hash, name, scopes, created_by, created_at, expires_at,
                              last_used_at, revoked_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(k.id)
                    .bind(&k.key_id)
                    .bind(&k.secret_hash)
                    .bind(&k.name)
                    .bind(::sqlx::types::Json(&k.scopes))
                    .bind(k.created_by.map(|p| p.0))
                    .bind(k.created_at)
                    .bind(k.expires_at)
                    .bind(k.last_used_at)
                    .bind(k.revoked_at)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn find_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
                    let row = ::sqlx::query("SELECT * FROM api_keys WHERE key_id = $1")
                        .bind(key_id)
                        .fetch_optional(self.reader())
                        .await
                        .map_err(Self::store_err)?;
                    row.as_ref().map($crate::api_key).transpose().map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
                    let rows = ::sqlx::query("SELECT * FROM api_keys ORDER BY id DESC")
                        .fetch_all(self.reader())
                        .await
                        .map_err(Self::store_err)?;
                    rows.iter().map($crate::api_key).collect::<Result<_, _>>().map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn revoke_api_key(
                    &self,
                    tx: &mut dyn Tx,
                    id: Uuid,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                        .bind(at)
                        .bind(id)
                        .execute(Self::conn(tx).await?)
                        .await
                        .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn touch_api_key(
                    &self,
                    id: Uuid,
                    at: OffsetDateTime,
                    unless_since: OffsetDateTime,
                ) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "UPDATE api_keys SET last_used_at = $1
                         WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
                    )
                    .bind(at)
                    .bind(id)
                    .bind(unless_since)
                    .execute(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }
            }
        };
    };
}
