//! Group commit for writes that stand alone: a WebAuthn ceremony stored or
//! taken, a refresh-token rotation. Each write is a unit of one or more
//! statements; units queue here and one task writes whatever has queued in a
//! single transaction and a single trip to SQLite's thread, so that the cost
//! of a commit and of the hand-off is shared. Each unit's answer goes back
//! to its caller once the group is committed. When a statement fails the
//! group is rolled back and its units are written one by one, so that a bad
//! write fails alone.

use crate::{Connections, map_err};
use sesame_core::StoreError;
use sesame_store_sql::{Later, Ran};
use sqlx::Sqlite;
use sqlx::sqlite::SqliteQueryResult;
use tokio::sync::{mpsc, oneshot};

/// Most units written in one transaction.
const MAX_GROUP: usize = 64;

/// What each statement of a unit did.
type Answer = Result<Vec<Ran<Sqlite>>, StoreError>;

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
    /// Starts the writer task on `runtime`.
    pub(crate) fn spawn(writer: Connections, runtime: &tokio::runtime::Handle) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        runtime.spawn(run(writer, rx));
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
    pub(crate) async fn write_one(&self, statement: Later) -> Result<Ran<Sqlite>, StoreError> {
        self.write(vec![statement]).await?.pop().ok_or_else(missing)
    }
}

async fn run(writer: Connections, mut rx: mpsc::UnboundedReceiver<Unit>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(more) => group.push(more),
                Err(_) => break,
            }
        }
        let (units, replies): (Vec<_>, Vec<_>) =
            group.into_iter().map(|u| (u.statements, u.reply)).unzip();
        let alone = (units.len() > 1).then(|| units.clone());
        match write(&writer, units).await {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(_) if alone.is_some() => {
                for (reply, unit) in replies.into_iter().zip(alone.unwrap_or_default()) {
                    let answer = write(&writer, vec![unit])
                        .await
                        .and_then(|mut answers| answers.pop().ok_or_else(missing));
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

fn missing() -> StoreError {
    StoreError::unavailable("a grouped write gave no answer")
}

/// Writes `units` in one transaction: what each statement did, by unit.
async fn write(
    writer: &Connections,
    units: Vec<Vec<Later>>,
) -> Result<Vec<Vec<Ran<Sqlite>>>, StoreError> {
    let sizes: Vec<usize> = units.iter().map(Vec::len).collect();
    let mut all = vec![Later::new("BEGIN IMMEDIATE")];
    all.extend(units.into_iter().flatten());
    let count = all.len();
    let mut conn = writer.acquire().await.map_err(map_err)?;
    let ran = match Later::run_all(
        all,
        Some("COMMIT"),
        &mut *conn,
        SqliteQueryResult::rows_affected,
    )
    .await
    {
        Ok(ran) => ran,
        Err(e) => {
            // Leave the connection outside any transaction for the next writer.
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            return Err(map_err(e));
        }
    };
    if ran.len() != count {
        return Err(missing());
    }
    let mut ran = ran.into_iter().skip(1);
    Ok(sizes
        .into_iter()
        .map(|size| ran.by_ref().take(size).collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqliteConnectOptions;
    use std::time::Duration;

    async fn grouper(dir: &tempfile::TempDir) -> (Connections, Grouper) {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("g.db"))
            .create_if_missing(true);
        let writer = Connections::open(&options, 1, Duration::from_secs(5))
            .await
            .unwrap();
        sqlx::raw_sql("CREATE TABLE t (n INTEGER UNIQUE); INSERT INTO t VALUES (1), (2)")
            .execute(&writer)
            .await
            .unwrap();
        let grouper = Grouper::spawn(writer.clone(), &tokio::runtime::Handle::current());
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
