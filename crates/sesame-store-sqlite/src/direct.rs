//! Statements run on the writer's thread itself.
//!
//! sqlx runs each SQLite connection on a thread of its own, and every
//! statement is a hand-off to that thread and back: on the one writer, held
//! by each write transaction from its `BEGIN` to its `COMMIT`, those waits
//! were most of a transaction's turn. The writer's thread
//! ([`crate::WriterThread`]) has a connection of its own to the same file,
//! and runs on it, in place, the statements built as [`Later`]s: the group
//! commits ([`crate::group`]) and the transactions begun there. It is used
//! only by whoever holds the writer's turn, so the two connections never
//! write at once. Reads of one row by its key run in place too, on the
//! caller's thread, on read-only connections of their own ([`PointReads`]).

use crate::checkpoint::Checkpoints;
use crate::unique_name;
use rusqlite::types::Value;
use rusqlite::{CachedStatement, Connection, ErrorCode, OpenFlags, ffi};
use serde_json::value::RawValue;
use sesame_core::StoreError;
use sesame_store_sql::{Arg, Columns, Later, Ran};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// The writer thread's own connection, and the thread that checkpoints
/// for it (it does not checkpoint itself: [`crate::checkpoint`]).
#[derive(Debug)]
pub(crate) struct Direct {
    conn: Mutex<Connection>,
    checkpoints: Checkpoints,
}

impl Direct {
    /// The writer thread's connection to the database file at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        Ok(Self {
            conn: Mutex::new(conn),
            checkpoints: Checkpoints::start(path)?,
        })
    }

    /// Leaves checkpoints to sqlx's writer (a bulk load), or takes them back.
    pub(crate) fn pause_checkpoints(&self, paused: bool) {
        self.checkpoints.pause(paused);
    }

    /// The connection, for one caller holding the writer's turn.
    pub(crate) fn lock(&self) -> Result<Session<'_>, StoreError> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| StoreError::unavailable("the writer's connection failed mid-statement"))?;
        Ok(Session {
            conn,
            checkpoints: &self.checkpoints,
        })
    }
}

/// The writer thread's connection, held for a few statements.
pub(crate) struct Session<'a> {
    conn: MutexGuard<'a, Connection>,
    checkpoints: &'a Checkpoints,
}

impl Session<'_> {
    /// Runs a statement without arguments (`BEGIN IMMEDIATE`, `ROLLBACK`, …).
    pub(crate) fn exec(&self, sql: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| s.raw_execute())
            .map(drop)
            .map_err(store_err)
    }

    /// Commits the open transaction.
    pub(crate) fn commit(&self) -> Result<(), StoreError> {
        self.exec("COMMIT")?;
        self.checkpoints.committed();
        Ok(())
    }

    /// Whether a transaction is open.
    pub(crate) fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }

    /// Runs `statement`: the rows it changed and those it returned.
    pub(crate) fn run(&self, statement: &Later) -> Result<Ran<DirectRow>, StoreError> {
        run_on(&self.conn, statement)
    }
}

/// Runs `statement` on `conn`: the rows it changed and those it returned.
fn run_on(conn: &Connection, statement: &Later) -> Result<Ran<DirectRow>, StoreError> {
    let mut stmt = conn.prepare_cached(statement.sql()).map_err(store_err)?;
    bind(&mut stmt, statement.args())?;
    let names: Arc<[String]> = stmt.column_names().into_iter().map(String::from).collect();
    let readonly = stmt.readonly();
    let mut rows = Vec::new();
    let mut cursor = stmt.raw_query();
    while let Some(row) = cursor.next().map_err(store_err)? {
        let values = (0..names.len())
            .map(|i| row.get::<_, Value>(i))
            .collect::<Result<_, _>>()
            .map_err(store_err)?;
        rows.push(DirectRow {
            names: names.clone(),
            values,
        });
    }
    drop(cursor);
    let changed = if readonly { 0 } else { conn.changes() };
    Ok(Ran { changed, rows })
}

/// Connections for point reads run in place, on the caller's thread: a read
/// that finds its rows in SQLite's cache takes microseconds, less than a
/// hand-off to a connection's thread and back. Only for reads of a row by
/// its key; anything that scans goes to the reader connections' threads.
#[derive(Debug)]
pub(crate) struct PointReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Most idle connections kept for point reads.
const MAX_IDLE_READERS: usize = 4;

impl PointReads {
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The first row `statement` returns.
    pub(crate) fn read_one(&self, statement: &Later) -> Result<Option<DirectRow>, StoreError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => connect(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?,
        };
        let row = run_on(&conn, statement).map(|ran| ran.rows.into_iter().next());
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE_READERS
        {
            idle.push(conn);
        }
        row
    }
}

/// A connection to the database file at `path`, opened with `access`, set
/// up as sqlx sets up its own (`SqliteStore::connect`).
pub(crate) fn connect(path: &Path, access: OpenFlags) -> Result<Connection, StoreError> {
    let failed = |e| StoreError::unavailable_from("could not open a connection", e);
    let flags = access | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(failed)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(failed)?;
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -16000; PRAGMA temp_store = MEMORY;
         PRAGMA wal_autocheckpoint = 0;",
    )
    .map_err(failed)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Binds `args` to `stmt`'s `$n` parameters, as sqlx's SQLite driver
