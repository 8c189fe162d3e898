//! Recent proof for sensitive changes: a session that signed in or
//! re-authenticated within `reauth_window` may set a first password and bind
//! or unbind login methods; an older one (a stolen access token, a device left
//! signed in) must prove itself again first.

use crate::brute_force::Action;
use crate::{App, AuthContext, ClientMeta};
use serde::{Deserialize, Serialize};
use sesame_core::{Error, ErrorCode};
use sesame_credentials::{CodePurpose, LoginInput};
use time::OffsetDateTime;

/// `POST /v1/sessions/reauthenticate`: the password, or a `sign_in` code sent
/// to one of the caller's own logins.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reauthenticate {
    /// The account's password.
    pub password: Option<String>,
    /// A `sign_in` code.
    pub code: Option<String>,
    /// The login the code was sent to (required with `code`).
    pub login: Option<LoginInput>,
    /// The flow the code was sent for.
    pub verification_id: Option<String>,
}

/// The answer: the session, proven now.
#[derive(Debug, Clone, Serialize)]
pub struct Reauthenticated {
    /// The session.
    pub session_id: sesame_core::SessionId,
    /// When it proved itself.
    #[serde(with = "time::serde::rfc3339")]
    pub proven_at: OffsetDateTime,
}

impl App {
    /// Refuses with `403 reauthentication_required` unless the caller's session
    /// proved itself within the window (see `require_recent_proof`, which
    /// also asks for the second factor once one is enrolled).
    pub(crate) fn require_recent_window(&self, auth: &AuthContext) -> Result<(), Error> {
        let now = self.0.clock.now();
        if now - auth.proven_at <= self.0.settings.reauth_window {
            return Ok(());
        }
        Err(Error::problem(
            ErrorCode::ReauthenticationRequired,
            "Prove it is you again (POST /v1/sessions/reauthenticate) before this change",
        ))
    }

    /// Proves the caller's session again with its password or a code.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn reauthenticate(
        &self,
        auth: &AuthContext,
        req: Reauthenticate,
        meta: &ClientMeta,
    ) -> Result<Reauthenticated, Error> {
        let stores = &self.0.stores;
        self.limit_ip(Action::SignIn, meta).await?;
        self.limit_principal(Action::SignIn, auth.principal_id)
            .await?;
        match (req.password, req.code, req.login) {
            (Some(password), None, None) => {
                let _slot = self.hashing_slot(meta)?;
                let hash = stores.passwords.get_password(auth.principal_id).await?;
                let Some(hash) = hash else {
                    return Err(Error::field("password", "not_set"));
                };
                self.check_current_password(auth, &password, &hash, meta)
                    .await?;
            }
            (None, Some(code), Some(login)) => {
                let login = self.code_login(&login)?;
                let owned = stores
                    .logins
                    .find_login_method(login.login_type, &login.identifier)
                    .await?
                    .is_some_and(|m| m.principal_id == auth.principal_id);
                if !owned {
                    return Err(Error::field("login", "not_yours"));
                }
                let record = self
                    .check_code(
                        CodePurpose::SignIn,
                        &login,
                        None,
                        &code,
                        req.verification_id.as_deref(),
                        meta,
                    )
                    .await?;
                let now = self.0.clock.now();
                let mut tx = self.begin().await?;
                self.consume_code(tx.as_mut(), &record, now).await?;
                self.commit(tx).await?;
            }
            (None, Some(_), None) => return Err(Error::field("login", "required")),
            (Some(_), Some(_), _) => return Err(Error::field("code", "not_allowed_with_password")),
            (Some(_), None, Some(_)) => return Err(Error::field("login", "not_allowed")),
            (None, None, _) => return Err(Error::field("password", "required")),
        }
        let now = self.0.clock.now();
        if !stores
            .sessions
            .mark_session_proven(auth.session_id, now)
            .await?
        {
            return Err(Error::code(ErrorCode::InvalidToken));
        }
        self.0.caches.sessions.invalidate(&auth.session_id);
        Ok(Reauthenticated {
            session_id: auth.session_id,
            proven_at: now,
        })
    }
}
