#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)] // test support fails loudly
//! Test databases. Which backend the suites run on comes from
//! `SESAME_TEST_BACKEND` (`sqlite`, the default, or `postgres`); a PostgreSQL
//! test gets a database of its own on `SESAME_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped afterwards.

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row, SqlitePool};
use std::str::FromStr;
use std::sync::Arc;

/// The backend the suites run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    /// The embedded file.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl TestBackend {
    /// From `SESAME_TEST_BACKEND`.
    pub fn from_env() -> Self {
        match std::env::var("SESAME_TEST_BACKEND").as_deref() {
            Ok("postgres") => Self::Postgres,
            _ => Self::Sqlite,
        }
    }
}

/// Whether this is a CI run (`CI=true`), where services must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("SESAME_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    format!("{}/{database}{query}", &base[..host_end])
}

/// Whether the PostgreSQL server answers. Outside CI a test that needs it may
/// skip when it does not; under CI it must answer.
pub async fn postgres_available() -> bool {
    let answers = PgConnection::connect(&postgres_admin_url()).await.is_ok();
    if !answers && in_ci() {
        panic!(
            "PostgreSQL is required under CI: no answer at {}",
            postgres_admin_url()
        );
    }
    if !answers {
        eprintln!("skipped: no PostgreSQL at {}", postgres_admin_url());
    }
    answers
}

async fn admin() -> PgConnection {
    PgConnection::connect(&postgres_admin_url())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {}: {e}", postgres_admin_url()))
}

/// A database of its own for one test, dropped when this is dropped.
#[derive(Debug)]
pub struct Postgres {
    name: String,
    dropped: bool,
}

impl Postgres {
    /// Creates an empty database.
    pub async fn create() -> Self {
        let name = format!("sesame_t_{}", uuid::Uuid::now_v7().simple());
        let sql = format!("CREATE DATABASE {name}");
        sqlx::query(AssertSqlSafe(sql))
            .execute(&mut admin().await)
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        Self {
            name,
            dropped: false,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its URL, as the superuser.
    pub fn url(&self) -> String {
        with_database(&postgres_admin_url(), &self.name)
    }

    /// Its URL as another role (trust authentication).
    pub fn url_as(&self, role: &str) -> String {
        let url = self.url();
        match url.find("://") {
            Some(i) => {
                let rest = &url[i + 3..];
                let host = rest.split_once('@').map_or(rest, |(_, h)| h);
                format!("{}{role}@{host}", &url[..i + 3])
            }
            None => url,
        }
    }

    /// Drops the database now, whoever is still connected.
    pub async fn drop_now(mut self) {
        self.dropped = true;
        drop_database(&self.name).await;
    }
}

async fn drop_database(name: &str) {
    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    if let Ok(mut admin) = PgConnection::connect(&postgres_admin_url()).await {
        let _ = sqlx::query(AssertSqlSafe(sql)).execute(&mut admin).await;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a thread of its own may block.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_database(&name));
            }
        })
        .join();
    }
}

/// A scalar query of test-written SQL, for any backend.
fn query<DB: sqlx::Database, O>(
    sql: &str,
) -> sqlx::query::QueryScalar<'static, DB, O, <DB as sqlx::Database>::Arguments>
where
    (O,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
}

/// Closes a server's store, as if its database went away.
#[derive(Clone)]
pub struct Outage(Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for Outage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outage")
    }
}

/// The server's database, for checks behind the API. Table names need no
/// schema: on PostgreSQL the check connection searches both schemas.
#[derive(Debug, Clone)]
pub enum TestDb {
    /// A pool on the server's SQLite file, and what closes the server's own
    /// connections (simulating an outage).
    Sqlite(SqlitePool, Option<Outage>),
    /// A pool for checks, and the server's own pools.
    Postgres {
        /// Searches `credentials, identity`.
        check: PgPool,
        /// The server's pools (closed to simulate an outage).
        server: Vec<PgPool>,
    },
}

impl TestDb {
    /// Checks through `pool`, on the server's SQLite file.
    pub fn sqlite(pool: SqlitePool) -> Self {
        Self::Sqlite(pool, None)
    }

