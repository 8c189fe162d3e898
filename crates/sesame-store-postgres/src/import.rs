//! Bulk paths of `sesame import` on PostgreSQL: existence checks with one query
//! per batch, and inserts of whole batches as arrays (`UNNEST`).

use crate::{PgStore, map_err};
use async_trait::async_trait;
use sesame_core::{PrincipalId, StoreError, Tx};
use sesame_credentials::{ImportStore, ImportedAccount, LoginType};
use sesame_identity::Profile;
use sesame_store_sql::SqlBackend;
use std::collections::HashSet;

#[async_trait]
impl ImportStore for PgStore {
    async fn existing_principals(
        &self,
        ids: &[PrincipalId],
    ) -> Result<HashSet<PrincipalId>, StoreError> {
        let ids: Vec<_> = ids.iter().map(|id| id.0).collect();
        let found: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM principals WHERE id = ANY($1::uuid[])")
                .bind(&ids)
                .fetch_all(&self.credentials)
                .await
                .map_err(map_err)?;
        Ok(found.into_iter().map(PrincipalId).collect())
    }

    async fn login_owners(
        &self,
        logins: &[(LoginType, String)],
    ) -> Result<Vec<(LoginType, String, PrincipalId)>, StoreError> {
        // A join with the arrays lets the planner probe the unique index once
        // per login, however large the table.
        let rows = sqlx::query(
            "SELECT l.login_type, l.identifier, l.principal_id
             FROM UNNEST($1::text[], $2::text[]) AS t(login_type, identifier)
             JOIN login_methods l
               ON l.login_type = t.login_type AND l.identifier = t.identifier",
        )
        .bind(logins.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>())
        .bind(logins.iter().map(|(_, i)| i.as_str()).collect::<Vec<_>>())
        .fetch_all(&self.credentials)
        .await
        .map_err(map_err)?;
        let mut owners = Vec::with_capacity(rows.len());
        for row in rows {
            owners.extend(sesame_store_sql::login_owner(&row).map_err(map_err)?);
        }
        Ok(owners)
    }

    async fn insert_accounts(
        &self,
        tx: &mut dyn Tx,
        accounts: &[ImportedAccount],
    ) -> Result<(), StoreError> {
        // One statement per table, the rows passed as arrays: the statement is
        // prepared once and the server unpacks the arrays, far cheaper than a
        // VALUES list with a parameter per cell.
        let c = Self::conn(tx).await?;
        let principals: Vec<_> = accounts.iter().map(|a| &a.principal).collect();
        sqlx::query(
            "INSERT INTO principals
                 (id, kind, is_active, failed_attempts, locked_until, last_login_at, created_at, updated_at)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::bool[], $4::int8[],
                                  $5::timestamptz[], $6::timestamptz[], $7::timestamptz[], $8::timestamptz[])",
        )
        .bind(principals.iter().map(|p| p.id.0).collect::<Vec<_>>())
        .bind(principals.iter().map(|p| p.kind.clone()).collect::<Vec<_>>())
        .bind(principals.iter().map(|p| p.is_active).collect::<Vec<_>>())
        .bind(principals.iter().map(|p| p.failed_attempts).collect::<Vec<_>>())
        .bind(principals.iter().map(|p| p.locked_until).collect::<Vec<_>>())
        .bind(principals.iter().map(|p| p.last_login_at).collect::<Vec<_>>())
        .bind(principals.iter().map(|p| p.created_at).collect::<Vec<_>>())
        .bind(principals.iter().map(|p| p.updated_at).collect::<Vec<_>>())
        .execute(&mut *c)
        .await
        .map_err(map_err)?;
        let logins: Vec<_> = accounts.iter().flat_map(|a| &a.logins).collect();
        sqlx::query(
            "INSERT INTO login_methods
                 (id, principal_id, login_type, identifier, verified_at, created_at, last_used_at)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[],
                                  $5::timestamptz[], $6::timestamptz[], $7::timestamptz[])",
        )
        .bind(logins.iter().map(|m| m.id).collect::<Vec<_>>())
        .bind(logins.iter().map(|m| m.principal_id.0).collect::<Vec<_>>())
        .bind(
            logins
                .iter()
                .map(|m| m.login_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            logins
                .iter()
                .map(|m| m.identifier.clone())
                .collect::<Vec<_>>(),
        )
        .bind(logins.iter().map(|m| m.verified_at).collect::<Vec<_>>())
        .bind(logins.iter().map(|m| m.created_at).collect::<Vec<_>>())
        .bind(logins.iter().map(|m| m.last_used_at).collect::<Vec<_>>())
        .execute(&mut *c)
        .await
        .map_err(map_err)?;
        let (ids, hashes, created, updated): (Vec<_>, Vec<_>, Vec<_>, Vec<_>) = accounts
            .iter()
            .filter_map(|a| {
                a.password_hash.as_ref().map(|h| {
                    (
                        a.principal.id.0,
                        h.clone(),
                        a.principal.created_at,
                        a.principal.updated_at,
                    )
                })
            })
            .fold(
                Default::default(),
                |mut v: (Vec<_>, Vec<_>, Vec<_>, Vec<_>), r| {
                    v.0.push(r.0);
                    v.1.push(r.1);
                    v.2.push(r.2);
                    v.3.push(r.3);
                    v
                },
            );
        sqlx::query(
            "INSERT INTO passwords (principal_id, hash, created_at, updated_at)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[])",
        )
        .bind(&ids)
        .bind(&hashes)
        .bind(&created)
        .bind(&updated)
        .execute(&mut *c)
        .await
        .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO password_history (principal_id, hash, created_at)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[])",
        )
        .bind(&ids)
        .bind(&hashes)
        .bind(&created)
        .execute(&mut *c)
        .await
        .map_err(map_err)?;
        Ok(())
    }
}

/// Inserts many profiles in one statement, the rows passed as arrays.
pub(crate) async fn insert_profiles(
    c: &mut sqlx::PgConnection,
    profiles: &[Profile],
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users
             (id, display_name, avatar_url, bio, locale, status, metadata, created_at, updated_at)
         SELECT id, display_name, avatar_url, bio, locale, status, metadata::jsonb, created_at, updated_at
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::timestamptz[], $9::timestamptz[])
              AS t(id, display_name, avatar_url, bio, locale, status, metadata, created_at, updated_at)",
    )
    .bind(profiles.iter().map(|p| p.id.0).collect::<Vec<_>>())
    .bind(profiles.iter().map(|p| p.display_name.clone()).collect::<Vec<_>>())
    .bind(profiles.iter().map(|p| p.avatar_url.clone()).collect::<Vec<_>>())
    .bind(profiles.iter().map(|p| p.bio.clone()).collect::<Vec<_>>())
    .bind(profiles.iter().map(|p| p.locale.clone()).collect::<Vec<_>>())
    .bind(profiles.iter().map(|p| p.status.clone()).collect::<Vec<_>>())
    .bind(profiles.iter().map(|p| p.metadata.to_string()).collect::<Vec<_>>())
    .bind(profiles.iter().map(|p| p.created_at).collect::<Vec<_>>())
    .bind(profiles.iter().map(|p| p.updated_at).collect::<Vec<_>>())
    .execute(&mut *c)
    .await
    .map_err(map_err)?;
    Ok(())
}
