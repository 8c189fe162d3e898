//! Schemas, their migrations (one history table per schema, so that each side
//! can live in its own database), and least-privilege roles.

use crate::{PgStore, map_err};
use sesame_core::StoreError;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, PgPool};

/// One of the two domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// Schema `identity`: profiles.
    Identity,
    /// Schema `credentials`: everything that proves who someone is, and the outbox.
    Credentials,
}

impl Domain {
    /// Both, in the order they are migrated.
    pub const ALL: [Domain; 2] = [Domain::Identity, Domain::Credentials];

    /// The schema name.
    pub fn schema(self) -> &'static str {
        match self {
            Domain::Identity => "identity",
            Domain::Credentials => "credentials",
        }
    }

    /// The migrations of this schema, in order.
    fn migrations(self) -> &'static [(i64, &'static str, &'static str)] {
        match self {
            Domain::Identity => &[(
                1,
                "users",
                include_str!("../migrations/identity/0001_users.sql"),
            )],
            Domain::Credentials => &[
                (
                    1,
                    "credentials",
                    include_str!("../migrations/credentials/0001_credentials.sql"),
                ),
                (
                    2,
                    "login_attempts",
                    include_str!("../migrations/credentials/0002_login_attempts.sql"),
                ),
                (
                    3,
                    "security_state",
                    include_str!("../migrations/credentials/0003_security_state.sql"),
                ),
                (
                    4,
                    "mfa",
                    include_str!("../migrations/credentials/0004_mfa.sql"),
                ),
                (
                    5,
                    "access",
                    include_str!("../migrations/credentials/0005_access.sql"),
                ),
                (
                    6,
                    "erasure",
                    include_str!("../migrations/credentials/0006_erasure.sql"),
                ),
                (
                    7,
                    "deliveries",
                    include_str!("../migrations/credentials/0007_deliveries.sql"),
                ),
                (
                    8,
                    "inbox",
                    include_str!("../migrations/credentials/0008_inbox.sql"),
                ),
                (
                    9,
                    "webhook_rotation",
                    include_str!("../migrations/credentials/0009_webhook_rotation.sql"),
                ),
                (
                    10,
                    "federation",
                    include_str!("../migrations/credentials/0010_federation.sql"),
                ),
                (
                    11,
                    "live_sessions",
                    include_str!("../migrations/credentials/0011_live_sessions.sql"),
                ),
            ],
        }
    }

    fn history_table(self) -> String {
        format!("{}._sqlx_migrations", self.schema())
    }

    fn migrator(self) -> Migrator {
        let migrations = self
            .migrations()
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    (*name).into(),
                    MigrationType::Simple,
                    sqlx::SqlSafeStr::into_sql_str(*sql),
                    false,
                )
            })
            .collect();
        let mut migrator = Migrator::with_migrations(migrations);
        migrator.dangerous_set_table_name(self.history_table());
        migrator.create_schema(self.schema());
        migrator
    }
}

/// How a schema compares with this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// Every migration of this binary is applied, and nothing else.
    Current,
    /// Some migrations of this binary are not applied yet (none at all on a new
    /// database).
    Behind {
        /// The newest version applied, 0 when none.
        applied: i64,
    },
    /// The database was migrated by a newer binary.
    Newer {
        /// The newest version applied.
        applied: i64,
        /// The newest version this binary knows.
        known: i64,
    },
}

/// Names of the two roles `sesame migrate --create-roles` creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleNames {
    /// Role with privileges on schema `identity` only.
    pub identity: String,
    /// Role with privileges on schema `credentials` only.
    pub credentials: String,
}

impl Default for RoleNames {
    fn default() -> Self {
        Self {
            identity: "sesame_identity".into(),
            credentials: "sesame_credentials".into(),
        }
    }
}

/// A role name made of lower-case letters, digits and `_`, quoted for SQL.
fn quoted_role(name: &str) -> Result<String, StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(format!("\"{name}\""))
    } else {
        Err(StoreError::unavailable(format!(
            "role name {name:?} must be lower-case letters, digits and _"
        )))
    }
}

impl PgStore {
    fn pool_of(&self, domain: Domain) -> &PgPool {
        match domain {
            Domain::Identity => &self.identity,
            Domain::Credentials => &self.credentials,
        }
    }

