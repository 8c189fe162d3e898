//! What a backend supplies to the stores written once in [`crate::stores`]:
//! where reads and writes go, how a driver error reads, and the few paths
//! where the two databases really differ (row locks, refresh-token rotation,
//! the outbox claims' lock clause, bulk profile inserts). Everything else is one `$n`
//! statement with unqualified table names, run by both.

use sesame_core::{PrincipalId, StoreError, Tx};
use sesame_credentials::RefreshToken;
use sesame_identity::Profile;
use std::future::Future;
use time::OffsetDateTime;
use uuid::Uuid;

/// A driver connection of backend `B`.
pub type Conn<B> = <<B as SqlBackend>::Db as sqlx::Database>::Connection;

/// The seams between the shared statements and one database.
pub trait SqlBackend: Send + Sync + Sized {
    /// The sqlx driver.
    type Db: sqlx::Database;

    /// The lock clause of a claim's `SELECT` where several relays share the
    /// database (`FOR UPDATE SKIP LOCKED`); empty where one process owns it.
    const SKIP_LOCKED: &'static str;

    /// Connections statements run on: an executor whose `begin()` gives a
    /// transaction with `commit()` (a sqlx pool, or SQLite's own
    /// connections).
    type Pool: Send + Sync;

    /// A row a statement run by [`SqlBackend::run`] or
    /// [`SqlBackend::run_alone`] returned.
    type Returned: crate::Columns + Send;

    /// Where reads of the credentials domain go.
    fn reader(&self) -> &Self::Pool;
    /// Where writes of the credentials domain that commit on their own go
    /// (outside a caller's transaction).
    fn writer(&self) -> &Self::Pool;
    /// Where reads of the identity domain go.
    fn profiles(&self) -> &Self::Pool;
    /// Where writes of the identity domain that commit on their own go.
    fn profile_writer(&self) -> &Self::Pool;

    /// The credentials-side connection inside a transaction begun by this
    /// backend, once the writes held for it ([`SqlBackend::later`]) are sent.
    fn conn(tx: &mut dyn Tx) -> impl Future<Output = Result<&mut Conn<Self>, StoreError>> + Send;

    /// Runs `write` in `tx`, or holds it to send with the transaction's next
    /// statement or its commit. Only for writes whose outcome nobody reads
    /// and that cannot conflict: an error surfaces there instead.
    fn later(
        tx: &mut dyn Tx,
        write: crate::Later,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Runs `statement` in `tx` now, after the writes held for it: on
    /// SQLite in the same trip as they (and the transaction's `BEGIN`, which
    /// waits for its first statement). What it did: the rows it changed and
    /// those it returned.
    fn run(
        tx: &mut dyn Tx,
        statement: crate::Later,
    ) -> impl Future<Output = Result<crate::Ran<Self::Returned>, StoreError>> + Send;
    /// The first row `statement`, a read of one row by its key, returns,
    /// read outside any transaction (on SQLite, in place on the caller's
    /// thread).
    fn read_one(
        &self,
        statement: crate::Later,
    ) -> impl Future<Output = Result<Option<Self::Returned>, StoreError>> + Send;
    /// Runs `statement` in a transaction of its own (on SQLite, one shared
    /// with the other such writes queued meanwhile, in one commit): what it
    /// did.
    fn run_alone(
        &self,
        statement: crate::Later,
    ) -> impl Future<Output = Result<crate::Ran<Self::Returned>, StoreError>> + Send;
    /// The identity-side connection inside `tx`.
    fn identity_conn<'t>(
        &self,
        tx: &'t mut dyn Tx,
    ) -> impl Future<Output = Result<&'t mut Conn<Self>, StoreError>> + Send;

    /// A driver error as a store error, without driver text for clients.
    fn store_err(err: sqlx::Error) -> StoreError;

    /// Serialises changes to a principal's set of login methods until `conn`'s
    /// transaction ends.
    fn lock_principal(
        conn: &mut Conn<Self>,
        id: PrincipalId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Marks refresh token `used` used and stores `next`, atomically: false
    /// (and nothing stored) when `used` already was used.
    fn rotate_refresh(
        &self,
        used: Uuid,
        next: &RefreshToken,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Empties the data of every event about `principal` (their envelopes
    /// are JSON of each database's own kind).
    fn scrub_events(
        conn: &mut Conn<Self>,
        principal: PrincipalId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes `principal`'s profile in `tx` when the identity domain shares
    /// the transaction; in split mode it does nothing, and the relay removes
    /// the profile when it delivers `identity.user.deleted`.
    fn erase_profile(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Inserts many profiles through the identity-side connection of a transaction.
    fn insert_profile_batch(
        conn: &mut Conn<Self>,
        profiles: &[Profile],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
