//! `ErasureStore`.

/// Stamps the erasure store for a backend.
#[doc(hidden)]
#[macro_export]
macro_rules! __erasure_store {
    ($store:ty) => {
        const _: () = {
            use ::async_trait::async_trait;
            use ::sesame_core::{PrincipalId, SessionId, StoreError, Tx};
            use ::sesame_credentials::ErasureStore;
            use ::time::OffsetDateTime;
            use ::uuid::Uuid;
            use $crate::SqlBackend as _;

            #[async_trait]
            impl ErasureStore for $store {
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn erase_principal(
                    &self,
                    tx: &mut dyn Tx,
                    id: PrincipalId,
                    at: OffsetDateTime,
                ) -> Result<Option<Vec<SessionId>>, StoreError> {
                    let conn = Self::conn(tx).await?;
                    let tombstoned = ::sqlx::query(
                        "UPDATE principals SET deleted_at = $1, updated_at = $1, is_active = FALSE,
                             failed_attempts = 0, locked_until = NULL, last_login_at = NULL
                         WHERE id = $2 AND deleted_at IS NULL",
                    )
                    .bind(at)
                    .bind(id.0)
                    .execute(&mut *conn)
                    .await
                    .map_err(Self::store_err)?;
                    if tombstoned.rows_affected() == 0 {
                        return Ok(None);
                    }
                    let sessions: Vec<Uuid> =
                        ::sqlx::query_scalar("DELETE FROM sessions WHERE principal_id = $1 RETURNING id")
                            .bind(id.0)
                            .fetch_all(&mut *conn)
                            .await
                            .map_err(Self::store_err)?;
                    // Sign-in attempts name the identifiers; verification codes
                    // are keyed by them, and go with the login methods.
                    ::sqlx::query(
                        "DELETE FROM login_attempts WHERE principal_id = $1
                            OR (login_type, identifier) IN
                               (SELECT login_type, identifier FROM login_methods WHERE principal_id = $1)",
                    )
                    .bind(id.0)
                    .execute(&mut *conn)
                    .await
                    .map_err(Self::store_err)?;
                    ::sqlx::query(
                        "DELETE FROM verification_codes WHERE (login_type, identifier) IN
                            (SELECT login_type, identifier FROM login_methods WHERE principal_id = $1)",
                    )
                    .bind(id.0)
                    .execute(&mut *conn)
                    .await
                    .map_err(Self::store_err)?;
                    for table in [
                        "login_methods",
                        "passwords",
                        "password_history",
                        "totp_factors",
                        "backup_codes",
                        "mfa_challenges",
                        "passkeys",
                        "security_keys",
                        "webauthn_ceremonies",
                        "role_assignments",
                    ] {
                        ::sqlx::query(::sqlx::AssertSqlSafe(format!(
                            "DELETE FROM {table} WHERE principal_id = $1"
                        )))
                        .bind(id.0)
                        .execute(&mut *conn)
                        .await
                        .map_err(Self::store_err)?;
                    }
                    ::sqlx::query(
                        "UPDATE audit_log SET ip = NULL, user_agent = NULL, data = $1 WHERE principal_id = $2",
                    )
                    .bind(::sqlx::types::Json(::std::collections::BTreeMap::<String, String>::new()))
                    .bind(id.0)
                    .execute(&mut *conn)
                    .await
                    .map_err(Self::store_err)?;
                    Self::scrub_events(&mut *conn, id).await?;
                    self.erase_profile(tx, id).await?;
                    Ok(Some(sessions.into_iter().map(SessionId).collect()))
                }
            }
        };
    };
}
