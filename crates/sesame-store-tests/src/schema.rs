//! The schema both backends' migrations build: the same tables with the
//! same column names in each domain.

use sqlx::{PgPool, SqlitePool};
use std::collections::{BTreeMap, BTreeSet};

/// Tables and their column names.
pub type Tables = BTreeMap<String, BTreeSet<String>>;

/// Columns only one backend has, and why.
pub const BACKEND_ONLY: &[(&str, &str, &str)] = &[];

fn is_bookkeeping(table: &str) -> bool {
    table.starts_with("_sqlx") || table.starts_with("sqlite_")
}

/// Every table of a SQLite file.
pub async fn sqlite_tables(pool: &SqlitePool) -> Tables {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut tables = Tables::new();
    for name in names.into_iter().filter(|n| !is_bookkeeping(n)) {
        let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
            .bind(&name)
            .fetch_all(pool)
            .await
            .unwrap();
        tables.insert(name, columns.into_iter().collect());
    }
    tables
}

/// Every table of one PostgreSQL schema.
pub async fn postgres_tables(pool: &PgPool, schema: &str) -> Tables {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = $1 ORDER BY table_name, column_name",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut tables = Tables::new();
    for (table, column) in rows.into_iter().filter(|(t, _)| !is_bookkeeping(t)) {
        tables.entry(table).or_default().insert(column);
    }
    tables
}

/// What differs between the SQLite tables and the PostgreSQL domains, as
/// readable lines; empty when both describe the same schema.
pub fn differences(sqlite: &Tables, domains: &[(&str, Tables)]) -> Vec<String> {
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    let allowed = |table: &str, column: &str| {
        BACKEND_ONLY
            .iter()
            .any(|(t, c, _)| *t == table && *c == column)
    };
    for (domain, tables) in domains {
        for (table, pg_columns) in tables {
            seen.insert(table.clone());
            let Some(lite_columns) = sqlite.get(table) else {
                found.push(format!("{domain}.{table} has no SQLite table"));
                continue;
            };
            for c in pg_columns.difference(lite_columns) {
                if !allowed(table, c) {
                    found.push(format!("{domain}.{table}.{c} is missing on SQLite"));
                }
            }
            for c in lite_columns.difference(pg_columns) {
                if !allowed(table, c) {
                    found.push(format!("{table}.{c} is missing on PostgreSQL"));
                }
            }
        }
    }
    for table in sqlite.keys().filter(|t| !seen.contains(*t)) {
        found.push(format!("{table} has no PostgreSQL table"));
    }
    found
}