    /// Checks through `pool`; [`TestDb::close`] also calls `outage`, which
    /// closes the server's own connections.
    pub fn sqlite_with_outage(pool: SqlitePool, outage: impl Fn() + Send + Sync + 'static) -> Self {
        Self::Sqlite(pool, Some(Outage(Arc::new(outage))))
    }

    /// Checks on the database of `server_pools[0]` (both schemas).
    pub async fn postgres(server_pools: Vec<PgPool>) -> Self {
        let options: PgConnectOptions = match server_pools.first() {
            Some(pool) => (*pool.connect_options()).clone(),
            None => PgConnectOptions::from_str(&postgres_admin_url()).expect("admin url"),
        };
        let check = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options.options([("search_path", "credentials,identity")]))
            .await
            .expect("check pool");
        Self::Postgres {
            check,
            server: server_pools,
        }
    }

    /// `id` as a literal of this database's UUID column type (a 16-byte
    /// blob on SQLite, a `uuid` on PostgreSQL).
    pub fn uuid_literal(&self, id: uuid::Uuid) -> String {
        match self {
            Self::Sqlite(..) => format!("X'{}'", id.simple()),
            Self::Postgres { .. } => format!("'{id}'::uuid"),
        }
    }

    /// A single integer.
    pub async fn count(&self, sql: &str) -> i64 {
        match self {
            Self::Sqlite(pool, _) => query(sql).fetch_one(pool).await,
            Self::Postgres { check, .. } => query(sql).fetch_one(check).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A single text value.
    pub async fn text(&self, sql: &str) -> String {
        match self {
            Self::Sqlite(pool, _) => query(sql).fetch_one(pool).await,
            Self::Postgres { check, .. } => query(sql).fetch_one(check).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The first column of every row, as text.
    pub async fn texts(&self, sql: &str) -> Vec<String> {
        match self {
            Self::Sqlite(pool, _) => query(sql).fetch_all(pool).await,
            Self::Postgres { check, .. } => query(sql).fetch_all(check).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The first column of every row, as bytes.
    pub async fn blobs(&self, sql: &str) -> Vec<Vec<u8>> {
        match self {
            Self::Sqlite(pool, _) => query(sql).fetch_all(pool).await,
            Self::Postgres { check, .. } => query(sql).fetch_all(check).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs a statement that returns no rows (to set up a case behind the API).
    pub async fn execute(&self, sql: &str) -> u64 {
        let statement = || AssertSqlSafe(sql.to_owned());
        match self {
            Self::Sqlite(pool, _) => sqlx::query(statement())
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
            Self::Postgres { check, .. } => sqlx::query(statement())
                .execute(check)
                .await
                .map(|r| r.rows_affected()),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Every row of `table` as text (binary columns in hex), to search for
    /// something that must not be stored.
    pub async fn dump(&self, table: &str) -> String {
        match self {
            Self::Sqlite(pool, _) => {
                let rows = sqlx::query(AssertSqlSafe(format!("SELECT * FROM {table}")))
                    .fetch_all(pool)
                    .await
                    .unwrap_or_else(|e| panic!("dump {table}: {e}"));
                let mut out = String::new();
                for row in rows {
                    for i in 0..row.len() {
                        if let Ok(text) = row.try_get::<String, _>(i) {
                            out.push_str(&text);
                        } else if let Ok(bytes) = row.try_get::<Vec<u8>, _>(i) {
                            out.extend(bytes.iter().map(|b| format!("{b:02x}")));
                        } else if let Ok(n) = row.try_get::<i64, _>(i) {
                            out.push_str(&n.to_string());
                        }
                        out.push('|');
                    }
                    out.push('\n');
                }
                out
            }
            Self::Postgres { .. } => {
                let sql =
                    format!("SELECT COALESCE(string_agg(t::text, E'\\n'), '') FROM {table} t");
                self.text(&sql).await
            }
        }
    }

    /// Every table of the database (both schemas on PostgreSQL), dumped as
    /// [`dump`](Self::dump) does: what a database dump would hold.
    pub async fn dump_all(&self) -> String {
        let sql = match self {
            Self::Sqlite(..) => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            }
            Self::Postgres { .. } => {
                "SELECT table_schema || '.' || table_name FROM information_schema.tables
                 WHERE table_schema IN ('identity', 'credentials') AND table_type = 'BASE TABLE' ORDER BY 1"
            }
        };
        let tables: Vec<String> = match self {
            Self::Sqlite(pool, _) => sqlx::query_scalar(sql).fetch_all(pool).await,
            Self::Postgres { check, .. } => sqlx::query_scalar(sql).fetch_all(check).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert!(tables.len() > 10, "{tables:?}");
        let mut out = String::new();
        for table in tables {
            out.push_str(&format!("== {table}\n"));
            out.push_str(&self.dump(&table).await);
        }
        out
    }

    /// Every way registrations can be left half-written, with how many rows
    /// show it; empty when the database is consistent: each principal has a
    /// profile, a login method and its `identity.user.signed_up` event, and no
    /// row refers to a principal that does not exist.
    pub async fn registration_violations(&self) -> Vec<(&'static str, i64)> {
        let subject = match self {
            Self::Sqlite(..) => {
                "lower(substr(hex(p.id), 1, 8) || '-' || substr(hex(p.id), 9, 4) || '-' || \
                 substr(hex(p.id), 13, 4) || '-' || substr(hex(p.id), 17, 4) || '-' || substr(hex(p.id), 21))"
            }
            Self::Postgres { .. } => "p.id::text",
        };
        let event_subject = match self {
            Self::Sqlite(..) => "json_extract(o.payload, '$.subject')",
            Self::Postgres { .. } => "(o.payload->>'subject')",
        };
        let checks = [
            (
                "principal without profile",
                "SELECT COUNT(*) FROM principals p WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = p.id)".to_owned(),
            ),
            (
                "principal without login method",
                "SELECT COUNT(*) FROM principals p WHERE NOT EXISTS (SELECT 1 FROM login_methods l WHERE l.principal_id = p.id)".to_owned(),
            ),
            (
                "principal without signed_up event",
                format!(
                    "SELECT COUNT(*) FROM (SELECT {subject} AS sid FROM principals p) p
                     LEFT JOIN (SELECT {event_subject} AS sid FROM outbox o WHERE o.topic = 'identity.user.signed_up') e
                       ON e.sid = p.sid
                     WHERE e.sid IS NULL"
                ),
            ),
            (
                "profile without principal",
                "SELECT COUNT(*) FROM users u WHERE NOT EXISTS (SELECT 1 FROM principals p WHERE p.id = u.id)".to_owned(),
            ),
            (
                "signed_up event without principal",
                format!(
                    "SELECT COUNT(*) FROM (SELECT {event_subject} AS sid FROM outbox o WHERE o.topic = 'identity.user.signed_up') e
                     LEFT JOIN (SELECT {subject} AS sid FROM principals p) p ON p.sid = e.sid
                     WHERE p.sid IS NULL"
                ),
            ),
            (
                "login method without principal",
                "SELECT COUNT(*) FROM login_methods l WHERE NOT EXISTS (SELECT 1 FROM principals p WHERE p.id = l.principal_id)".to_owned(),
            ),
            (
                "password without principal",
                "SELECT COUNT(*) FROM passwords w WHERE NOT EXISTS (SELECT 1 FROM principals p WHERE p.id = w.principal_id)".to_owned(),
            ),
            (
                "session without principal",
                "SELECT COUNT(*) FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM principals p WHERE p.id = s.principal_id)".to_owned(),
            ),
        ];
        let mut found = Vec::new();
        for (name, sql) in checks {
            let n = self.count(&sql).await;
            if n != 0 {
                found.push((name, n));
            }
        }
        found
    }

    /// Closes the server's pools, as if the database went away.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool, outage) => {
                if let Some(outage) = outage {
                    (outage.0)();
                }
                pool.close().await;
            }
            Self::Postgres { check, server } => {
                for pool in server {
                    pool.close().await;
                }
                check.close().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_swapped_in_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