    /// Creates both schemas if needed and applies pending migrations; refuses a
    /// schema migrated by a newer binary. Safe to run again, and from several
    /// processes at once (each side takes an advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        for domain in Domain::ALL {
            if let SchemaState::Newer { applied, known } = self.schema_state(domain).await? {
                return Err(newer(domain, applied, known));
            }
            domain
                .migrator()
                .run(self.pool_of(domain))
                .await
                .map_err(|e| {
                    StoreError::unavailable(format!(
                        "migrating schema {} failed: {e}",
                        domain.schema()
                    ))
                })?;
        }
        Ok(())
    }

    /// Compares the applied migrations of `domain` with this binary's.
    pub async fn schema_state(&self, domain: Domain) -> Result<SchemaState, StoreError> {
        let pool = self.pool_of(domain);
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(domain.history_table())
            .fetch_one(pool)
            .await
            .map_err(map_err)?;
        let known = domain.migrations().last().map_or(0, |m| m.0);
        if exists.is_none() {
            return Ok(SchemaState::Behind { applied: 0 });
        }
        let sql = format!(
            "SELECT COALESCE(MAX(version), 0) FROM {} WHERE success",
            domain.history_table()
        );
        let applied: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .map_err(map_err)?;
        Ok(match applied.cmp(&known) {
            std::cmp::Ordering::Equal => SchemaState::Current,
            std::cmp::Ordering::Less => SchemaState::Behind { applied },
            std::cmp::Ordering::Greater => SchemaState::Newer { applied, known },
        })
    }

    /// Fails unless both schemas are exactly at this binary's version.
    pub async fn require_current(&self) -> Result<(), StoreError> {
        for domain in Domain::ALL {
            match self.schema_state(domain).await? {
                SchemaState::Current => {}
                SchemaState::Behind { applied } => {
                    return Err(StoreError::unavailable(format!(
                        "schema {} is at version {applied}, older than this binary: run `sesame migrate`",
                        domain.schema()
                    )));
                }
                SchemaState::Newer { applied, known } => {
                    return Err(newer(domain, applied, known));
                }
            }
        }
        Ok(())
    }

    /// Creates (if missing) one login role per domain and grants each the data
    /// privileges on its own schema and nothing on the other. Run as the owner
    /// of the schemas, after [`PgStore::migrate`].
    pub async fn create_roles(&self, names: &RoleNames) -> Result<(), StoreError> {
        for (domain, name) in [
            (Domain::Identity, &names.identity),
            (Domain::Credentials, &names.credentials),
        ] {
            let role = quoted_role(name)?;
            let schema = domain.schema();
            let mut tx = self.pool_of(domain).begin().await.map_err(map_err)?;
            // Two concurrent runs must not both try to create the role.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('sesame-create-roles'))")
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
            let mut statements = Vec::new();
            if !exists {
                statements.push(format!("CREATE ROLE {role} LOGIN"));
            }
            statements.extend([
                format!("GRANT USAGE ON SCHEMA {schema} TO {role}"),
                format!(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}"
                ),
                format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}"),
                format!(
                    "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}"
                ),
                format!(
                    "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {role}"
                ),
            ]);
            // The history table is read at start-up, never written by the role.
            statements.push(format!(
                "REVOKE INSERT, UPDATE, DELETE ON {} FROM {role}",
                domain.history_table()
            ));
            for other in Domain::ALL.iter().filter(|d| **d != domain) {
                let other = other.schema();
                let has_schema: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                )
                .bind(other)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                if has_schema {
                    statements.push(format!("REVOKE ALL ON SCHEMA {other} FROM {role}"));
                    statements.push(format!(
                        "REVOKE ALL ON ALL TABLES IN SCHEMA {other} FROM {role}"
                    ));
                }
            }
            for sql in statements {
                sqlx::query(AssertSqlSafe(sql))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)?;
        }
        Ok(())
    }
}

fn newer(domain: Domain, applied: i64, known: i64) -> StoreError {
    StoreError::unavailable(format!(
        "schema {} is at version {applied}, newer than this binary (which knows {known}): upgrade sesame",
        domain.schema()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_plain_identifiers() {
        assert_eq!(
            quoted_role("sesame_identity").unwrap(),
            "\"sesame_identity\""
        );
        for bad in ["", "Sesame", "a-b", "x\"; DROP TABLE y; --", "1abc"] {
            assert!(quoted_role(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn migrations_are_numbered_in_order() {
        for domain in Domain::ALL {
            for (i, (version, _, _)) in domain.migrations().iter().enumerate() {
                assert_eq!(*version, i as i64 + 1);
            }
        }
    }
}
