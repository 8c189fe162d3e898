//! Account pre-hijacking: anyone may register someone else's address with a
//! password before its owner ever uses it. Proof of the address outranks what
//! was set before it: when a login is first proven by a code by someone who
//! holds no session of the account, every earlier session is revoked and any
//! password is removed, in the transaction that marks the login verified.

use crate::{App, AuthContext, ClientMeta};
use serde_json::json;
use sesame_core::{Error, SessionId};
use sesame_credentials::LoginMethod;
use sesame_events::topics;
use time::OffsetDateTime;

impl App {
    /// Reclaims the account of `method` if this proof is its first and the
    /// prover (`auth`) holds no session of it; `keep` is a session opened by
    /// the proof itself. Returns the sessions revoked, to drop from caches.
    pub(crate) async fn reclaim_on_first_proof(
        &self,
        tx: &mut crate::work::Work,
        method: &LoginMethod,
        auth: Option<&AuthContext>,
        keep: Option<SessionId>,
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionId>, Error> {
        let insider = auth.is_some_and(|a| a.principal_id == method.principal_id);
        if method.verified_at.is_some() || insider {
            return Ok(Vec::new());
        }
        let stores = &self.0.stores;
        let principal = method.principal_id;
        let revoked = stores
            .sessions
            .revoke_sessions_of(tx.as_mut(), principal, keep, "login_proven", now)
            .await?;
        let password_removed = stores
            .passwords
            .remove_password(tx.as_mut(), principal, now)
            .await?;
        if revoked.is_empty() && !password_removed {
            return Ok(revoked);
        }
        let data = json!({
            "login_id": method.id,
            "login_type": method.login_type.as_str(),
            "sessions_revoked": revoked.len(),
            "password_removed": password_removed,
        });
        self.announce(tx, principal, topics::ACCOUNT_RECLAIMED, meta, data, now)
            .await?;
        Ok(revoked)
    }

    /// Drops revoked sessions from the caches once their revocation committed.
    pub(crate) fn forget_sessions(&self, revoked: &[SessionId]) {
        if !revoked.is_empty() {
            metrics::counter!("sesame_sessions_revoked_total").increment(revoked.len() as u64);
        }
        for id in revoked {
            self.0.caches.sessions.invalidate(id);
        }
    }
}
