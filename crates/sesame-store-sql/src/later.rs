//! A write whose result nobody reads, which a backend may hold until the
//! transaction's next statement or its commit and then send together with
//! the others held ([`SqlBackend::later`](crate::SqlBackend::later)): on
//! SQLite each statement is a hand-off to the connection's thread and back,
//! and one multi-statement trip replaces several. Its arguments are kept as
//! values so that statements can be joined into one argument list, or bound
//! by another driver: the same form carries the statements a backend runs
//! itself ([`SqlBackend::run`](crate::SqlBackend::run), `run_alone`,
//! `read_one`), which SQLite runs in place on connections of its own.

use serde_json::value::RawValue;
use sesame_core::StoreError;
use sqlx::{Database, Encode, Type};
use time::OffsetDateTime;
use uuid::Uuid;

/// One argument of a held statement.
#[derive(Debug, Clone)]
pub enum Arg {
    /// A UUID.
    Uuid(Option<Uuid>),
    /// Text.
    Text(Option<String>),
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(Option<i64>),
    /// A timestamp.
    Time(Option<OffsetDateTime>),
    /// Bytes.
    Bytes(Option<Vec<u8>>),
    /// A JSON document, serialized once.
    Json(Box<RawValue>),
}

macro_rules! arg_from {
    ($t:ty, $variant:ident) => {
        impl From<$t> for Arg {
            fn from(v: $t) -> Self {
                Self::$variant(Some(v.into()))
            }
        }
        impl From<Option<$t>> for Arg {
            fn from(v: Option<$t>) -> Self {
                Self::$variant(v.map(Into::into))
            }
        }
    };
}

arg_from!(Uuid, Uuid);
arg_from!(String, Text);
arg_from!(&str, Text);
arg_from!(i64, Int);
arg_from!(OffsetDateTime, Time);
arg_from!(Vec<u8>, Bytes);
arg_from!(&[u8], Bytes);

impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Self::Text(Some(v.clone()))
    }
}

impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        Self::Text(v.clone())
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

/// A statement (`$1`, `$2`, … numbered from 1) and its arguments.
#[derive(Debug, Clone)]
pub struct Later {
    sql: &'static str,
    args: Vec<Arg>,
}

impl Later {
    /// `sql`, whose arguments follow with [`Later::arg`].
    pub fn new(sql: &'static str) -> Self {
        Self {
            sql,
            args: Vec::new(),
        }
    }

    /// The next argument.
    #[must_use]
    pub fn arg(mut self, value: impl Into<Arg>) -> Self {
        self.args.push(value.into());
        self
    }

    /// The next argument, `value` as a JSON document.
    pub fn json(mut self, value: &impl serde::Serialize) -> Result<Self, StoreError> {
        let value = serde_json::value::to_raw_value(value).map_err(StoreError::driver)?;
        self.args.push(Arg::Json(value));
        Ok(self)
    }

    /// Its text, with `$n` parameters.
    pub fn sql(&self) -> &'static str {
        self.sql
    }

    /// Its arguments, `$1` first.
    pub fn args(&self) -> &[Arg] {
        &self.args
    }

    /// The statement alone, ready to run.
    pub fn query<DB>(self) -> sqlx::query::Query<'static, DB, <DB as Database>::Arguments>
    where
        DB: Database,
        Args: Bindable<DB>,
    {
        Args::bind_all(sqlx::query(sqlx::AssertSqlSafe(self.sql)), self.args)
    }

    /// `held` as one multi-statement query (each statement's `$n` moved past
    /// the arguments of those before it), followed by `tail` when given.
    pub fn joined<DB>(
        held: Vec<Later>,
        tail: Option<&str>,
    ) -> sqlx::query::Query<'static, DB, <DB as Database>::Arguments>
    where
        DB: Database,
        Args: Bindable<DB>,
    {
        let mut sql = String::with_capacity(held.iter().map(|l| l.sql.len() + 8).sum());
        let mut args = Vec::new();
        for later in held {
            renumber_into(&mut sql, later.sql, args.len());
            sql.push_str(";\n");
            args.extend(later.args);
        }
        if let Some(tail) = tail {
            sql.push_str(tail);
        }
        Args::bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), args)
    }
}

/// What a statement run in a transaction did; its rows of type `R`.
pub struct Ran<R> {
    /// The rows it inserted, updated or deleted.
    pub changed: u64,
    /// The rows it returned.
    pub rows: Vec<R>,
}

impl<R> Ran<R> {
    /// The same, each row made an `S`.
    pub fn map_rows<S>(self, f: impl FnMut(R) -> S) -> Ran<S> {
        Ran {
            changed: self.changed,
            rows: self.rows.into_iter().map(f).collect(),
        }
    }
}

