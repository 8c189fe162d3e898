//! The one commit path: a unit of work owns a flow's transaction and the
//! cached state its commit makes stale (account views of principals it
//! changed, sessions it ended), and drops that state once the commit holds.
//! Flows begin and commit through [`App::begin`] and [`App::commit`]; store
//! writes that commit on their own say so in their trait's documentation.

use crate::App;
use sesame_core::{Error, PrincipalId, SessionId, StoreError, Tx};

/// A flow's transaction and what its commit invalidates.
pub(crate) struct Work {
    tx: Box<dyn Tx>,
    principals: Vec<PrincipalId>,
    sessions: Vec<SessionId>,
    /// Whether it writes events: its commit wakes the relay.
    events: bool,
}

impl Work {
    /// The transaction, for store writes.
    pub(crate) fn as_mut(&mut self) -> &mut dyn Tx {
        self.tx.as_mut()
    }

    /// Notes that the commit changes what `principal`'s account view shows.
    pub(crate) fn touches(&mut self, principal: PrincipalId) {
        self.principals.push(principal);
    }

    /// Notes that the commit makes events for the relay.
    pub(crate) fn announces(&mut self) {
        self.events = true;
    }

    /// Notes that the commit ends `sessions`.
    pub(crate) fn ends(&mut self, sessions: &[SessionId]) {
        self.sessions.extend_from_slice(sessions);
    }
}

impl App {
    /// Starts a unit of work.
    pub(crate) async fn begin(&self) -> Result<Work, Error> {
        Ok(Work {
            tx: self.0.stores.db.begin().await?,
            principals: Vec::new(),
            sessions: Vec::new(),
            events: false,
        })
    }

    /// Runs `work`, a future that begins and commits its own unit of work,
    /// on the database's writer runtime when it has one (SQLite: see
    /// [`sesame_core::Database::writer_runtime`]), here otherwise, in the
    /// caller's tracing span. It runs to its end even when the caller stops
    /// waiting.
    pub(crate) async fn on_writer<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        let Some(runtime) = self.0.stores.db.writer_runtime() else {
            return work.await;
        };
        match runtime
            .spawn(tracing::Instrument::in_current_span(work))
            .await
        {
            Ok(done) => done,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StoreError::unavailable_from("the writer thread stopped", e).into()),
        }
    }

    /// Commits `work`, then drops the cached state it made stale. Dropping a
    /// unit of work instead rolls it back and leaves the caches alone.
    pub(crate) async fn commit(&self, work: Work) -> Result<(), Error> {
        self.0.stores.db.commit(work.tx).await?;
        if work.events {
            self.0.relay_wake.notify_one();
        }
        for principal in &work.principals {
            self.0.caches.me.invalidate(principal);
        }
        self.forget_sessions(&work.sessions);
        Ok(())
    }
}
