//! Group commit for refresh-token rotations. Rotations queue here and one task
//! writes whatever has queued in a single transaction: the cost of a commit
//! (and of the hand-off to SQLite's thread) is shared by every rotation in it.
//! Each rotation stays atomic on its own: its successor is inserted only when
//! its own update marked the used token (`changes() = 1`).

use crate::{Connections, map_err};
use sesame_core::StoreError;
use sesame_credentials::RefreshToken;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashSet;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Most rotations written in one transaction.
const MAX_BATCH: usize = 64;

struct Rotation {
    used: Uuid,
    next: RefreshToken,
    at: OffsetDateTime,
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

/// The queue in front of the rotation writer.
#[derive(Debug, Clone)]
pub(crate) struct Rotator {
    queue: mpsc::UnboundedSender<Rotation>,
}

impl Rotator {
    /// Starts the writer task on the current runtime.
    pub(crate) fn spawn(writer: Connections) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(writer, rx));
        Self { queue }
    }

    /// Marks `used` used and stores `next`; false when `used` already was used.
    pub(crate) async fn rotate(
        &self,
        used: Uuid,
        next: &RefreshToken,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let stopped = || StoreError::unavailable("the rotation writer stopped");
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Rotation {
                used,
                next: next.clone(),
                at,
                reply,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(writer: Connections, mut rx: mpsc::UnboundedReceiver<Rotation>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        match write(&writer, &batch).await {
            Ok(inserted) => {
                for r in batch {
                    let _ = r.reply.send(Ok(inserted.contains(&r.next.id)));
                }
            }
            // One bad rotation must not fail the others: retry them one by one.
            Err(_) if batch.len() > 1 => {
                for r in batch {
                    let result = write(&writer, std::slice::from_ref(&r))
                        .await
                        .map(|ids| ids.contains(&r.next.id));
                    let _ = r.reply.send(result);
                }
            }
            Err(e) => {
                for r in batch {
                    let _ = r.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Writes a batch in one transaction; returns the ids of the successors stored.
async fn write(writer: &Connections, batch: &[Rotation]) -> Result<HashSet<Uuid>, StoreError> {
    let mut sql = String::from("BEGIN IMMEDIATE;\n");
    for _ in batch {
        sql.push_str(
            "UPDATE refresh_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL;
             INSERT INTO refresh_tokens (id, session_id, token_hash, parent_id, used_at, created_at, expires_at,
                                         secret_sealed, secret_key_id)
                 SELECT ?, ?, ?, ?, NULL, ?, ?, ?, ? WHERE changes() = 1 RETURNING id;\n",
        );
    }
    sql.push_str("COMMIT;");
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for r in batch {
        query = query
            .bind(r.at)
            .bind(r.used)
            .bind(r.next.id)
            .bind(r.next.session_id.0)
            .bind(r.next.token_hash.clone())
            .bind(r.next.parent_id)
            .bind(r.next.created_at)
            .bind(r.next.expires_at)
            .bind(r.next.secret_sealed.as_ref().map(|s| s.blob.clone()))
            .bind(r.next.secret_sealed.as_ref().map(|s| s.key_id.clone()));
    }
    let mut conn = writer.acquire().await.map_err(map_err)?;
    match query.fetch_all(&mut *conn).await {
        Ok(rows) => rows
            .iter()
            .map(|row| row.try_get::<Uuid, _>(0))
            .collect::<Result<_, _>>()
            .map_err(map_err),
        Err(e) => {
            // Leave the connection outside any transaction for the next writer.
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(map_err(e))
        }
    }
}
