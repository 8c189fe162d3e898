//! The embedded store's write transaction ([`SqliteTx`]) and the rows its
//! statements return ([`Returned`]).

use crate::direct::{self, DirectRow};
use crate::group::{RELEASE, ROLLBACK_TO, SAVEPOINT};
use crate::{LazyTx, foreign, map_err};
use sesame_core::{StoreError, Tx};
use sesame_store_sql::{Columns, Later, Ran};
use sqlx::sqlite::SqliteQueryResult;
use sqlx::{Sqlite, SqliteConnection};
use std::any::Any;
use std::sync::Arc;

/// A SQLite write transaction on the writer connection. Its
/// `BEGIN IMMEDIATE` and the writes held for it go with its next statement or
/// its commit, in one trip: each trip is a hand-off to the connection's
/// thread and back, with the one writer held meanwhile. Begun by a unit of
/// work in a group ([`crate::group`]), it is a savepoint in the group's
/// transaction instead, and its statements run in place on the writer
/// thread's own connection ([`direct`]).
pub(crate) struct SqliteTx {
    /// The writer's turn; none in a group, which holds it.
    pub(crate) conn: LazyTx,
    pub(crate) held: Vec<Later>,
    /// In a group: where statements run in place.
    pub(crate) direct: Option<Arc<direct::Direct>>,
    /// Whether the savepoint went to the direct connection (and was not
    /// released).
    pub(crate) direct_open: bool,
}

impl Tx for SqliteTx {}

impl SqliteTx {
    pub(crate) fn of(tx: &mut dyn Tx) -> Result<&mut Self, StoreError> {
        let any: &mut dyn Any = tx;
        any.downcast_mut::<Self>().ok_or_else(foreign)
    }

    /// What goes with the next statement: the `BEGIN` while none went, then
    /// the held writes.
    fn outgoing(&mut self) -> Vec<Later> {
        let mut out = Vec::with_capacity(self.held.len() + 1);
        if !self.conn.begun() {
            out.push(Later::new("BEGIN IMMEDIATE"));
        }
        out.append(&mut self.held);
        out
    }

    /// The direct connection, once the savepoint (while none went) and the
    /// held writes have run on it.
    fn send_direct<'d>(
        &mut self,
        direct: &'d direct::Direct,
    ) -> Result<direct::Session<'d>, StoreError> {
        let session = direct.lock()?;
        if !self.direct_open {
            session.exec(SAVEPOINT)?;
            self.direct_open = true;
        }
        for write in std::mem::take(&mut self.held) {
            session.run(&write)?;
        }
        Ok(session)
    }

    /// The connection, once what waits for the next statement has gone.
    pub(crate) async fn conn(&mut self) -> Result<&mut SqliteConnection, StoreError> {
        if self.direct.is_some() {
            return Err(StoreError::unavailable(
                "a transaction in a group needs no sqlx statement",
            ));
        }
        let out = self.outgoing();
        if !out.is_empty() {
            Later::joined::<Sqlite>(out, None)
                .execute(self.conn.conn().map_err(map_err)?)
                .await
                .map_err(map_err)?;
        }
        self.conn.conn().map_err(map_err)
    }

    /// Runs `statement` in the same trip as what waits for it.
    pub(crate) async fn run(&mut self, statement: Later) -> Result<Ran<Returned>, StoreError> {
        if let Some(direct) = self.direct.clone() {
            let ran = self.send_direct(&direct)?.run(&statement)?;
            return Ok(ran.map_rows(Returned::Direct));
        }
        let out = self.outgoing();
        statement
            .run_after(
                out,
                self.conn.conn().map_err(map_err)?,
                SqliteQueryResult::rows_affected,
            )
            .await
            .map(|ran| ran.map_rows(Returned::Driver))
            .map_err(map_err)
    }

    /// Commits, with what still waits in the same trip; a transaction that
    /// sent and held nothing has nothing to commit. In a group, releases the
    /// savepoint: the group commits.
    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        if let Some(direct) = self.direct.clone() {
            if !self.direct_open && self.held.is_empty() {
                return Ok(());
            }
            self.send_direct(&direct)?.exec(RELEASE)?;
            self.direct_open = false;
            return Ok(());
        }
        if !self.conn.begun() && self.held.is_empty() {
            return Ok(());
        }
        let out = self.outgoing();
        Later::joined::<Sqlite>(out, Some("COMMIT"))
            .execute(self.conn.conn().map_err(map_err)?)
            .await
            .map_err(map_err)?;
        self.conn.finished();
        Ok(())
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        // In a group, only this transaction's savepoint is rolled back.
        if self.direct_open
            && let Some(direct) = &self.direct
            && let Ok(session) = direct.lock()
            && session.in_transaction()
        {
            let _ = session.exec(ROLLBACK_TO);
            let _ = session.exec(RELEASE);
        }
    }
}

/// A row a statement of this backend returned: read by sqlx's driver, or on
/// the writer's thread.
pub enum Returned {
    /// From sqlx's connection.
    Driver(sqlx::sqlite::SqliteRow),
    /// From the writer thread's own connection.
    Direct(DirectRow),
}

macro_rules! either_row {
    ($($name:ident -> $t:ty),* $(,)?) => {
        impl Columns for Returned {
            $(fn $name(&self, name: &str) -> Result<$t, sqlx::Error> {
                match self {
                    Self::Driver(row) => row.$name(name),
                    Self::Direct(row) => row.$name(name),
                }
            })*
        }
    };
}

either_row!(
    uuid -> uuid::Uuid,
    opt_uuid -> Option<uuid::Uuid>,
    text -> String,
    opt_text -> Option<String>,
    flag -> bool,
    int -> i64,
    opt_int -> Option<i64>,
    time -> time::OffsetDateTime,
    opt_time -> Option<time::OffsetDateTime>,
    bytes -> Vec<u8>,
    opt_bytes -> Option<Vec<u8>>,
    json -> serde_json::Value,
);
