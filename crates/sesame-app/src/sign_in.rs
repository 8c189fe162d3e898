//! Sign-in with an identifier and a password, or with a one-time code.

use crate::brute_force::{Action, locked, secs_until};
use crate::proof::Proof;
use crate::{App, ClientMeta, SignInRequest, SignedIn};
use serde_json::json;
use sesame_core::{Error, ErrorCode};
use sesame_credentials::password::Verified;
use sesame_credentials::{
    CodePurpose, Login, LoginAttempt, LoginMethod, LoginType, Principal, VerificationCode,
};
use sesame_events::topics;

/// A password attempt's claim on the principal's failure count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim {
    /// The count after this attempt was claimed.
    pub(crate) failures: i64,
    /// The attempt's number on the principal.
    pub(crate) seq: i64,
    /// The lock this claim set, should the attempt fail.
    pub(crate) lock: Option<time::OffsetDateTime>,
}

impl Claim {
    /// The lock this claim set, with the failure count that earned it.
    pub(crate) fn earned_lock(&self) -> Option<(i64, time::OffsetDateTime)> {
        self.lock.map(|until| (self.failures, until))
    }
}

/// What opening a session must know of the attempt that earned it.
struct Attempt<'a> {
    login: &'a Login,
    /// The password attempt's claim, if it was one.
    claimed: Option<Claim>,
    /// A hash to replace by a re-hash of the same password.
    upgrade: Option<(String, String)>,
}

/// Seconds left of `principal`'s lock at `now`, if one holds.
pub(crate) fn lock_left(principal: &Principal, now: time::OffsetDateTime) -> Option<u64> {
    principal
        .locked_until
        .filter(|until| *until > now)
        .map(|until| secs_until(until, now))
}

impl App {
    /// Signs in. An unknown identifier and a wrong password answer alike, after
    /// one hash verification each.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = tracing::field::Empty))]
    pub async fn sign_in(&self, req: SignInRequest, meta: &ClientMeta) -> Result<SignedIn, Error> {
        let method = if req.password.is_some() {
            "password"
        } else {
            "code"
        };
        let result = self.sign_in_once(req, meta).await;
        let mfa = matches!(result, Ok(SignedIn::Mfa(_)));
        crate::observe::sign_in(method, &result, mfa);
        result
    }

