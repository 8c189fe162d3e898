//! Checkpoints off the writer's thread.
//!
//! In WAL mode a commit appends pages to the log, and a checkpoint copies
//! them back into the database file: it reads the log, writes the pages and
//! syncs both files. SQLite runs it after the commit that takes the log
//! past 1,000 pages, on the committing connection: on the writer's thread,
//! where every write waits its turn. The writer's connection does not
//! checkpoint ([`crate::direct::Direct`]); this thread does, on a
//! connection of its own, woken every [`EVERY`] commits there.
//!
//! A `PASSIVE` checkpoint waits for no one and copies what is committed, so
//! the writer goes on meanwhile. The log starts over from its beginning
//! only when the writer finds it wholly copied, which a busy writer seldom
//! does: once the log is [`RESTART_AT`] pages long, a `RESTART` checkpoint
//! takes the writer's lock for the little left to copy and makes it start
//! over, which bounds the log's file.

use rusqlite::Connection;
use sesame_core::StoreError;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Commits on the writer's connection between two wakes (each commit of a
/// sign-in adds about ten pages to the log).
const EVERY: u32 = 64;

/// Pages in the log (4 KiB each) past which it is made to start over.
const RESTART_AT: i64 = 16_384;

/// The checkpointing thread, as the writer's connection sees it.
#[derive(Debug)]
pub(crate) struct Checkpoints {
    wake: SyncSender<()>,
    commits: AtomicU32,
    every: u32,
}

/// What one checkpoint found: pages in the log, and those of them copied
/// into the database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Round {
    pub(crate) log: i64,
    pub(crate) copied: i64,
}

impl Checkpoints {
    /// Starts the thread that checkpoints the database file at `path`.
    pub(crate) fn start(path: &Path) -> Result<Self, StoreError> {
        Self::start_with(path, EVERY, RESTART_AT, |_| {})
    }

    /// As `start`, waking every `every` commits, restarting the log past
    /// `restart_at` pages, and telling `done` the outcome of each wake.
    pub(crate) fn start_with(
        path: &Path,
        every: u32,
        restart_at: i64,
        done: impl Fn(Result<Round, StoreError>) + Send + 'static,
    ) -> Result<Self, StoreError> {
        let conn = crate::direct::connect(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let (wake, woken) = sync_channel(1);
        std::thread::Builder::new()
            .name("sesame-checkpoint".into())
            .spawn(move || run(&conn, &woken, restart_at, done))
            .map_err(|e| StoreError::unavailable_from("could not start the checkpoints", e))?;
        Ok(Self {
            wake,
            commits: AtomicU32::new(0),
            every,
        })
    }

    /// Notes a commit on the writer's connection.
    pub(crate) fn committed(&self) {
        let n = self.commits.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        if n.is_multiple_of(self.every) {
            // Full: a wake is pending already.
            let _ = self.wake.try_send(());
        }
    }
}

/// Checkpoints at each wake, until the writer's connection is gone.
fn run(
    conn: &Connection,
    woken: &Receiver<()>,
    restart_at: i64,
    done: impl Fn(Result<Round, StoreError>),
) {
    while woken.recv().is_ok() {
        let round = checkpoint(conn, "PASSIVE").and_then(|round| {
            if round.log >= restart_at {
                checkpoint(conn, "RESTART")
            } else {
                Ok(round)
            }
        });
        if let Err(e) = &round {
            tracing::warn!(error = %e, "a checkpoint of the database failed");
        }
        done(round);
    }
}

fn checkpoint(conn: &Connection, mode: &str) -> Result<Round, StoreError> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok(Round {
            log: row.get(1)?,
            copied: row.get(2)?,
        })
    })
    .map_err(|e| StoreError::unavailable_from("a checkpoint failed", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    fn database(dir: &tempfile::TempDir) -> (std::path::PathBuf, Connection) {
        let path = dir.path().join("db.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (n INTEGER);",
        )
        .unwrap();
        (path, conn)
    }

    fn commit(conn: &Connection, checkpoints: &Checkpoints, n: i64) {
        conn.execute("INSERT INTO t VALUES (?1)", [n]).unwrap();
        checkpoints.committed();
    }

    /// Far longer than a checkpoint of a few pages takes: only a thread that
    /// never checkpoints fails the test.
    const AT_MOST: Duration = Duration::from_secs(30);

    #[test]
    fn every_nth_commit_wakes_a_checkpoint_that_copies_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = database(&dir);
        let (tx, rounds) = channel();
        let checkpoints = Checkpoints::start_with(&path, 3, i64::MAX, move |round| {
            tx.send(round.unwrap()).unwrap();
        })
        .unwrap();
        commit(&conn, &checkpoints, 1);
        commit(&conn, &checkpoints, 2);
        assert!(rounds.try_recv().is_err(), "two commits wake nothing");
        commit(&conn, &checkpoints, 3);
        let round = rounds.recv_timeout(AT_MOST).unwrap();
        assert!(round.log > 0);
        assert_eq!(round.copied, round.log, "no reader holds the log back");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
    }

    #[test]
    fn a_long_log_is_made_to_start_over() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = database(&dir);
        let (tx, rounds) = channel();
        let checkpoints = Checkpoints::start_with(&path, 1, 4, move |round| {
            tx.send(round.unwrap()).unwrap();
        })
        .unwrap();
        // Each commit appends to the log until a restart lets the next one
        // write from its beginning again.
        let mut logs = Vec::new();
        for n in 0..8 {
            commit(&conn, &checkpoints, n);
            logs.push(rounds.recv_timeout(AT_MOST).unwrap().log);
        }
        assert!(
            logs.windows(2).any(|w| w[1] < w[0]),
            "the log started over: {logs:?}"
        );
        assert!(logs.iter().all(|&log| log <= 6), "bounded: {logs:?}");
    }
}
