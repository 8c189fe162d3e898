//! Sign-in with an identifier and a password.

use crate::{App, ClientMeta, SessionGrant, SignInRequest};
use serde_json::json;
use sesame_core::{Error, ErrorCode};
use sesame_events::topics;

impl App {
    /// Signs in. An unknown identifier and a wrong password answer alike, after
    /// one hash verification each.
    pub async fn sign_in(
        &self,
        req: SignInRequest,
        meta: &ClientMeta,
    ) -> Result<SessionGrant, Error> {
        let login = req.login.normalise(&self.0.settings.normalise, "login")?;
        let password = match (req.password, req.code) {
            (Some(pw), None) => pw,
            (None, Some(_)) => return Err(Error::field("code", "unsupported")),
            (Some(_), Some(_)) => return Err(Error::field("code", "not_allowed_with_password")),
            (None, None) => return Err(Error::field("password", "required")),
        };
        if password.chars().count() > sesame_credentials::password::MAX_LEN {
            return Err(Error::field("password", "too_long"));
        }
        let stores = &self.0.stores;
        let method = stores
            .logins
            .find_login_method(login.login_type, &login.identifier)
            .await?;
        let stored_hash = match &method {
            Some(m) => stores.passwords.get_password(m.principal_id).await?,
            None => None,
        };
        let verified = self
            .0
            .hasher
            .verify(&password, stored_hash.as_deref())
            .await?;
        let method = match method {
            Some(m) if verified => m,
            _ => return Err(Error::code(ErrorCode::InvalidCredentials)),
        };
        let principal = stores.principals.get_principal(method.principal_id).await?;
        if !principal.is_active {
            return Err(Error::code(ErrorCode::AccountSuspended));
        }
        let now = self.0.clock.now();
        let session = self.new_session(principal.id, &principal.kind, &["pwd"], meta, now)?;
        let mut tx = stores.db.begin().await?;
        self.insert_session(tx.as_mut(), &session).await?;
        stores
            .principals
            .record_sign_in(tx.as_mut(), principal.id, now)
            .await?;
        stores
            .logins
            .touch_login_method(tx.as_mut(), method.id, now)
            .await?;
        let data = json!({
            "login_type": login.login_type.as_str(),
            "session_id": session.session.id,
            "method": "password",
        });
        self.announce(
            tx.as_mut(),
            principal.id,
            topics::USER_SIGNED_IN,
            meta,
            data,
            now,
        )
        .await?;
        stores.db.commit(tx).await?;
        self.grant_new(session, now)
    }
}
