//! `ProfileStore` on PostgreSQL.

use crate::{PgStore, map_err};
use async_trait::async_trait;
use sesame_core::{PrincipalId, StoreError, Tx};
use sesame_identity::{Profile, ProfilePatch, ProfileStore};
use sesame_store_sql::profile;
use time::OffsetDateTime;

#[async_trait]
impl ProfileStore for PgStore {
    async fn insert_profile(&self, tx: &mut dyn Tx, p: &Profile) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO identity.users (id, display_name, avatar_url, bio, locale, status, metadata, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(p.id.0)
        .bind(&p.display_name)
        .bind(&p.avatar_url)
        .bind(&p.bio)
        .bind(&p.locale)
        .bind(&p.status)
        .bind(&p.metadata)
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(self.identity_conn(tx).await?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn insert_profiles(
        &self,
        tx: &mut dyn Tx,
        profiles: &[Profile],
    ) -> Result<(), StoreError> {
        crate::import::insert_profiles(self.identity_conn(tx).await?, profiles).await
    }

    async fn get_profile(&self, id: PrincipalId) -> Result<Profile, StoreError> {
        let row = sqlx::query(
            "SELECT id, display_name, avatar_url, bio, locale, status, metadata, created_at, updated_at
             FROM identity.users WHERE id = $1",
        ).bind(id.0).fetch_one(&self.identity).await.map_err(map_err)?;
        profile(&row).map_err(map_err)
    }

    async fn update_profile(
        &self,
        tx: &mut dyn Tx,
        id: PrincipalId,
        patch: &ProfilePatch,
        now: OffsetDateTime,
    ) -> Result<Profile, StoreError> {
        // Each field: keep when absent (flag 0), otherwise set (possibly to NULL).
        let row = sqlx::query(
            "UPDATE identity.users SET
                display_name = CASE WHEN $1::boolean THEN $2 ELSE display_name END,
                avatar_url   = CASE WHEN $3::boolean THEN $4 ELSE avatar_url END,
                bio          = CASE WHEN $5::boolean THEN $6 ELSE bio END,
                locale       = CASE WHEN $7::boolean THEN $8 ELSE locale END,
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
        .map_err(map_err)?;
        profile(&row).map_err(map_err)
    }
}
