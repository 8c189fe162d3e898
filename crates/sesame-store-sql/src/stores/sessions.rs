//! `SessionStore`; the rotation path is the backend's own.

/// Stamps the session store for a backend.
#[doc(hidden)]
#[macro_export]
macro_rules! __session_store {
    ($store:ty) => {
        const _: () = {
            use ::async_trait::async_trait;
            use ::sesame_core::{PrincipalId, SessionId, StoreError, Tx};
            use ::sesame_credentials::{RefreshToken, Session, SessionStore};
            use ::time::OffsetDateTime;
            use ::uuid::Uuid;
            use $crate::SqlBackend as _;

            #[async_trait]
            impl SessionStore for $store {
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn insert_session(&self, tx: &mut dyn Tx, s: &Session) -> Result<(), StoreError> {
                    let write = $crate::Later::new(
                        "INSERT INTO sessions (id, principal_id, principal_kind, aal, amr, ip, user_agent,
                                               created_at, last_seen_at, expires_at, revoked_at, revoke_reason, proven_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    )
                    .arg(s.id.0)
                    .arg(s.principal_id.0)
                    .arg(&s.principal_kind)
                    .arg(&s.aal)
                    .json(&s.amr)?
                    .arg(&s.ip)
                    .arg(&s.user_agent)
                    .arg(s.created_at)
                    .arg(s.last_seen_at)
                    .arg(s.expires_at)
                    .arg(s.revoked_at)
                    .arg(&s.revoke_reason)
                    .arg(s.proven_at);
                    Self::later(tx, write).await
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn get_session(&self, id: SessionId) -> Result<Session, StoreError> {
                    let row = ::sqlx::query("SELECT * FROM sessions WHERE id = $1")
                        .bind(id.0)
                        .fetch_one(self.reader())
                        .await
                        .map_err(Self::store_err)?;
                    $crate::session(&row).map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn list_active_sessions(
                    &self,
                    principal: PrincipalId,
                    now: OffsetDateTime,
                ) -> Result<Vec<Session>, StoreError> {
                    let rows = ::sqlx::query(
                        "SELECT s.id, s.principal_id, s.principal_kind, s.aal, s.amr, s.ip, s.user_agent,
                                s.created_at, s.expires_at, s.revoked_at, s.revoke_reason, s.proven_at,
                                COALESCE((SELECT r.created_at FROM refresh_tokens r WHERE r.session_id = s.id
                                          ORDER BY r.id DESC LIMIT 1), s.last_seen_at) AS last_seen_at
                         FROM sessions s WHERE s.principal_id = $1 AND s.revoked_at IS NULL ORDER BY s.id DESC",
                    )
                    .bind(principal.0)
                    .fetch_all(self.reader())
                    .await
                    .map_err(Self::store_err)?;
                    let sessions: Vec<Session> = rows
                        .iter()
                        .map($crate::session)
                        .collect::<Result<_, _>>()
                        .map_err(Self::store_err)?;
                    Ok(sessions.into_iter().filter(|s| s.is_active(now)).collect())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn mark_session_proven(
                    &self,
                    id: SessionId,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query(
                        "UPDATE sessions SET proven_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                    )
                    .bind(at)
                    .bind(id.0)
                    .execute(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn upgrade_session(
                    &self,
                    tx: &mut dyn Tx,
                    id: SessionId,
                    aal: &str,
                    amr: &[String],
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query(
                        "UPDATE sessions SET aal = $1, amr = $2, proven_at = $3
                         WHERE id = $4 AND revoked_at IS NULL AND expires_at > $3",
                    )
                    .bind(aal)
                    .bind(::sqlx::types::Json(amr))
                    .bind(at)
                    .bind(id.0)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn revoke_sessions_beyond(
                    &self,
                    tx: &mut dyn Tx,
                    principal: PrincipalId,
                    keep: i64,
                    at: OffsetDateTime,
                ) -> Result<Vec<SessionId>, StoreError> {
                    let revoke = $crate::Later::new(
                        "UPDATE sessions SET revoked_at = $1, revoke_reason = 'session_limit'
                         WHERE principal_id = $2 AND revoked_at IS NULL
                           AND id <= (SELECT id FROM sessions
                                      WHERE principal_id = $2 AND revoked_at IS NULL
                                      ORDER BY id DESC LIMIT 1 OFFSET $3)
                         RETURNING id",
                    )
                    .arg(at)
                    .arg(principal.0)
                    .arg(keep);
                    Self::run(tx, revoke)
                        .await?
                        .rows
                        .iter()
                        .map(|row| $crate::Columns::uuid(row, "id").map(SessionId))
                        .collect::<Result<_, _>>()
                        .map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn revoke_session(
                    &self,
                    tx: &mut dyn Tx,
                    id: SessionId,
                    reason: &str,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = ::sqlx::query(
                        "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
                    )
                    .bind(at)
                    .bind(reason)
                    .bind(id.0)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn revoke_sessions_of(
                    &self,
                    tx: &mut dyn Tx,
                    principal: PrincipalId,
                    keep: Option<SessionId>,
                    reason: &str,
                    at: OffsetDateTime,
                ) -> Result<Vec<SessionId>, StoreError> {
                    let ids: Vec<Uuid> = ::sqlx::query_scalar(
                        "UPDATE sessions SET revoked_at = $1, revoke_reason = $2
                         WHERE principal_id = $3 AND revoked_at IS NULL AND id IS DISTINCT FROM $4
                         RETURNING id",
                    )
                    .bind(at)
                    .bind(reason)
                    .bind(principal.0)
                    .bind(keep.map(|k| k.0))
                    .fetch_all(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(ids.into_iter().map(SessionId).collect())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn insert_refresh_token(
                    &self,
                    tx: &mut dyn Tx,
                    t: &RefreshToken,
                ) -> Result<(), StoreError> {
                    let write = $crate::Later::new(
                        "INSERT INTO refresh_tokens (id, session_id, token_hash, parent_id, used_at, created_at, expires_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .arg(t.id)
                    .arg(t.session_id.0)
                    .arg(t.token_hash.as_slice())
                    .arg(t.parent_id)
                    .arg(t.used_at)
                    .arg(t.created_at)
                    .arg(t.expires_at);
                    Self::later(tx, write).await
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn find_refresh_token(
                    &self,
                    hash: &[u8],
                ) -> Result<Option<(RefreshToken, Session)>, StoreError> {
                    let row = ::sqlx::query(
                        "SELECT s.*, r.id AS r_id, r.token_hash AS r_token_hash, r.parent_id AS r_parent_id,
                                r.used_at AS r_used_at, r.created_at AS r_created_at, r.expires_at AS r_expires_at,
                                r.secret_sealed AS r_secret_sealed, r.secret_key_id AS r_secret_key_id
                         FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
                         WHERE r.token_hash = $1",
                    )
                    .bind(hash)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(Self::store_err)?;
                    row.as_ref()
                        .map(|row| Ok(($crate::refresh_token(row)?, $crate::session(row)?)))
                        .transpose()
                        .map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn find_successor(&self, parent: Uuid) -> Result<Option<RefreshToken>, StoreError> {
                    let row = ::sqlx::query(
                        "SELECT r.session_id AS id, r.id AS r_id, r.token_hash AS r_token_hash,
                                r.parent_id AS r_parent_id, r.used_at AS r_used_at, r.created_at AS r_created_at,
                                r.expires_at AS r_expires_at, r.secret_sealed AS r_secret_sealed,
                                r.secret_key_id AS r_secret_key_id
                         FROM refresh_tokens r WHERE r.parent_id = $1",
                    )
                    .bind(parent)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(Self::store_err)?;
                    row.as_ref().map($crate::refresh_token).transpose().map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn rotate_refresh_token(
                    &self,
                    used: Uuid,
                    next: &RefreshToken,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    self.rotate_refresh(used, next, at).await
                }
            }
        };
    };
}
