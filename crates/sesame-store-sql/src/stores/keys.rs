//! `SigningKeyStore` and `AuditStore`.

/// Stamps the signing-key and audit stores for a backend.
#[doc(hidden)]
#[macro_export]
macro_rules! __key_and_audit_stores {
    ($store:ty) => {
        const _: () = {
            use ::async_trait::async_trait;
            use ::sesame_core::{StoreError, Tx};
            use ::sesame_credentials::{AuditEntry, AuditStore, Sealed, SigningKeyRecord, SigningKeyStore};
            use ::time::OffsetDateTime;
            use $crate::SqlBackend as _;

            #[async_trait]
            impl SigningKeyStore for $store {
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn insert_signing_key(
                    &self,
                    tx: &mut dyn Tx,
                    k: &SigningKeyRecord,
                ) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "INSERT INTO signing_keys (kid, alg, private_key_sealed, master_key_id, public_jwk, created_at, activated_at, retired_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&k.kid)
                    .bind(&k.alg)
                    .bind(&k.private_key_sealed.blob)
                    .bind(&k.private_key_sealed.key_id)
                    .bind(::sqlx::types::Json(&k.public_jwk))
                    .bind(k.created_at)
                    .bind(k.activated_at)
                    .bind(k.retired_at)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn retire_signing_key(
                    &self,
                    tx: &mut dyn Tx,
                    kid: &str,
                    at: OffsetDateTime,
                ) -> Result<(), StoreError> {
                    ::sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE kid = $2")
                        .bind(at)
                        .bind(kid)
                        .execute(Self::conn(tx).await?)
                        .await
                        .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn reseal_signing_key(
                    &self,
                    tx: &mut dyn Tx,
                    kid: &str,
                    sealed: &Sealed,
                ) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "UPDATE signing_keys SET private_key_sealed = $1, master_key_id = $2 WHERE kid = $3",
                    )
                    .bind(&sealed.blob)
                    .bind(&sealed.key_id)
                    .bind(kid)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
                    let rows = ::sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, kid")
                        .fetch_all(self.reader())
                        .await
                        .map_err(Self::store_err)?;
                    rows.iter()
                        .map($crate::signing_key)
                        .collect::<Result<_, _>>()
                        .map_err(Self::store_err)
                }
            }

            #[async_trait]
            impl AuditStore for $store {
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn append_audit(&self, tx: &mut dyn Tx, e: &AuditEntry) -> Result<(), StoreError> {
                    let write = $crate::Later::new(
                        "INSERT INTO audit_log (id, principal_id, event, ip, user_agent, data, at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .arg(e.id)
                    .arg(e.principal_id.map(|p| p.0))
                    .arg(&e.event)
                    .arg(&e.ip)
                    .arg(&e.user_agent)
                    .json(&e.data)?
                    .arg(e.at);
                    Self::later(tx, write).await
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn list_audit(
                    &self,
                    f: &::sesame_credentials::AuditFilter,
                    before: Option<::uuid::Uuid>,
                    limit: i64,
                ) -> Result<Vec<AuditEntry>, StoreError> {
                    let rows = ::sqlx::query(
                        "SELECT * FROM audit_log
                         WHERE ($1 IS NULL OR principal_id = $1) AND ($2 IS NULL OR event = $2)
                           AND ($3 IS NULL OR at >= $3) AND ($4 IS NULL OR at < $4)
                           AND ($5 IS NULL OR id < $5)
                         ORDER BY id DESC LIMIT $6",
                    )
                    .bind(f.principal.map(|p| p.0))
                    .bind(&f.event)
                    .bind(f.from)
                    .bind(f.to)
                    .bind(before)
                    .bind(limit)
                    .fetch_all(self.reader())
                    .await
                    .map_err(Self::store_err)?;
                    rows.iter().map($crate::audit_entry).collect::<Result<_, _>>().map_err(Self::store_err)
                }
            }
        };
    };
}
