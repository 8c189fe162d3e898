//! The one commit path: a unit of work owns a flow's transaction and the
//! cached state its commit makes stale (account views of principals it
//! changed, sessions it ended), and drops that state once the commit holds.
//! Flows begin and commit through [`App::begin`] and [`App::commit`]; store
//! writes that commit on their own say so in their trait's documentation.

use crate::App;
use sesame_core::{Error, Finish, Grouped, PrincipalId, SessionId, StoreError, Tx};
use std::cell::RefCell;

/// A flow's transaction and what its commit invalidates.
pub(crate) struct Work {
    tx: Box<dyn Tx>,
    stale: Stale,
}

/// What a commit makes stale.
#[derive(Default)]
struct Stale {
    principals: Vec<PrincipalId>,
    sessions: Vec<SessionId>,
    /// Whether it writes events: its commit wakes the relay.
    events: bool,
}

tokio::task_local! {
    /// In work run by [`App::on_writer`]: what its commits made stale, dropped
    /// once they hold (in a group, its commits are savepoints until the
    /// group commits).
    static STALE_LATER: RefCell<Vec<Stale>>;
}

impl Work {
    /// The transaction, for store writes.
    pub(crate) fn as_mut(&mut self) -> &mut dyn Tx {
        self.tx.as_mut()
    }

    /// Notes that the commit changes what `principal`'s account view shows.
    pub(crate) fn touches(&mut self, principal: PrincipalId) {
        self.stale.principals.push(principal);
    }

    /// Notes that the commit makes events for the relay.
    pub(crate) fn announces(&mut self) {
        self.stale.events = true;
    }

    /// Notes that the commit ends `sessions`.
    pub(crate) fn ends(&mut self, sessions: &[SessionId]) {
        self.stale.sessions.extend_from_slice(sessions);
    }
}

impl App {
    /// Starts a unit of work.
    pub(crate) async fn begin(&self) -> Result<Work, Error> {
        Ok(Work {
            tx: self.0.stores.db.begin().await?,
            stale: Stale::default(),
        })
    }

    /// Runs `work`, a future that begins and commits its own units of work,
    /// in a group with other writes where the database groups them (SQLite:
    /// see [`sesame_core::Database::grouped`]), here otherwise, in the
    /// caller's tracing span; answers once its commits hold. In a group it
    /// runs to its end even when the caller stops waiting.
    pub(crate) async fn on_writer<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let app = self.clone();
        let unit = async move {
            let (done, stale) = STALE_LATER
                .scope(RefCell::default(), async {
                    let done = work.await;
                    (done, STALE_LATER.with(RefCell::take))
                })
                .await;
            let finish: Finish = Box::new(move |committed: Result<(), StoreError>| {
                let reply = match committed {
                    Ok(()) => {
                        for stale in stale {
                            app.forget(stale);
                        }
                        done
                    }
                    Err(e) => done.and(Err(e.into())),
                };
                let _ = answer.send(reply);
            });
            finish
        };
        let unit: Grouped = Box::pin(tracing::Instrument::in_current_span(unit));
        if let Err(unit) = self.0.stores.db.grouped(unit) {
            unit.await(Ok(()));
        }
        answered
            .await
            .map_err(|_| StoreError::unavailable("the writer stopped").into())
            .and_then(|done| done)
    }

    /// Commits `work`, then drops the cached state it made stale (in work run
    /// by [`App::on_writer`], once that work's commits hold). Dropping a unit
    /// of work instead rolls it back and leaves the caches alone.
    pub(crate) async fn commit(&self, work: Work) -> Result<(), Error> {
        self.0.stores.db.commit(work.tx).await?;
        let mut stale = Some(work.stale);
        let _ = STALE_LATER.try_with(|later| later.borrow_mut().extend(stale.take()));
        if let Some(stale) = stale {
            self.forget(stale);
        }
        Ok(())
    }

    fn forget(&self, stale: Stale) {
        if stale.events {
            self.0.relay_wake.notify_one();
        }
        for principal in &stale.principals {
            self.0.caches.me.invalidate(principal);
        }
        self.forget_sessions(&stale.sessions);
    }
}
