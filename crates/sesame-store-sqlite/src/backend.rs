//! What SQLite does differently from the shared stores of `sesame-store-sql`:
//! reads on the pool and writes queued for the one writer connection, no row
//! locks (a write transaction already holds the database's only write lock),
//! refresh-token rotations committed in groups ([`crate::rotation`]), one relay
//! per file (no outbox lease), and multi-row `VALUES` for bulk inserts
//! ([`crate::import`]).

use crate::{Connections, SqliteStore, SqliteTx, map_err};
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

    async fn run(tx: &mut dyn Tx, statement: Later) -> Result<Ran<Sqlite>, StoreError> {
        SqliteTx::of(tx)?.run(statement).await
    }

    async fn later(tx: &mut dyn Tx, write: Later) -> Result<(), StoreError> {
        SqliteTx::of(tx)?.held.push(write);
        Ok(())
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
        self.rotator.rotate(used, next, at).await
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
