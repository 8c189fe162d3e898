//! Sign-in with an identifier and a password, or with a one-time code.

use crate::guard::{Action, locked, secs_until};
use crate::registration::Proof;
use crate::{App, ClientMeta, SessionGrant, SignInRequest};
use serde_json::json;
use sesame_core::{Error, ErrorCode};
use sesame_credentials::password::Verified;
use sesame_credentials::{
    CodePurpose, LoginAttempt, LoginMethod, LoginType, Principal, VerificationCode,
};
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
        let proof = Proof::of(req.password, req.code)?;
        let stores = &self.0.stores;
        let now = self.0.clock.now();
        self.limit_ip(Action::SignIn, meta).await?;
        let mut upgrade = None;
        // The principal read for the lock check is reused to open the session.
        let (method, code, principal) = match &proof {
            Proof::Password(password) => {
                if password.chars().count() > sesame_credentials::password::MAX_LEN {
                    return Err(Error::field("password", "too_long"));
                }
                let method = stores
                    .logins
                    .find_login_method(login.login_type, &login.identifier)
                    .await?;
                let principal = match &method {
                    Some(m) => Some(stores.principals.get_principal(m.principal_id).await?),
                    None => None,
                };
                // A lock answers before the password is looked at, identically
                // for every password and for logins that belong to nobody.
                let lock = match &principal {
                    Some(p) => p
                        .locked_until
                        .filter(|until| *until > now)
                        .map(|until| secs_until(until, now)),
                    None => self.unknown_login_lock(&login).await?,
                };
                if let Some(wait) = lock {
                    let id = principal.as_ref().map(|p| p.id);
                    self.record_failure(&login, id, ErrorCode::AccountLocked, meta)
                        .await?;
                    return Err(locked(wait));
                }
                if let Err(refused) = self.limit_login(Action::SignIn, &login).await {
                    let id = principal.as_ref().map(|p| p.id);
                    self.record_failure(&login, id, ErrorCode::RateLimited, meta)
                        .await?;
                    return Err(refused);
                }
                let stored_hash = match &method {
                    Some(m) => stores.passwords.get_password(m.principal_id).await?,
                    None => None,
                };
                let verdict = self
                    .0
                    .hasher
                    .check(password, stored_hash.as_deref())
                    .await?;
                match method {
                    Some(m) if verdict != Verified::No => {
                        // A hash made elsewhere or with an older cost is
                        // replaced, in the transaction that opens the session.
                        if let (Verified::Outdated, Some(old)) = (verdict, stored_hash) {
                            let new = self.0.hasher.hash(password).await?;
                            upgrade = Some((old, new));
                        }
                        (m, None, principal)
                    }
                    _ => {
                        let id = principal.as_ref().map(|p| p.id);
                        self.record_failure(&login, id, ErrorCode::InvalidCredentials, meta)
                            .await?;
                        if id.is_none() {
                            self.fail_unknown_login(&login).await?;
                        }
                        return Err(Error::code(ErrorCode::InvalidCredentials));
                    }
                }
            }
            Proof::Code(code) => {
                if login.login_type == LoginType::Username {
                    return Err(Error::field("login.type", "codes_not_supported"));
                }
                self.limit_login(Action::SignIn, &login).await?;
                let record = self
                    .check_code(CodePurpose::SignIn, &login, None, code, now)
                    .await?;
                let method = stores
                    .logins
                    .find_login_method(login.login_type, &login.identifier)
                    .await?
                    .ok_or_else(|| Error::code(ErrorCode::InvalidCode))?;
                (method, Some(record), None)
            }
        };
        self.open_session(
            method,
            principal,
            code,
            upgrade,
            proof.amr(login.login_type),
            meta,
        )
        .await
    }

    /// Opens a session for a principal that has proven itself with `method`
    /// (read here unless the caller already has it).
    async fn open_session(
        &self,
        method: LoginMethod,
        principal: Option<Principal>,
        code: Option<VerificationCode>,
        upgrade: Option<(String, String)>,
        amr: &str,
        meta: &ClientMeta,
    ) -> Result<SessionGrant, Error> {
        let stores = &self.0.stores;
        let principal = match principal {
            Some(p) => p,
            None => stores.principals.get_principal(method.principal_id).await?,
        };
        if !principal.is_active {
            return Err(Error::code(ErrorCode::AccountSuspended));
        }
        let now = self.0.clock.now();
        let session = self.new_session(principal.id, &principal.kind, &[amr], meta, now)?;
        let mut tx = stores.db.begin().await?;
        if let Some(code) = &code {
            self.consume_code(tx.as_mut(), code, now).await?;
            stores
                .logins
                .mark_login_verified(tx.as_mut(), method.id, now)
                .await?;
        }
        if let Some((old, new)) = &upgrade {
            let upgraded = stores
                .passwords
                .upgrade_hash(tx.as_mut(), principal.id, old, new, now)
                .await?;
            if upgraded {
                let scheme = sesame_credentials::password::legacy::Scheme::of(old);
                tracing::info!(principal = %principal.id, from = ?scheme, "password hash upgraded");
            }
        }
        self.insert_session(tx.as_mut(), &session).await?;
        stores
            .principals
            .record_sign_in(tx.as_mut(), principal.id, now)
            .await?;
        stores
            .logins
            .touch_login_method(tx.as_mut(), method.id, now)
            .await?;
        let attempt = LoginAttempt {
            id: uuid::Uuid::now_v7(),
            login_type: method.login_type,
            identifier: method.identifier.clone(),
            principal_id: Some(principal.id),
            ip: meta.ip.clone(),
            success: true,
            reason: None,
            at: now,
        };
        stores
            .attempts
            .record_attempt(tx.as_mut(), &attempt)
            .await?;
        let data = json!({
            "login_type": method.login_type.as_str(),
            "session_id": session.session.id,
            "method": amr,
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
        if code.is_some() {
            self.0.caches.me.invalidate(&principal.id);
        }
        self.grant_new(session, now)
    }
}