    async fn sign_in_once(&self, req: SignInRequest, meta: &ClientMeta) -> Result<SignedIn, Error> {
        let login = req.login.normalise(&self.0.settings.normalise, "login")?;
        let proof = Proof::of(req.password, req.code)?;
        let stores = &self.0.stores;
        let now = self.0.clock.now();
        self.limit_ip(Action::SignIn, meta).await?;
        let mut upgrade = None;
        // The principal read for the lock check is reused to open the session.
        let (method, code, principal, claimed) = match &proof {
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
                let id = principal.as_ref().map(|p| p.id);
                // A lock answers before the password is looked at, identically
                // for every password and for logins that belong to nobody.
                // Only a login that belongs to nobody keeps its count elsewhere.
                let unknown = match &principal {
                    Some(_) => None,
                    None => Some(self.unknown_login_budget(&login)?),
                };
                let lock = match (&principal, &unknown) {
                    (Some(p), _) => lock_left(p, now),
                    (None, Some(budget)) => self.budget_lock(budget).await?,
                    (None, None) => None,
                };
                if let Some(wait) = lock {
                    self.record_failure(&login, id, ErrorCode::AccountLocked, meta, None)
                        .await?;
                    return Err(locked(wait));
                }
                if let Err(refused) = self.limit_login(Action::SignIn, &login).await {
                    self.record_failure(&login, id, ErrorCode::RateLimited, meta, None)
                        .await?;
                    return Err(refused);
                }
                let _slot = self.hashing_slot(meta)?;
                // The attempt is counted before the password is verified.
                let claimed = match (&principal, &unknown) {
                    // With locking off there is no count to keep.
                    (Some(_), _) if self.0.settings.lockout.max_failures == 0 => Ok(None),
                    (Some(p), _) => self.claim_sign_in(p.clone(), now).await.map(Some),
                    (None, Some(budget)) => self
                        .claim_budget(budget, self.0.settings.lockout)
                        .await
                        .map(|()| None),
                    (None, None) => Ok(None),
                };
                let claimed = match claimed {
                    Ok(claimed) => claimed,
                    Err(refused) => {
                        self.record_failure(&login, id, refused.error_code(), meta, None)
                            .await?;
                        return Err(refused);
                    }
                };
                let stored_hash = match &method {
                    Some(m) => stores.passwords.get_password(m.principal_id).await?,
                    None => None,
                };
                let verdict = self
                    .0
                    .hasher
                    .check(password, stored_hash.as_deref())
                    .await?;
                match (method, claimed) {
                    (Some(m), claim) if verdict != Verified::No => {
                        // A hash made elsewhere or with an older cost is
                        // replaced, in the transaction that opens the session.
                        if let (Verified::Outdated, Some(old)) = (verdict, stored_hash) {
                            let new = self.0.hasher.hash(password).await?;
                            upgrade = Some((old, new));
                        }
                        (m, None, principal, claim)
                    }
                    (_, claim) => {
                        let lock = claim.and_then(|c| c.earned_lock());
                        self.record_failure(&login, id, ErrorCode::InvalidCredentials, meta, lock)
                            .await?;
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
                    .check_code(
                        CodePurpose::SignIn,
                        &login,
                        None,
                        code,
                        req.verification_id.as_deref(),
                        meta,
                    )
                    .await?;
                let method = stores
                    .logins
                    .find_login_method(login.login_type, &login.identifier)
                    .await?
                    .ok_or_else(|| Error::code(ErrorCode::InvalidCode))?;
                (method, Some(record), None, None)
            }
        };
        let attempt = Attempt {
            login: &login,
            claimed,
            upgrade,
        };
        self.open_session(
            method,
            principal,
            code,
            attempt,
            proof.amr(login.login_type),
            meta,
        )
        .await
    }

    /// Claims a sign-in attempt on `principal` before its password is
    /// verified (see [`sesame_credentials::PrincipalStore::claim_sign_in_attempt`]): the count
    /// goes up, and the claim that reaches the limit sets the lock itself, so
    /// that attempts released together verify at most the limit.
    pub(crate) async fn claim_sign_in(
        &self,
        mut principal: Principal,
        now: time::OffsetDateTime,
    ) -> Result<Claim, Error> {
        let stores = &self.0.stores;
        // Each lost race means another attempt was counted; the limit bounds them.
        for _ in 0..=self.0.settings.lockout.max_failures.max(4) * 2 {
            if let Some(wait) = lock_left(&principal, now) {
                return Err(locked(wait));
            }
            let failures = principal.failed_attempts + 1;
            let lock = self.0.settings.lockout.lock_for(failures).map(|d| now + d);
            if let Some(seq) = stores
                .principals
                .claim_sign_in_attempt(
                    principal.id,
                    principal.failed_attempts,
                    principal.locked_until,
                    lock,
                    now,
                )
                .await?
            {
                return Ok(Claim {
                    failures,
                    seq,
                    lock,
                });
            }
            principal = stores.principals.get_principal(principal.id).await?;
        }
        Err(Error::Busy {
            code: ErrorCode::Overloaded,
            retry_after_secs: 1,
        })
    }

    /// Notes a successful sign-in with the login method `method_id` (`login`)
    /// in the transaction that opens its session: the method's last use and
    /// the attempt.
    pub(crate) async fn note_sign_in(
        &self,
        tx: &mut dyn sesame_core::Tx,
        method_id: uuid::Uuid,
        login: &Login,
        principal: sesame_core::PrincipalId,
        meta: &ClientMeta,
        now: time::OffsetDateTime,
    ) -> Result<(), Error> {
        let stores = &self.0.stores;
        stores.logins.touch_login_method(tx, method_id, now).await?;
        let attempt = LoginAttempt {
            id: uuid::Uuid::now_v7(),
            login_type: login.login_type,
            identifier: login.identifier.clone(),
            principal_id: Some(principal),
            ip: meta.ip.clone(),
            success: true,
            reason: None,
            at: now,
        };
        stores.attempts.record_attempt(tx, &attempt).await?;
        Ok(())
    }

    /// Opens a session for a principal that has proven itself with `method`
    /// (read here unless the caller already has it), or, when it has a second
    /// factor enrolled, the challenge to finish with.
    async fn open_session(
        &self,
        method: LoginMethod,
        principal: Option<Principal>,
        code: Option<VerificationCode>,
        attempt: Attempt<'_>,
        amr: &str,
        meta: &ClientMeta,
    ) -> Result<SignedIn, Error> {
        let stores = &self.0.stores;
        let principal = match principal {
            Some(p) => p,
            None => stores.principals.get_principal(method.principal_id).await?,
        };
        crate::record_principal(principal.id);
        if !principal.is_active {
            return Err(Error::code(ErrorCode::AccountSuspended));
        }
        let mfa = stores.mfa.mfa_summary(principal.id).await?;
        let second_factor = mfa.enrolled();
        let now = self.0.clock.now();
        let session = if second_factor {
            None
        } else {
            Some(self.new_session(principal.id, &principal.kind, &[amr], meta, now)?)
        };
        let mut tx = self.begin().await?;
        let claimed = attempt.claimed;
        // A right first factor clears the count only if no other attempt
        // reached the principal since this one was claimed: a burst of
        // guesses cannot slip a right one past the lock (and the right one
        // answers like a wrong one). With a second factor to come, it is not
        // a success yet: its own attempt is given back, but the count is not
        // cleared, so guesses at the second factor add up across sign-ins.
        let counted = match (second_factor, claimed) {
            (true, Some(c)) => {
                stores
                    .principals
                    .give_back_sign_in_claim(
                        tx.as_mut(),
                        principal.id,
                        c.seq,
                        c.lock.is_some(),
                        now,
                    )
                    .await?
            }
            (true, None) => true,
            (false, _) => {
                stores
                    .principals
                    .record_sign_in(tx.as_mut(), principal.id, claimed.map(|c| c.seq), now)
                    .await?
            }
        };
        if !counted {
            drop(tx);
            let lock = claimed.and_then(|c| c.earned_lock());
            self.record_failure(
                attempt.login,
                Some(principal.id),
                ErrorCode::InvalidCredentials,
                meta,
                lock,
            )
            .await?;
            return Err(Error::code(ErrorCode::InvalidCredentials));
        }
        let mut revoked = Vec::new();
        if let Some(code) = &code {
            self.consume_code(tx.as_mut(), code, now).await?;
            revoked = self
                .reclaim_on_first_proof(
                    &mut tx,
                    &method,
                    None,
                    session.as_ref().map(|s| s.session.id),
                    meta,
                    now,
                )
                .await?;
            stores
                .logins
                .mark_login_verified(tx.as_mut(), method.id, now)
                .await?;
        }
        if let Some((old, new)) = &attempt.upgrade {
            let upgraded = stores
                .passwords
                .upgrade_hash(tx.as_mut(), principal.id, old, new, now)
                .await?;
            if upgraded {
                let scheme = sesame_credentials::password::legacy::Scheme::of(old);
                tracing::info!(principal = %principal.id, from = ?scheme, "password hash upgraded");
            }
        }
        tx.ends(&revoked);
        if code.is_some() {
            tx.touches(principal.id);
        }
        let Some(session) = session else {
            let challenge = self
                .open_challenge(tx.as_mut(), &principal, &method, mfa, amr, now)
                .await?;
            self.commit(tx).await?;
            return Ok(SignedIn::Mfa(challenge));
        };
        self.insert_session(tx.as_mut(), &session).await?;
        let login = Login {
            login_type: method.login_type,
            identifier: method.identifier.clone(),
        };
        self.note_sign_in(tx.as_mut(), method.id, &login, principal.id, meta, now)
            .await?;
        let data = json!({
            "login_type": method.login_type.as_str(),
            "session_id": session.session.id,
            "method": amr,
        });
        self.announce(
            &mut tx,
            principal.id,
            topics::USER_SIGNED_IN,
            meta,
            data,
            now,
        )
        .await?;
        self.commit(tx).await?;
        self.grant_new(session, now).await.map(SignedIn::Session)
    }
}
