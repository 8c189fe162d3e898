//! Checkpoints off the writers' threads.
//!
//! In WAL mode a commit appends pages to the log, and a checkpoint copies
//! them back into the database file: it reads the log, writes the pages and
//! syncs both files. SQLite runs it after the commit that takes the log
//! past 1,000 pages, on the committing connection: on a writer's thread,
//! where every write waits its turn. No connection of the store
//! checkpoints on its own; this thread does, on a connection of its own,
//! woken every [`EVERY`] commits on the writer thread's connection
//! ([`crate::direct::Direct`]) and at least every [`INTERVAL`] (for the
//! commits on sqlx's writer).
//!
//! A `PASSIVE` checkpoint waits for no one and copies what is committed, so
//! the writers go on meanwhile. The log starts over from its beginning
//! only when a writer finds it wholly copied, which a busy writer seldom
//! does: once the log is [`RESTART_AT`] pages long, a `RESTART` checkpoint
//! takes the writer's lock for the little left to copy and makes it start
//! over, which bounds the log's file.

use rusqlite::Connection;
use sesame_core::StoreError;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

/// Commits on the writer's connection between two wakes (each commit of a
/// sign-in adds about ten pages to the log).
const EVERY: u32 = 64;

/// Pages in the log (4 KiB each) past which it is made to start over.
const RESTART_AT: i64 = 16_384;

/// Longest time between two checkpoints (one finding nothing to copy
/// costs a few locks).
const INTERVAL: Duration = Duration::from_millis(200);

/// The checkpointing thread, as the writer's connection sees it.
#[derive(Debug)]
pub(crate) struct Checkpoints {
    wake: SyncSender<()>,
    commits: AtomicU32,
    every: u32,
    paused: Arc<AtomicBool>,
}

/// When the thread checkpoints.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    /// Every this many commits on the writer thread's connection.
    pub(crate) every: u32,
    /// And at least this often.
    pub(crate) interval: Duration,
    /// Restarting the log past this many pages.
    pub(crate) restart_at: i64,
    /// Whether it begins paused.
    pub(crate) paused: bool,
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
        let schedule = Schedule {
            every: EVERY,
            interval: INTERVAL,
            restart_at: RESTART_AT,
            paused: false,
        };
        Self::start_with(path, schedule, |_| {})
    }

    /// As `start`, on `schedule`, telling `done` the outcome of each round.
    pub(crate) fn start_with(
        path: &Path,
        schedule: Schedule,
        done: impl Fn(Result<Round, StoreError>) + Send + 'static,
    ) -> Result<Self, StoreError> {
        let conn = crate::direct::connect(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let (wake, woken) = sync_channel(1);
        let paused = Arc::new(AtomicBool::new(schedule.paused));
        let paused_here = paused.clone();
        std::thread::Builder::new()
            .name("sesame-checkpoint".into())
            .spawn(move || run(&conn, &woken, schedule, &paused_here, done))
            .map_err(|e| StoreError::unavailable_from("could not start the checkpoints", e))?;
        Ok(Self {
            wake,
            commits: AtomicU32::new(0),
            every: schedule.every,
            paused,
        })
    }

    /// Stops (or resumes) checkpointing here, while a bulk load leaves it
    /// to sqlx's writer, at long intervals.
    pub(crate) fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
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

/// Checkpoints at each wake and interval, until the writer's connection is
/// gone.
fn run(
    conn: &Connection,
    woken: &Receiver<()>,
    schedule: Schedule,
    paused: &AtomicBool,
    done: impl Fn(Result<Round, StoreError>),
) {
    loop {
        if let Err(RecvTimeoutError::Disconnected) = woken.recv_timeout(schedule.interval) {
            return;
        }
        if paused.load(Ordering::Relaxed) {
            continue;
        }
        let round = checkpoint(conn, "PASSIVE").and_then(|round| {
            if round.log >= schedule.restart_at {
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
    use std::sync::mpsc::{Receiver, channel};
    use std::time::Duration;

    /// A database in WAL mode that never checkpoints on its own, and the
    /// checkpoint thread on it, each round reported on the receiver.
    struct Started {
        /// Bound by each test, so that the files outlive it.
        _dir: tempfile::TempDir,
        conn: Connection,
        checkpoints: Checkpoints,
        rounds: Receiver<Round>,
    }

    fn start(schedule: Schedule) -> Started {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (n INTEGER);",
        )
        .unwrap();
        let (tx, rounds) = channel();
        let checkpoints = Checkpoints::start_with(&path, schedule, move |round| {
            let _ = tx.send(round.unwrap());
        })
        .unwrap();
        Started {
            _dir: dir,
            conn,
            checkpoints,
            rounds,
        }
    }

    fn commit(conn: &Connection, checkpoints: &Checkpoints, n: i64) {
        conn.execute("INSERT INTO t VALUES (?1)", [n]).unwrap();
        checkpoints.committed();
    }

    /// Far longer than a checkpoint of a few pages takes: only a thread that
    /// never checkpoints fails the test.
    const AT_MOST: Duration = Duration::from_secs(30);

    /// An interval no test lasts.
    const NEVER: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn every_nth_commit_wakes_a_checkpoint_that_copies_the_log() {
        let Started {
            _dir,
            conn,
            checkpoints,
            rounds,
        } = start(Schedule {
            every: 3,
            interval: NEVER,
            restart_at: i64::MAX,
            paused: false,
        });
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
    fn commits_elsewhere_are_checkpointed_at_the_interval_unless_paused() {
        let Started {
            _dir,
            conn,
            checkpoints,
            rounds,
        } = start(Schedule {
            every: u32::MAX,
            interval: Duration::from_millis(10),
            restart_at: i64::MAX,
            paused: true,
        });
        // Not counted: as a commit on sqlx's writer.
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        // Paused from the start: no round at all, for ten intervals.
        assert!(rounds.recv_timeout(Duration::from_millis(100)).is_err());
        checkpoints.pause(false);
        let round = rounds.recv_timeout(AT_MOST).unwrap();
        assert!(round.log > 0);
        assert_eq!(round.copied, round.log);
    }

    #[test]
    fn a_long_log_is_made_to_start_over() {
        let Started {
            _dir,
            conn,
            checkpoints,
            rounds,
        } = start(Schedule {
            every: 1,
            interval: NEVER,
            restart_at: 4,
            paused: false,
        });
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