impl Later {
    /// Runs `held`, then this statement, as one multi-statement query on
    /// `executor`: what this statement did (`changes` reads a statement's
    /// count of changed rows from the driver's result).
    pub async fn run_after<'c, DB, E>(
        self,
        mut held: Vec<Later>,
        executor: E,
        changes: fn(&<DB as Database>::QueryResult) -> u64,
    ) -> Result<Ran<<DB as Database>::Row>, sqlx::Error>
    where
        DB: Database,
        <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
        Args: Bindable<DB>,
        E: sqlx::Executor<'c, Database = DB>,
    {
        held.push(self);
        let mut ran = Later::run_all(held, None, executor, changes).await?;
        Ok(ran.pop().unwrap_or(Ran {
            changed: 0,
            rows: Vec::new(),
        }))
    }

    /// Runs `statements`, then `tail` when given, as one multi-statement
    /// query on `executor`: what each statement did, in order.
    pub async fn run_all<'c, DB, E>(
        statements: Vec<Later>,
        tail: Option<&str>,
        executor: E,
        changes: fn(&<DB as Database>::QueryResult) -> u64,
    ) -> Result<Vec<Ran<<DB as Database>::Row>>, sqlx::Error>
    where
        DB: Database,
        <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
        Args: Bindable<DB>,
        E: sqlx::Executor<'c, Database = DB>,
    {
        use futures_util::TryStreamExt;
        let count = statements.len();
        let mut statements = statements;
        let query = match (statements.pop(), tail) {
            (None, None) => return Ok(Vec::new()),
            // One statement alone, as PostgreSQL takes it.
            (Some(only), None) if statements.is_empty() => only.query(),
            (last, tail) => {
                statements.extend(last);
                Later::joined(statements, tail)
            }
        };
        let mut ran: Vec<Ran<<DB as Database>::Row>> = Vec::with_capacity(count);
        let mut current = Ran {
            changed: 0,
            rows: Vec::new(),
        };
        let mut results = executor.fetch_many(query);
        while let Some(result) = results.try_next().await? {
            if ran.len() == count {
                continue;
            }
            match result {
                sqlx::Either::Left(finished) => {
                    current.changed = changes(&finished);
                    let next = Ran {
                        changed: 0,
                        rows: Vec::new(),
                    };
                    ran.push(std::mem::replace(&mut current, next));
                }
                sqlx::Either::Right(row) => current.rows.push(row),
            }
        }
        Ok(ran)
    }
}

/// Appends `sql` to `out` with each `$n` outside quotes made `$n+offset`,
/// copying the text between them whole.
fn renumber_into(out: &mut String, sql: &str, offset: usize) {
    use std::fmt::Write;
    let bytes = sql.as_bytes();
    let mut copied = 0;
    let mut quoted = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b'$' if !quoted && offset > 0 => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if let Ok(n) = sql[i + 1..i + 1 + digits].parse::<usize>() {
                    out.push_str(&sql[copied..=i]);
                    let _ = write!(out, "{}", n + offset);
                    i += 1 + digits;
                    copied = i;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&sql[copied..]);
}

/// Binds held arguments for one database.
pub struct Args;

/// How [`Args`] binds into a query of database `DB`.
pub trait Bindable<DB: Database> {
    /// `query` with `args` bound in order.
    fn bind_all(
        query: sqlx::query::Query<'static, DB, <DB as Database>::Arguments>,
        args: Vec<Arg>,
    ) -> sqlx::query::Query<'static, DB, <DB as Database>::Arguments>;
}

impl<DB> Bindable<DB> for Args
where
    DB: Database,
    Option<Uuid>: Encode<'static, DB> + Type<DB>,
    Option<String>: Encode<'static, DB> + Type<DB>,
    bool: Encode<'static, DB> + Type<DB>,
    Option<i64>: Encode<'static, DB> + Type<DB>,
    Option<OffsetDateTime>: Encode<'static, DB> + Type<DB>,
    Option<Vec<u8>>: Encode<'static, DB> + Type<DB>,
    sqlx::types::Json<Box<RawValue>>: Encode<'static, DB> + Type<DB>,
{
    fn bind_all(
        mut query: sqlx::query::Query<'static, DB, <DB as Database>::Arguments>,
        args: Vec<Arg>,
    ) -> sqlx::query::Query<'static, DB, <DB as Database>::Arguments> {
        for arg in args {
            query = match arg {
                Arg::Uuid(v) => query.bind(v),
                Arg::Text(v) => query.bind(v),
                Arg::Bool(v) => query.bind(v),
                Arg::Int(v) => query.bind(v),
                Arg::Time(v) => query.bind(v),
                Arg::Bytes(v) => query.bind(v),
                Arg::Json(v) => query.bind(sqlx::types::Json(v)),
            };
        }
        query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renumber(sql: &str, offset: usize) -> String {
        let mut out = String::new();
        renumber_into(&mut out, sql, offset);
        out
    }

    #[test]
    fn numbers_move_past_earlier_arguments_but_not_inside_quotes() {
        assert_eq!(
            renumber("UPDATE t SET a = $1, b = '$2' WHERE c = $12", 3),
            "UPDATE t SET a = $4, b = '$2' WHERE c = $15"
        );
        assert_eq!(
            renumber("SELECT json_extract(p, '$.x') FROM t WHERE a = $1", 2),
            "SELECT json_extract(p, '$.x') FROM t WHERE a = $3"
        );
        assert_eq!(
            renumber("INSERT INTO t VALUES ('é', $1, $x, $2)$", 10),
            "INSERT INTO t VALUES ('é', $11, $x, $12)$"
        );
        assert_eq!(renumber("SET a = $1, b = $9", 0), "SET a = $1, b = $9");
    }
}
