//! Group commit for writes that stand alone: a WebAuthn ceremony stored or
//! taken, a refresh-token rotation. Each write is a unit of one or more
//! statements; units queue here and one task on the writer's thread writes
//! whatever has queued in a single transaction, in place on that thread's
//! connection ([`crate::direct`]), so that the cost of a commit is shared.
//! Each unit's answer goes back to its caller once the group is committed.
//! Each unit runs under a savepoint: a statement that fails rolls its unit
//! back, which fails alone.

use crate::direct::{Direct, Session};
use crate::{Connections, Returned, map_err};
use sesame_core::StoreError;
use sesame_store_sql::{Later, Ran};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most units written in one transaction.
const MAX_GROUP: usize = 64;

/// What each statement of a unit did.
type Answer = Result<Vec<Ran<Returned>>, StoreError>;

struct Unit {
    statements: Vec<Later>,
    reply: oneshot::Sender<Answer>,
}

/// The queue in front of the group writer.
#[derive(Debug, Clone)]
pub(crate) struct Grouper {
    queue: mpsc::UnboundedSender<Unit>,
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
        let stopped = || StoreError::unavailable("the group writer stopped");
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Unit { statements, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `statement` as a unit of its own: what it did.
    pub(crate) async fn write_one(&self, statement: Later) -> Result<Ran<Returned>, StoreError> {
        self.write(vec![statement]).await?.pop().ok_or_else(missing)
    }
}

async fn run(writer: Connections, direct: Arc<Direct>, mut rx: mpsc::UnboundedReceiver<Unit>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(more) => group.push(more),
                Err(_) => break,
            }
        }
        let answers = match writer.acquire().await {
            Ok(_turn) => direct.lock().and_then(|session| write(&session, &group)),
            Err(e) => Err(map_err(e)),
        };
        match answers {
            Ok(answers) => {
                for (unit, answer) in group.into_iter().zip(answers) {
                    let _ = unit.reply.send(answer);
                }
            }
            Err(e) => {
                for unit in group {
                    let _ = unit.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

fn missing() -> StoreError {
    StoreError::unavailable("a grouped write gave no answer")
}

/// Writes `units` in one transaction, each under a savepoint: each unit's
/// answer. An error of the transaction itself (its `BEGIN` or `COMMIT`, or
/// one after which SQLite ended it) fails them all, and leaves no
/// transaction open.
fn write(session: &Session<'_>, units: &[Unit]) -> Result<Vec<Answer>, StoreError> {
    let written = session
        .exec("BEGIN IMMEDIATE")
        .and_then(|()| units.iter().map(|unit| write_unit(session, unit)).collect())
        .and_then(|answers| session.commit().map(|()| answers));
    if written.is_err() && session.in_transaction() {
        let _ = session.exec("ROLLBACK");
    }
    written
}

fn write_unit(session: &Session<'_>, unit: &Unit) -> Result<Answer, StoreError> {
    session.exec("SAVEPOINT unit")?;
    let ran: Answer = unit
        .statements
        .iter()
        .map(|s| session.run(s).map(|ran| ran.map_rows(Returned::Direct)))
        .collect();
    if let Err(e) = &ran {
        if !session.in_transaction() {
            return Err(e.clone());
        }
        session.exec("ROLLBACK TO unit")?;
    }
    session.exec("RELEASE unit")?;
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
