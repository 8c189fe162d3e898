//! Group commit. Writes queue here and one task on the writer's thread
//! writes whatever has queued in a single transaction, in place on that
//! thread's connection ([`crate::direct`]), so that the cost of a commit is
//! shared. A write is a unit of statements (a WebAuthn ceremony stored or
//! taken, a refresh-token rotation) or a unit of work that begins and
//! commits transactions of its own ([`Database::grouped`], a passkey
//! sign-in): each runs under a savepoint, so that a statement that fails,
//! or a transaction dropped uncommitted, rolls its unit back alone. Each
//! unit's answer goes back to its caller once the group is committed.
//!
//! [`Database::grouped`]: sesame_core::Database::grouped

use crate::direct::{Direct, Session};
use crate::{Connections, Returned, map_err};
use futures_util::FutureExt;
use sesame_core::{Finish, Grouped, StoreError};
use sesame_store_sql::{Later, Ran};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most units written in one transaction.
const MAX_GROUP: usize = 64;

/// The savepoint each unit runs under: begun, released, rolled back to.
pub(crate) const SAVEPOINT: &str = "SAVEPOINT unit";
pub(crate) const RELEASE: &str = "RELEASE unit";
pub(crate) const ROLLBACK_TO: &str = "ROLLBACK TO unit";

/// What each statement of a unit did.
type Answer = Result<Vec<Ran<Returned>>, StoreError>;

enum Unit {
    Statements {
        statements: Vec<Later>,
        reply: oneshot::Sender<Answer>,
    },
    Work(Grouped),
}

/// A unit that ran, waiting for its group's commit.
enum Waiting {
    Statements(oneshot::Sender<Answer>, Answer),
    Work(Finish),
}

tokio::task_local! {
    /// Set while a unit of work runs in a group: its transactions are
    /// savepoints in the group's, on the connection at this address.
    static IN_GROUP: usize;
}

fn address(direct: &Direct) -> usize {
    std::ptr::from_ref(direct) as usize
}

/// Whether the caller is a unit of work running in a group.
fn in_group() -> bool {
    IN_GROUP.try_with(|_| ()).is_ok()
}

/// Whether the caller is a unit of work running in a group on `direct`.
pub(crate) fn in_group_of(direct: &Direct) -> bool {
    IN_GROUP
        .try_with(|at| *at == address(direct))
        .unwrap_or(false)
}

/// The queue in front of the group writer.
#[derive(Debug, Clone)]
pub(crate) struct Grouper {
    queue: mpsc::UnboundedSender<Unit>,
}

fn stopped() -> StoreError {
    StoreError::unavailable("the group writer stopped")
}

