//! `VerificationCodeStore` on SQLite.

use crate::{SqliteStore, conn, map_err};
use async_trait::async_trait;
use sesame_core::{StoreError, Tx};
use sesame_credentials::{CodePurpose, LoginType, VerificationCode, VerificationCodeStore};
use sesame_store_sql::verification_code as code;
use time::OffsetDateTime;
use uuid::Uuid;

#[async_trait]
impl VerificationCodeStore for SqliteStore {
    async fn replace_code(&self, c: &VerificationCode) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO verification_codes
                 (id, purpose, login_type, identifier, subject, code_hash, attempts, created_at, expires_at, consumed_at)
             VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, NULL)
             ON CONFLICT (purpose, login_type, identifier, subject) DO UPDATE SET
                 id = excluded.id, code_hash = excluded.code_hash, attempts = 0,
                 created_at = excluded.created_at, expires_at = excluded.expires_at, consumed_at = NULL",
        )
        .bind(c.id)
        .bind(c.purpose.as_str())
        .bind(c.login_type.as_str())
        .bind(&c.identifier)
        .bind(&c.subject)
        .bind(&c.code_hash)
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn find_code(
        &self,
        purpose: CodePurpose,
        login_type: LoginType,
        identifier: &str,
        subject: &str,
    ) -> Result<Option<VerificationCode>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM verification_codes
             WHERE purpose = ? AND login_type = ? AND identifier = ? AND subject = ?",
        )
        .bind(purpose.as_str())
        .bind(login_type.as_str())
        .bind(identifier)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(code).transpose().map_err(map_err)
    }

    async fn claim_code_try(
        &self,
        purpose: CodePurpose,
        login_type: LoginType,
        identifier: &str,
        subject: &str,
        max_attempts: i64,
    ) -> Result<Option<VerificationCode>, StoreError> {
        let row = sqlx::query(
            "UPDATE verification_codes SET attempts = attempts + 1
             WHERE purpose = ? AND login_type = ? AND identifier = ? AND subject = ?
               AND consumed_at IS NULL AND attempts < ?
             RETURNING *",
        )
        .bind(purpose.as_str())
        .bind(login_type.as_str())
        .bind(identifier)
        .bind(subject)
        .bind(max_attempts)
        .fetch_optional(&self.writer)
        .await
        .map_err(map_err)?;
        row.as_ref().map(code).transpose().map_err(map_err)
    }

    async fn consume_code(
        &self,
        tx: &mut dyn Tx,
        id: Uuid,
        max_attempts: i64,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE verification_codes SET consumed_at = ?
             WHERE id = ? AND consumed_at IS NULL AND attempts <= ?",
        )
        .bind(at)
        .bind(id)
        .bind(max_attempts)
        .execute(conn(tx)?)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }
}