/// encodes them: UUIDs as 16-byte blobs, booleans as integers, timestamps
/// as RFC 3339 text, JSON as text.
fn bind(stmt: &mut CachedStatement<'_>, args: &[Arg]) -> Result<(), StoreError> {
    let bad = |what: String| StoreError::driver(std::io::Error::other(what));
    for index in 1..=stmt.parameter_count() {
        let name = stmt.parameter_name(index).unwrap_or_default();
        let arg = name
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| args.get(n.checked_sub(1)?))
            .ok_or_else(|| bad(format!("parameter {name:?} of a statement has no argument")))?;
        let bound = match arg {
            Arg::Uuid(v) => stmt.raw_bind_parameter(index, v.as_ref().map(Uuid::as_bytes)),
            Arg::Text(v) => stmt.raw_bind_parameter(index, v),
            Arg::Bool(v) => stmt.raw_bind_parameter(index, i64::from(*v)),
            Arg::Int(v) => stmt.raw_bind_parameter(index, v),
            Arg::Time(v) => {
                let text = v
                    .map(|t| t.format(&Rfc3339))
                    .transpose()
                    .map_err(|e| bad(format!("a timestamp: {e}")))?;
                stmt.raw_bind_parameter(index, text)
            }
            Arg::Bytes(v) => stmt.raw_bind_parameter(index, v),
            Arg::Json(v) => stmt.raw_bind_parameter(index, RawValue::get(v)),
        };
        bound.map_err(store_err)?;
    }
    Ok(())
}

/// A driver error as a store error, as [`crate::map_err`] reads sqlx's.
fn store_err(err: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(e, message) = &err
        && e.code == ErrorCode::ConstraintViolation
    {
        let message = message.as_deref().unwrap_or_default();
        match e.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                return StoreError::Conflict {
                    constraint: unique_name(message),
                };
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
                return StoreError::Conflict {
                    constraint: "foreign_key".into(),
                };
            }
            _ => {}
        }
    }
    StoreError::driver(err)
}

/// A row a statement run here returned, read as sqlx's SQLite driver reads
/// its own.
#[derive(Debug, Clone)]
pub struct DirectRow {
    names: Arc<[String]>,
    values: Vec<Value>,
}

type Decoded<T> = std::result::Result<T, sqlx::Error>;

impl DirectRow {
    fn value(&self, name: &str) -> Decoded<&Value> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| sqlx::Error::ColumnNotFound(name.to_owned()))
    }

    /// The column `name`, NULL as `None`, read by `read`.
    fn read<T>(&self, name: &str, read: impl FnOnce(&Value) -> Option<T>) -> Decoded<Option<T>> {
        match self.value(name)? {
            Value::Null => Ok(None),
            value => read(value).map(Some).ok_or_else(|| mismatch(name, value)),
        }
    }

    fn required<T>(&self, name: &str, value: Option<T>) -> Decoded<T> {
        value.ok_or_else(|| sqlx::Error::Decode(format!("column {name} is NULL").into()))
    }
}

fn mismatch(name: &str, value: &Value) -> sqlx::Error {
    sqlx::Error::Decode(format!("column {name} holds {:?}", value.data_type()).into())
}

/// Text timestamps as sqlx writes them (RFC 3339) or as SQLite's own
/// `CURRENT_TIMESTAMP` does (UTC).
fn timestamp(value: &Value) -> Option<OffsetDateTime> {
    let Value::Text(text) = value else {
        return None;
    };
    let sqlite = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    OffsetDateTime::parse(text, &Rfc3339).ok().or_else(|| {
        time::PrimitiveDateTime::parse(text, &sqlite)
            .ok()
            .map(time::PrimitiveDateTime::assume_utc)
    })
}

impl Columns for DirectRow {
    fn uuid(&self, name: &str) -> Decoded<Uuid> {
        self.required(name, self.opt_uuid(name)?)
    }
    fn opt_uuid(&self, name: &str) -> Decoded<Option<Uuid>> {
        self.read(name, |v| match v {
            Value::Blob(b) => Uuid::from_slice(b).ok(),
            _ => None,
        })
    }
    fn text(&self, name: &str) -> Decoded<String> {
        self.required(name, self.opt_text(name)?)
    }
    fn opt_text(&self, name: &str) -> Decoded<Option<String>> {
        self.read(name, |v| match v {
            Value::Text(t) => Some(t.clone()),
            _ => None,
        })
    }
    fn flag(&self, name: &str) -> Decoded<bool> {
        Ok(self.int(name)? != 0)
    }
    fn int(&self, name: &str) -> Decoded<i64> {
        self.required(name, self.opt_int(name)?)
    }
    fn opt_int(&self, name: &str) -> Decoded<Option<i64>> {
        self.read(name, |v| match v {
            Value::Integer(i) => Some(*i),
            _ => None,
        })
    }
    fn time(&self, name: &str) -> Decoded<OffsetDateTime> {
        self.required(name, self.opt_time(name)?)
    }
    fn opt_time(&self, name: &str) -> Decoded<Option<OffsetDateTime>> {
        self.read(name, timestamp)
    }
    fn bytes(&self, name: &str) -> Decoded<Vec<u8>> {
        self.required(name, self.opt_bytes(name)?)
    }
    fn opt_bytes(&self, name: &str) -> Decoded<Option<Vec<u8>>> {
        self.read(name, |v| match v {
            Value::Blob(b) => Some(b.clone()),
            _ => None,
        })
    }
    fn json(&self, name: &str) -> Decoded<serde_json::Value> {
        let text = self.text(name)?;
        serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(e.into()))
    }
}
