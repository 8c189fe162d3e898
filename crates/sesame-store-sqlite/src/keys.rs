//! `SigningKeyStore` and `AuditStore` on SQLite.

use crate::{SqliteStore, conn, map_err};
use async_trait::async_trait;
use sesame_core::{StoreError, Tx};
use sesame_credentials::{AuditEntry, AuditStore, Sealed, SigningKeyRecord, SigningKeyStore};
use sesame_store_sql::signing_key;
use time::OffsetDateTime;

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn insert_signing_key(
        &self,
        tx: &mut dyn Tx,
        k: &SigningKeyRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key_sealed, master_key_id, public_jwk, created_at, activated_at, retired_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&k.kid)
        .bind(&k.alg)
        .bind(&k.private_key_sealed.blob)
        .bind(&k.private_key_sealed.key_id)
        .bind(k.public_jwk.to_string())
        .bind(k.created_at)
        .bind(k.activated_at)
        .bind(k.retired_at)
        .execute(conn(tx)?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn retire_signing_key(
        &self,
        tx: &mut dyn Tx,
        kid: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE signing_keys SET retired_at = ? WHERE kid = ?")
            .bind(at)
            .bind(kid)
            .execute(conn(tx)?)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn reseal_signing_key(
        &self,
        tx: &mut dyn Tx,
        kid: &str,
        sealed: &Sealed,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE signing_keys SET private_key_sealed = ?, master_key_id = ? WHERE kid = ?",
        )
        .bind(&sealed.blob)
        .bind(&sealed.key_id)
        .bind(kid)
        .execute(conn(tx)?)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(signing_key)
            .collect::<Result<_, _>>()
            .map_err(map_err)
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, tx: &mut dyn Tx, e: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (id, principal_id, event, ip, user_agent, data, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(e.id)
        .bind(e.principal_id.map(|p| p.0))
        .bind(&e.event)
        .bind(&e.ip)
        .bind(&e.user_agent)
        .bind(e.data.to_string())
        .bind(e.at)
        .execute(conn(tx)?)
        .await
        .map_err(map_err)?;
        Ok(())
    }
}
