//! `ProfileStore` on SQLite.

use crate::{SqliteStore, conn, map_err};
use async_trait::async_trait;
use sesame_core::{PrincipalId, StoreError, Tx};
use sesame_identity::{Profile, ProfilePatch, ProfileStore};
use sesame_store_sql::profile;
use time::OffsetDateTime;

#[async_trait]
impl ProfileStore for SqliteStore {
    async fn insert_profile(&self, tx: &mut dyn Tx, p: &Profile) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, display_name, avatar_url, bio, locale, status, metadata, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(p.id.0)
        .bind(&p.display_name)
        .bind(&p.avatar_url)
        .bind(&p.bio)
        .bind(&p.locale)
        .bind(&p.status)
        .bind(p.metadata.to_string())
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(conn(tx)?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn insert_profiles(
        &self,
        tx: &mut dyn Tx,
        profiles: &[Profile],
    ) -> Result<(), StoreError> {
        crate::import::insert_profiles(crate::conn(tx)?, profiles).await
    }

    async fn get_profile(&self, id: PrincipalId) -> Result<Profile, StoreError> {
        let row = sqlx::query(
            "SELECT id, display_name, avatar_url, bio, locale, status, metadata, created_at, updated_at
             FROM users WHERE id = ?",
        ).bind(id.0).fetch_one(&self.pool).await.map_err(map_err)?;
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
            "UPDATE users SET
                display_name = CASE WHEN ? THEN ? ELSE display_name END,
                avatar_url   = CASE WHEN ? THEN ? ELSE avatar_url END,
                bio          = CASE WHEN ? THEN ? ELSE bio END,
                locale       = CASE WHEN ? THEN ? ELSE locale END,
                updated_at   = ?
             WHERE id = ?
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
        .fetch_one(conn(tx)?)
        .await
        .map_err(map_err)?;
        profile(&row).map_err(map_err)
    }
}
