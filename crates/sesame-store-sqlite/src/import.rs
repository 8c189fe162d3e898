//! Bulk paths of `sesame import` on SQLite: existence checks with one query
//! per batch and multi-row inserts.

use crate::{SqliteStore, map_err};
use async_trait::async_trait;
use sesame_core::{PrincipalId, StoreError, Tx};
use sesame_credentials::{ImportStore, ImportedAccount, LoginType};
use sesame_identity::Profile;
use sesame_store_sql::SqlBackend;
use sqlx::{QueryBuilder, Row};
use std::collections::HashSet;

/// Rows per statement: well under the bind-parameter limit of either database.
const ROWS_PER_STATEMENT: usize = 1000;

#[async_trait]
impl ImportStore for SqliteStore {
    async fn existing_principals(
        &self,
        ids: &[PrincipalId],
    ) -> Result<HashSet<PrincipalId>, StoreError> {
        let mut found = HashSet::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::new("SELECT id FROM principals WHERE id IN (");
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(id.0);
            }
            q.push(")");
            let rows = q.build().fetch_all(&self.readers).await.map_err(map_err)?;
            for row in rows {
                found.insert(PrincipalId(row.try_get("id").map_err(map_err)?));
            }
        }
        Ok(found)
    }

    async fn login_owners(
        &self,
        logins: &[(LoginType, String)],
    ) -> Result<Vec<(LoginType, String, PrincipalId)>, StoreError> {
        let mut owners = Vec::new();
        for chunk in logins.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::new(
                "SELECT login_type, identifier, principal_id FROM login_methods WHERE (login_type, identifier) IN (",
            );
            q.push_values(chunk, |mut row, (login_type, identifier)| {
                row.push_bind(login_type.as_str()).push_bind(identifier);
            });
            q.push(")");
            let rows = q.build().fetch_all(&self.readers).await.map_err(map_err)?;
            for row in rows {
                owners.extend(sesame_store_sql::login_owner(&row).map_err(map_err)?);
            }
        }
        Ok(owners)
    }

    async fn insert_accounts(
        &self,
        tx: &mut dyn Tx,
        accounts: &[ImportedAccount],
    ) -> Result<(), StoreError> {
        let c = Self::conn(tx).await?;
        for chunk in accounts.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::new(
                "INSERT INTO principals (id, kind, is_active, failed_attempts, locked_until, last_login_at, created_at, updated_at) ",
            );
            q.push_values(chunk, |mut row, a| {
                let p = &a.principal;
                row.push_bind(p.id.0)
                    .push_bind(&p.kind)
                    .push_bind(p.is_active)
                    .push_bind(p.failed_attempts)
                    .push_bind(p.locked_until)
                    .push_bind(p.last_login_at)
                    .push_bind(p.created_at)
                    .push_bind(p.updated_at);
            });
            q.build().execute(&mut *c).await.map_err(map_err)?;
        }
        let logins: Vec<_> = accounts.iter().flat_map(|a| &a.logins).collect();
        for chunk in logins.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::new(
                "INSERT INTO login_methods (id, principal_id, login_type, identifier, verified_at, created_at, last_used_at) ",
            );
            q.push_values(chunk, |mut row, m| {
                row.push_bind(m.id)
                    .push_bind(m.principal_id.0)
                    .push_bind(m.login_type.as_str())
                    .push_bind(&m.identifier)
                    .push_bind(m.verified_at)
                    .push_bind(m.created_at)
                    .push_bind(m.last_used_at);
            });
            q.build().execute(&mut *c).await.map_err(map_err)?;
        }
        let passwords: Vec<_> = accounts
            .iter()
            .filter_map(|a| a.password_hash.as_ref().map(|h| (a, h)))
            .collect();
        for table in ["passwords", "password_history"] {
            for chunk in passwords.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::new(if table == "passwords" {
                    "INSERT INTO passwords (principal_id, hash, created_at, updated_at) "
                } else {
                    "INSERT INTO password_history (principal_id, hash, created_at) "
                });
                let history = table != "passwords";
                q.push_values(chunk, |mut row, (a, hash)| {
                    row.push_bind(a.principal.id.0)
                        .push_bind(hash.as_str())
                        .push_bind(a.principal.created_at);
                    if !history {
                        row.push_bind(a.principal.updated_at);
                    }
                });
                q.build().execute(&mut *c).await.map_err(map_err)?;
            }
        }
        Ok(())
    }
}

/// Inserts many profiles in multi-row statements.
pub(crate) async fn insert_profiles(
    c: &mut sqlx::SqliteConnection,
    profiles: &[Profile],
) -> Result<(), StoreError> {
    for chunk in profiles.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::new(
            "INSERT INTO users (id, display_name, avatar_url, bio, locale, status, metadata, created_at, updated_at) ",
        );
        q.push_values(chunk, |mut row, p| {
            row.push_bind(p.id.0)
                .push_bind(&p.display_name)
                .push_bind(&p.avatar_url)
                .push_bind(&p.bio)
                .push_bind(&p.locale)
                .push_bind(&p.status)
                .push_bind(p.metadata.to_string())
                .push_bind(p.created_at)
                .push_bind(p.updated_at);
        });
        q.build().execute(&mut *c).await.map_err(map_err)?;
    }
    Ok(())
}
