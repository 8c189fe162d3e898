//! What SQLite does differently from the shared stores of `sesame-store-sql`:
//! reads on the pool and writes queued for the one writer connection, no row
//! locks (a write transaction already holds the database's only write lock),
//! writes that stand alone (refresh-token rotations, WebAuthn ceremonies)
//! committed in groups ([`crate::group`]), one relay per file (no outbox
//! lease), and multi-row `VALUES` for bulk inserts ([`crate::import`]).

use crate::{Connections, Returned, SqliteStore, SqliteTx, map_err};
use sesame_core::{PrincipalId, StoreError, Tx};
use sesame_credentials::RefreshToken;
use sesame_identity::Profile;
use sesame_store_sql::{Later, Ran, SqlBackend};
use sqlx::{Sqlite, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;

sesame_store_sql::stamp_stores!(SqliteStore);

impl SqlBackend for SqliteStore {
    type Db = Sqlite;
    const SKIP_LOCKED: &'static str = "";

    type Pool = Connections;
    type Returned = Returned;

    fn reader(&self) -> &Connections {
        &self.readers
    }

    fn writer(&self) -> &Connections {
        &self.writer
    }

    fn profiles(&self) -> &Connections {
        &self.readers
    }

    fn profile_writer(&self) -> &Connections {
        &self.writer
    }

    async fn conn(tx: &mut dyn Tx) -> Result<&mut SqliteConnection, StoreError> {
        SqliteTx::of(tx)?.conn().await
    }

    async fn run(tx: &mut dyn Tx, statement: Later) -> Result<Ran<Returned>, StoreError> {
        SqliteTx::of(tx)?.run(statement).await
    }

    async fn later(tx: &mut dyn Tx, write: Later) -> Result<(), StoreError> {
        SqliteTx::of(tx)?.held.push(write);
        Ok(())
    }

    async fn read_one(&self, statement: Later) -> Result<Option<Returned>, StoreError> {
        // Point reads end with the readers' pool, as every other read does.
        if self.readers.is_closed() {
            return Err(map_err(sqlx::Error::PoolClosed));
        }
        let row = self.point_reads.read_one(&statement)?;
        Ok(row.map(Returned::Direct))
    }

    async fn run_alone(&self, statement: Later) -> Result<Ran<Returned>, StoreError> {
        self.grouper.write_one(statement).await
    }

    async fn identity_conn<'t>(
        &self,
        tx: &'t mut dyn Tx,
    ) -> Result<&'t mut SqliteConnection, StoreError> {
        Self::conn(tx).await
    }

    fn store_err(err: sqlx::Error) -> StoreError {
        map_err(err)
    }

    async fn lock_principal(_: &mut SqliteConnection, _: PrincipalId) -> Result<(), StoreError> {
        Ok(())
    }

    async fn rotate_refresh(
        &self,
        used: Uuid,
        next: &RefreshToken,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // The successor is stored only when this unit's update marked the
        // used token (`changes() = 1`).
        let mark =
            Later::new("UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
                .arg(at)
                .arg(used);
        let sealed = next.secret_sealed.as_ref();
        let store = Later::new(
            "INSERT INTO refresh_tokens (id, session_id, token_hash, parent_id, used_at, created_at, expires_at,
                                         secret_sealed, secret_key_id)
             SELECT $1, $2, $3, $4, NULL, $5, $6, $7, $8 WHERE changes() = 1 RETURNING id",
        )
        .arg(next.id)
        .arg(next.session_id.0)
        .arg(next.token_hash.as_slice())
        .arg(next.parent_id)
        .arg(next.created_at)
        .arg(next.expires_at)
        .arg(sealed.map(|s| s.blob.as_slice()))
        .arg(sealed.map(|s| s.key_id.as_str()));
        let ran = self.grouper.write(vec![mark, store]).await?;
        Ok(ran.last().is_some_and(|stored| !stored.rows.is_empty()))
    }

    async fn scrub_events(
        conn: &mut SqliteConnection,
        principal: PrincipalId,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET payload = json_set(payload, '$.data', json('{}'))
             WHERE json_extract(payload, '$.subject') = $1",
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
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(principal.0)
            .execute(Self::conn(tx).await?)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn insert_profile_batch(
        conn: &mut SqliteConnection,
        profiles: &[Profile],
    ) -> Result<(), StoreError> {
        crate::import::insert_profiles(conn, profiles).await
    }
}
