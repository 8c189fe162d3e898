//! `ProfileStore` (the identity domain).

/// Stamps the profile store for a backend.
#[doc(hidden)]
#[macro_export]
macro_rules! __profile_store {
    ($store:ty) => {
        const _: () = {
            use ::async_trait::async_trait;
            use ::sesame_core::{PrincipalId, StoreError, Tx};
            use ::sesame_identity::{Profile, ProfilePatch, ProfileStore};
            use ::time::OffsetDateTime;
            use $crate::SqlBackend as _;

            #[async_trait]
            impl ProfileStore for $store {
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn insert_profile(&self, tx: &mut dyn Tx, p: &Profile) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "INSERT INTO users (id, display_name, avatar_url, bio, locale, status, metadata, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(p.id.0)
                    .bind(&p.display_name)
                    .bind(&p.avatar_url)
                    .bind(&p.bio)
                    .bind(&p.locale)
                    .bind(&p.status)
                    .bind(::sqlx::types::Json(&p.metadata))
                    .bind(p.created_at)
                    .bind(p.updated_at)
                    .execute(self.identity_conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn insert_profiles(
                    &self,
                    tx: &mut dyn Tx,
                    profiles: &[Profile],
                ) -> Result<(), StoreError> {
                    Self::insert_profile_batch(self.identity_conn(tx).await?, profiles).await
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn find_by_display_name_prefix(
                    &self,
                    prefix: &str,
                    after: Option<PrincipalId>,
                    limit: i64,
                ) -> Result<Vec<PrincipalId>, StoreError> {
                    // The prefix is matched literally: LIKE's wildcards escaped.
                    let pattern = format!(
                        "{}%",
                        prefix.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
                    );
                    let ids: Vec<::uuid::Uuid> = ::sqlx::query_scalar(
                        "SELECT id FROM users WHERE lower(display_name) LIKE $1 ESCAPE '\\'
                           AND ($2 IS NULL OR id > $2)
                         ORDER BY id LIMIT $3",
                    )
                    .bind(pattern)
                    .bind(after.map(|p| p.0))
                    .bind(limit)
                    .fetch_all(self.profiles())
                    .await
                    .map_err(Self::store_err)?;
                    Ok(ids.into_iter().map(PrincipalId).collect())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn delete_profile(&self, id: PrincipalId) -> Result<bool, StoreError> {
                    let done = ::sqlx::query("DELETE FROM users WHERE id = $1")
                        .bind(id.0)
                        .execute(self.profile_writer())
                        .await
                        .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn get_profile(&self, id: PrincipalId) -> Result<Profile, StoreError> {
                    let row = ::sqlx::query(
                        "SELECT id, display_name, avatar_url, bio, locale, status, metadata, created_at, updated_at
                         FROM users WHERE id = $1",
                    )
                    .bind(id.0)
                    .fetch_one(self.profiles())
                    .await
                    .map_err(Self::store_err)?;
                    $crate::profile(&row).map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn update_profile(
                    &self,
                    tx: &mut dyn Tx,
                    id: PrincipalId,
                    patch: &ProfilePatch,
                    now: OffsetDateTime,
                ) -> Result<Profile, StoreError> {
                    // Each field: kept when absent (flag false), otherwise set (possibly to NULL).
                    let row = ::sqlx::query(
                        "UPDATE users SET
                            display_name = CASE WHEN CAST($1 AS BOOLEAN) THEN $2 ELSE display_name END,
                            avatar_url   = CASE WHEN CAST($3 AS BOOLEAN) THEN $4 ELSE avatar_url END,
                            bio          = CASE WHEN CAST($5 AS BOOLEAN) THEN $6 ELSE bio END,
                            locale       = CASE WHEN CAST($7 AS BOOLEAN) THEN $8 ELSE locale END,
                            updated_at   = $9
                         WHERE id = $10
                         RETURNING id, display_name, avatar_url, bio, locale, status, metadata, created_at, updated_at",
                    )
                    .bind(patch.display_name.is_some())
                    .bind(patch.display_name.clone().flatten())
                    .bind(patch.avatar_url.is_some())
                    .bind(patch.avatar_url.clone().flatten())
                    .bind(patch.bio.is_some())
                    .bind(patch.bio.clone().flatten())
                    .bind(patch.locale.is_some())
                    .bind(patch.locale.clone().flatten())
                    .bind(now)
                    .bind(id.0)
                    .fetch_one(self.identity_conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    $crate::profile(&row).map_err(Self::store_err)
                }
            }
        };
    };
}