impl Grouper {
    /// Starts the writer task on `runtime`: it takes the writer's turn from
    /// `writer` for each group, and runs the statements on `direct`.
    pub(crate) fn spawn(
        writer: Connections,
        direct: Arc<Direct>,
        runtime: &tokio::runtime::Handle,
    ) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        runtime.spawn(run(writer, direct, rx));
        Self { queue }
    }

    /// Runs `statements` in order, together, in a transaction shared with the
    /// units queued meanwhile: what each did.
    pub(crate) async fn write(&self, statements: Vec<Later>) -> Answer {
        if in_group() {
            // Its group would wait for it, and it for the group.
            return Err(StoreError::unavailable(
                "a unit of work in a group writes only through its transactions",
            ));
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Unit::Statements { statements, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `statement` as a unit of its own: what it did.
    pub(crate) async fn write_one(&self, statement: Later) -> Result<Ran<Returned>, StoreError> {
        self.write(vec![statement]).await?.pop().ok_or_else(missing)
    }

    /// Queues a unit of work (see [`sesame_core::Database::grouped`]).
    /// Once the writer stopped it is dropped unrun, and its caller hears so.
    pub(crate) fn work(&self, work: Grouped) {
        let _ = self.queue.send(Unit::Work(work));
    }
}

async fn run(writer: Connections, direct: Arc<Direct>, mut rx: mpsc::UnboundedReceiver<Unit>) {
    while let Some(first) = rx.recv().await {
        let begun = writer.acquire().await.map_err(map_err).and_then(|turn| {
            direct.lock()?.exec("BEGIN IMMEDIATE")?;
            Ok(turn)
        });
        let _turn = match begun {
            Ok(turn) => turn,
            Err(e) => {
                if let Unit::Statements { reply, .. } = first {
                    let _ = reply.send(Err(e));
                }
                // A unit of work dropped unrun: its caller hears that the
                // writer stopped.
                continue;
            }
        };
        let mut waiting = Vec::new();
        let mut outcome = Ok(());
        let mut next = Some(first);
        while let Some(unit) = next.take() {
            outcome = run_unit(&direct, unit, &mut waiting).await;
            if outcome.is_ok() && waiting.len() < MAX_GROUP {
                next = rx.try_recv().ok();
            }
        }
        let committed = outcome.and_then(|()| direct.lock()?.commit());
        if committed.is_err()
            && let Ok(session) = direct.lock()
            && session.in_transaction()
        {
            let _ = session.exec("ROLLBACK");
        }
        for unit in waiting {
            match unit {
                Waiting::Statements(reply, answer) => {
                    let _ = reply.send(committed.clone().and(answer));
                }
                Waiting::Work(finish) => finish(committed.clone()),
            }
        }
    }
}

/// Runs `unit` in the group's open transaction, and adds it to `waiting`;
/// an error is the whole group's (SQLite ended the transaction).
async fn run_unit(
    direct: &Direct,
    unit: Unit,
    waiting: &mut Vec<Waiting>,
) -> Result<(), StoreError> {
    match unit {
        Unit::Statements { statements, reply } => {
            let answer = direct.lock().and_then(|s| write_unit(&s, &statements));
            let failed = answer.as_ref().err().cloned();
            waiting.push(Waiting::Statements(reply, answer.unwrap_or_else(Err)));
            failed.map_or(Ok(()), Err)
        }
        Unit::Work(work) => {
            let ran = IN_GROUP
                .scope(address(direct), AssertUnwindSafe(work).catch_unwind())
                .await;
            // A unit that panicked rolled its transaction back as it
            // unwound; its caller hears that the writer stopped.
            waiting.extend(ran.ok().map(Waiting::Work));
            if direct.lock()?.in_transaction() {
                Ok(())
            } else {
                Err(StoreError::unavailable(
                    "the group's transaction ended early",
                ))
            }
        }
    }
}

fn missing() -> StoreError {
    StoreError::unavailable("a grouped write gave no answer")
}

/// Runs `statements` under a savepoint: what each did, or the first one's
/// error after the unit is rolled back. An error of the transaction itself
/// (after which SQLite ended it) is the whole group's.
fn write_unit(session: &Session<'_>, statements: &[Later]) -> Result<Answer, StoreError> {
    session.exec(SAVEPOINT)?;
    let ran: Answer = statements
        .iter()
        .map(|s| session.run(s).map(|ran| ran.map_rows(Returned::Direct)))
        .collect();
    if let Err(e) = &ran {
        if !session.in_transaction() {
            return Err(e.clone());
        }
        session.exec(ROLLBACK_TO)?;
    }
    session.exec(RELEASE)?;
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqliteConnectOptions;
    use std::time::Duration;

    async fn grouper(dir: &tempfile::TempDir) -> (Connections, Grouper) {
        let path = dir.path().join("g.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let writer = Connections::open(&options, 1, Duration::from_secs(5))
            .await
            .unwrap();
        sqlx::raw_sql("CREATE TABLE t (n INTEGER UNIQUE); INSERT INTO t VALUES (1), (2)")
            .execute(&writer)
            .await
            .unwrap();
        let direct = Arc::new(Direct::open(&path).unwrap());
        let grouper = Grouper::spawn(writer.clone(), direct, &tokio::runtime::Handle::current());
        (writer, grouper)
    }

    fn insert(n: i64) -> Later {
        Later::new("INSERT INTO t VALUES ($1) RETURNING n").arg(n)
    }

    #[tokio::test]
    async fn units_queued_together_get_their_own_answers() {
        let dir = tempfile::tempdir().unwrap();
        let (_, grouper) = grouper(&dir).await;
        // Both are queued before the writer task runs: one group.
        let (a, b) = tokio::join!(
            grouper.write(vec![
                Later::new("DELETE FROM t WHERE n <= $1").arg(2_i64),
                insert(3),
            ]),
            grouper.write_one(Later::new("UPDATE t SET n = n + 10 WHERE n > $1").arg(100_i64)),
        );
        let a = a.unwrap();
        assert_eq!(
            a.iter()
                .map(|r| (r.changed, r.rows.len()))
                .collect::<Vec<_>>(),
            [(2, 0), (1, 1)]
        );
        assert_eq!(b.unwrap().changed, 0);
    }

    #[tokio::test]
    async fn a_failing_write_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, grouper) = grouper(&dir).await;
        let (taken, fresh) =
            tokio::join!(grouper.write_one(insert(1)), grouper.write_one(insert(5)));
        assert!(taken.is_err(), "the unique index refuses 1");
        assert_eq!(fresh.unwrap().rows.len(), 1);
        let rows: Vec<i64> = sqlx::query_scalar("SELECT n FROM t ORDER BY n")
            .fetch_all(&writer)
            .await
            .unwrap();
        assert_eq!(rows, [1, 2, 5]);
    }
}
