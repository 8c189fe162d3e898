//! What PostgreSQL does differently from the shared stores of
//! `sesame-store-sql`: the identity side may be another pool (split mode), a
//! principal's login methods are serialised with `FOR UPDATE`, a rotation is
//! one statement (a CTE), every instance relays the outbox under a lease taken
//! with `SKIP LOCKED`, and bulk inserts pass arrays (`UNNEST`, [`crate::import`]).

use crate::{PgStore, map_err, pg_tx};
use sesame_core::{PrincipalId, StoreError, Tx};
use sesame_credentials::RefreshToken;
use sesame_identity::Profile;
use sesame_store_sql::{Later, Ran, SqlBackend};
use sqlx::postgres::PgQueryResult;
use sqlx::{PgConnection, PgPool, Postgres};
use time::OffsetDateTime;
use uuid::Uuid;

sesame_store_sql::stamp_stores!(PgStore);

impl SqlBackend for PgStore {
    type Db = Postgres;
    const SKIP_LOCKED: &'static str = "FOR UPDATE SKIP LOCKED";

    type Pool = PgPool;
    type Returned = sqlx::postgres::PgRow;

    fn reader(&self) -> &PgPool {
        &self.credentials
    }

    fn writer(&self) -> &PgPool {
        &self.credentials
    }

    fn profiles(&self) -> &PgPool {
        &self.identity
    }

    fn profile_writer(&self) -> &PgPool {
        &self.identity
    }

    async fn conn(tx: &mut dyn Tx) -> Result<&mut PgConnection, StoreError> {
        Ok(&mut *pg_tx(tx)?.credentials)
    }

    async fn later(tx: &mut dyn Tx, write: Later) -> Result<(), StoreError> {
        // Nothing waits for a commit here: the write runs now.
        Self::run(tx, write).await.map(drop)
    }

    async fn run(
        tx: &mut dyn Tx,
        statement: Later,
    ) -> Result<Ran<sqlx::postgres::PgRow>, StoreError> {
        statement
            .run_after(
                Vec::new(),
                Self::conn(tx).await?,
                PgQueryResult::rows_affected,
            )
            .await
            .map_err(map_err)
    }

    async fn read_one(
        &self,
        statement: Later,
    ) -> Result<Option<sqlx::postgres::PgRow>, StoreError> {
        statement
            .query()
            .fetch_optional(&self.credentials)
            .await
            .map_err(map_err)
    }

    async fn run_alone(&self, statement: Later) -> Result<Ran<sqlx::postgres::PgRow>, StoreError> {
        statement
            .run_after(Vec::new(), &self.credentials, PgQueryResult::rows_affected)
            .await
            .map_err(map_err)
    }

    async fn identity_conn<'t>(
        &self,
        tx: &'t mut dyn Tx,
    ) -> Result<&'t mut PgConnection, StoreError> {
        self.identity_side(tx).await
    }

    fn store_err(err: sqlx::Error) -> StoreError {
        map_err(err)
    }

    async fn lock_principal(conn: &mut PgConnection, id: PrincipalId) -> Result<(), StoreError> {
        sqlx::query("SELECT 1 FROM principals WHERE id = $1 FOR UPDATE")
            .bind(id.0)
            .execute(conn)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn rotate_refresh(
        &self,
        used: Uuid,
        next: &RefreshToken,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // One statement, so one round trip and atomic on its own: the successor
        // is inserted only if this statement is the one that marked `used`.
        let row = sqlx::query(
            "WITH used AS (
                 UPDATE refresh_tokens SET used_at = $2
                 WHERE id = $1 AND used_at IS NULL RETURNING id
             )
             INSERT INTO refresh_tokens
                 (id, session_id, token_hash, parent_id, used_at, created_at, expires_at,
                  secret_sealed, secret_key_id)
             SELECT $3, $4, $5, $6, NULL, $7, $8, $9, $10 FROM used
             RETURNING id",
        )
        .bind(used)
        .bind(at)
        .bind(next.id)
        .bind(next.session_id.0)
        .bind(&next.token_hash)
        .bind(next.parent_id)
        .bind(next.created_at)
        .bind(next.expires_at)
        .bind(next.secret_sealed.as_ref().map(|s| s.blob.clone()))
        .bind(next.secret_sealed.as_ref().map(|s| s.key_id.clone()))
        .fetch_optional(&self.credentials)
        .await
        .map_err(map_err)?;
        Ok(row.is_some())
    }

    async fn scrub_events(
        conn: &mut PgConnection,
        principal: PrincipalId,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET payload = jsonb_set(payload, '{data}', '{}'::jsonb)
             WHERE payload->>'subject' = $1",
        )
        .bind(principal.to_string())
        .execute(conn)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn erase_profile(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
    ) -> Result<(), StoreError> {
        if self.is_split() {
            return Ok(());
        }
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(principal.0)
            .execute(self.identity_side(tx).await?)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn insert_profile_batch(
        conn: &mut PgConnection,
        profiles: &[Profile],
    ) -> Result<(), StoreError> {
        crate::import::insert_profiles(conn, profiles).await
    }
}
