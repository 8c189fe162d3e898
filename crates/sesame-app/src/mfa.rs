//! Second factors at sign-in and step-up: the challenge a first factor earns
//! when a second is enrolled, checking a TOTP code, a backup code or a
//! security key against it, and raising a session to `aal2` in place
//! (enrolment: [`crate::totp`], [`crate::security_keys`]).
//!
//! Every guess at a second factor is claimed before it is evaluated: a try
//! on the challenge (five per challenge) and an attempt on the principal's
//! failure count, so that guesses lock the account as wrong passwords do. A
//! TOTP code is accepted by a compare-and-set of its time step and a backup
//! code by marking it used, each in the transaction that opens the session,
//! so a code works once however many requests carry it at the same instant.

use crate::brute_force::{Action, locked};
use crate::sign_in::lock_left;
use crate::{
    App, AuthContext, ClientMeta, MfaChallengeView, SessionGrant, SignedIn, views::MfaVerify,
};
use serde_json::json;
use sesame_core::{Error, ErrorCode, PrincipalId};
use sesame_credentials::mfa::normalise_backup_code;
use sesame_credentials::{Login, LoginMethod, MfaChallenge, Principal};
use sesame_events::topics;
use time::OffsetDateTime;

/// A second factor as presented, checked as far as it can be outside the
/// transaction that accepts it.
enum Factor {
    /// A TOTP code that matched this time step.
    Totp(i64),
    /// A backup code with this hash (whether it is unused, only marking it
    /// used can tell).
    Backup(Vec<u8>),
    /// A security key's assertion that verified: the key's use to record,
    /// by compare-and-set on the counter it was read with.
    SecurityKey(Box<crate::security_keys::KeyUse>),
}

impl Factor {
    /// Its RFC 8176 method name, as `amr` carries it.
    fn amr(&self) -> &'static str {
        match self {
            Factor::Totp(_) => "otp",
            Factor::Backup(_) => "backup_code",
            Factor::SecurityKey(_) => "hwk",
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Factor::Totp(_) => "totp",
            Factor::Backup(_) => "backup_code",
            Factor::SecurityKey(_) => "webauthn",
        }
    }
}

/// What a second factor was presented as.
enum Presented<'a> {
    Code(&'a str),
    Backup(&'a str),
    SecurityKey {
        ceremony_id: &'a str,
        credential: &'a serde_json::Value,
    },
}

impl<'a> Presented<'a> {
    fn of(req: &'a MfaVerify) -> Result<Self, Error> {
        match (
            &req.code,
            &req.backup_code,
            &req.ceremony_id,
            &req.credential,
        ) {
            (Some(code), None, None, None) => Ok(Presented::Code(code)),
            (None, Some(code), None, None) => Ok(Presented::Backup(code)),
            (None, None, Some(ceremony_id), Some(credential)) => Ok(Presented::SecurityKey {
                ceremony_id,
                credential,
            }),
            (None, None, Some(_), None) => Err(Error::field("credential", "required")),
            (None, None, None, Some(_)) => Err(Error::field("ceremony_id", "required")),
            (None, None, None, None) => Err(Error::field("code", "required")),
            (Some(_), ..) => Err(Error::field("code", "one_factor_only")),
            (None, Some(_), ..) => Err(Error::field("backup_code", "one_factor_only")),
        }
    }
}

pub(crate) fn wrong_code() -> Error {
    Error::code(ErrorCode::InvalidCode)
}

impl App {
    /// Refuses a sensitive change unless the caller's session proved itself
    /// recently and, once the principal has a second factor, with it (`403
    /// mfa_required`; `POST /v1/sessions/mfa` raises the session in place).
    pub(crate) async fn require_recent_proof(&self, auth: &AuthContext) -> Result<(), Error> {
        self.require_second_factor(auth).await?;
        self.require_recent_window(auth)
    }

    /// Refuses with `403 mfa_required` when the principal has a second factor
    /// and the caller's session did not prove it (`aal1`).
    pub(crate) async fn require_second_factor(&self, auth: &AuthContext) -> Result<(), Error> {
        if auth.aal == "aal2" {
            return Ok(());
        }
        if self
            .0
            .stores
            .mfa
            .mfa_summary(auth.principal_id)
            .await?
            .enrolled()
        {
            return Err(Error::problem(
                ErrorCode::MfaRequired,
                "This change needs a second factor: POST /v1/sessions/mfa with this session",
            ));
        }
        Ok(())
    }

    /// How many second-factor guesses have been evaluated.
    pub fn mfa_evaluations(&self) -> u64 {
        self.0.backup.evaluated()
    }

    /// Checks a presented second factor as far as it can be before the
    /// transaction that accepts it; `None` when it is wrong.
    async fn check_factor(
        &self,
        principal: PrincipalId,
        presented: &Presented<'_>,
        now: OffsetDateTime,
    ) -> Result<Option<Factor>, Error> {
        match presented {
            Presented::Code(code) => {
                let factor = self.0.stores.mfa.get_totp(principal).await?;
                let Some(factor) = factor.filter(|f| f.confirmed_at.is_some()) else {
                    self.0.backup.note_evaluated();
                    return Ok(None);
                };
                Ok(self.totp_step(&factor, code, now)?.map(Factor::Totp))
            }
            Presented::Backup(code) => {
                self.0.backup.note_evaluated();
                let Some(canonical) = normalise_backup_code(code) else {
                    return Ok(None);
                };
                Ok(Some(Factor::Backup(
                    self.0.backup.hash(principal, &canonical)?,
                )))
            }
            Presented::SecurityKey {
                ceremony_id,
                credential,
            } => {
                self.0.backup.note_evaluated();
                let used = self
                    .check_security_key(principal, ceremony_id, credential, now)
                    .await?;
                Ok(used.map(|u| Factor::SecurityKey(Box::new(u))))
            }
        }
    }

    /// Accepts a checked factor in `tx`: the TOTP step by compare-and-set, or
    /// the backup code by marking it used. False when another request got
    /// there first.
    async fn accept_factor(
        &self,
        tx: &mut dyn sesame_core::Tx,
        principal: PrincipalId,
        factor: &Factor,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        let mfa = &self.0.stores.mfa;
        Ok(match factor {
            Factor::Totp(step) => mfa.accept_totp_step(tx, principal, *step).await?,
            Factor::Backup(hash) => mfa.use_backup_code(tx, principal, hash, now).await?,
            Factor::SecurityKey(used) => {
                self.0
                    .stores
                    .passkeys
                    .record_security_key_use(tx, used.key.id, used.seen_counter, &used.key, now)
                    .await?
            }
        })
    }

    /// A first factor proven while a second is enrolled: the challenge to
    /// finish with, stored in the caller's transaction.
    pub(crate) async fn open_challenge(
        &self,
        tx: &mut dyn sesame_core::Tx,
        principal: &Principal,
        method: &LoginMethod,
        mfa: sesame_credentials::MfaSummary,
        amr: &str,
        now: OffsetDateTime,
    ) -> Result<MfaChallengeView, Error> {
        let (id, id_hash) = crate::new_opaque_id()?;
        let ttl = self.0.settings.mfa_challenge_ttl;
        let challenge = MfaChallenge {
            id_hash,
            principal_id: principal.id,
            login_id: method.id,
            login_type: method.login_type,
            identifier: method.identifier.clone(),
            amr: vec![amr.to_owned()],
            attempts: 0,
            created_at: now,
            expires_at: now + ttl,
            consumed_at: None,
        };
        self.0
            .stores
            .mfa
            .insert_mfa_challenge(tx, &challenge)
            .await?;
        Ok(MfaChallengeView {
            mfa_required: true,
            challenge_id: id,
            factors: [
                (mfa.totp, "totp"),
                (mfa.security_keys > 0, "webauthn"),
                (mfa.backup_codes_left > 0, "backup_code"),
            ]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect(),
            expires_in: ttl.whole_seconds(),
        })
    }

    /// `POST /v1/sessions/mfa`: finishes a sign-in challenge with a second
    /// factor (a new `aal2` session), or, with the caller's session and no
    /// challenge, raises that session to `aal2` in place.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = tracing::field::Empty))]
    pub async fn verify_mfa(
        &self,
        req: MfaVerify,
        auth: Option<&AuthContext>,
        meta: &ClientMeta,
    ) -> Result<SignedIn, Error> {
        let presented = Presented::of(&req)?;
        match (&req.challenge_id, auth) {
            (Some(id), _) => {
                let result = self.finish_challenge(id, &presented, meta).await;
                crate::observe::sign_in("second_factor", &result, false);
                result.map(SignedIn::Session)
            }
            (None, Some(auth)) => self
                .raise_session(auth, &presented, meta)
                .await
                .map(SignedIn::Session),
            (None, None) => Err(Error::field("challenge_id", "required")),
        }
    }

    async fn finish_challenge(
        &self,
        id: &str,
        presented: &Presented<'_>,
        meta: &ClientMeta,
    ) -> Result<SessionGrant, Error> {
        let stores = &self.0.stores;
        self.limit_ip(Action::SignIn, meta).await?;
        let now = self.0.clock.now();
        let tries = self.0.settings.mfa_challenge_tries;
        let Some(challenge) = stores
            .mfa
            .claim_mfa_try(&crate::hash_opaque_id(id), tries, now)
            .await?
        else {
            return Err(Error::problem(
                ErrorCode::CodeExpired,
                "The challenge has expired, was used or has no tries left: sign in again",
            ));
        };
        crate::record_principal(challenge.principal_id);
        let login = Login {
            login_type: challenge.login_type,
            identifier: challenge.identifier.clone(),
        };
        let principal = stores
            .principals
            .get_principal(challenge.principal_id)
            .await?;
        let (factor, claim) = self
            .claimed_check(&principal, &login, presented, meta, now)
            .await?;
        let Some(factor) = factor else {
            return self.refuse_factor(&login, principal.id, claim, meta).await;
        };
        if !principal.is_active {
            return Err(Error::code(ErrorCode::AccountSuspended));
        }
        let mut amr: Vec<&str> = challenge.amr.iter().map(String::as_str).collect();
        // Two factors of one method (an e-mailed code, then TOTP) read as
        // RFC 8176's `mfa` beside it.
        amr.push(if amr.contains(&factor.amr()) {
            "mfa"
        } else {
            factor.amr()
        });
        let mut session = self.new_session(principal.id, &principal.kind, &amr, meta, now)?;
        session.session.aal = "aal2".into();
        let mut tx = self.begin().await?;
        let accepted = self
            .accept_factor(tx.as_mut(), principal.id, &factor, now)
            .await?
            && stores
                .mfa
                .consume_mfa_challenge(tx.as_mut(), &challenge.id_hash, now)
                .await?
            && stores
                .principals
                .record_sign_in(tx.as_mut(), principal.id, claim.map(|c| c.seq), now)
                .await?;
        if !accepted {
            drop(tx);
            return self.refuse_factor(&login, principal.id, claim, meta).await;
        }
        self.insert_session(tx.as_mut(), &session).await?;
        self.note_sign_in(
            tx.as_mut(),
            challenge.login_id,
            &login,
            principal.id,
            meta,
            now,
        )
        .await?;
        let data = json!({
            "login_type": login.login_type.as_str(),
            "session_id": session.session.id,
            "method": challenge.amr.first(),
            "second_factor": factor.name(),
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
        if matches!(factor, Factor::Backup(_)) {
            tx.touches(principal.id);
        }
        self.commit(tx).await?;
        self.grant_new(session, now).await
    }

    /// Raises the caller's own session to `aal2` with a second factor.
    async fn raise_session(
        &self,
        auth: &AuthContext,
        presented: &Presented<'_>,
        meta: &ClientMeta,
    ) -> Result<SessionGrant, Error> {
        let stores = &self.0.stores;
        crate::record_principal(auth.principal_id);
        self.limit_principal(Action::SignIn, auth.principal_id)
            .await?;
        let now = self.0.clock.now();
        let session = stores.sessions.get_session(auth.session_id).await?;
        let principal = stores.principals.get_principal(auth.principal_id).await?;
        // Failures are recorded against the login the session began with.
        let methods = stores.logins.list_login_methods(principal.id).await?;
        let login = methods
            .first()
            .map(|m| Login {
                login_type: m.login_type,
                identifier: m.identifier.clone(),
            })
            .ok_or_else(|| Error::code(ErrorCode::InvalidToken))?;
        let (factor, claim) = self
            .claimed_check(&principal, &login, presented, meta, now)
            .await?;
        let Some(factor) = factor else {
            return self.refuse_factor(&login, principal.id, claim, meta).await;
        };
        let mut amr = session.amr.clone();
        if !amr.iter().any(|m| m == factor.amr()) {
            amr.push(factor.amr().to_owned());
        }
        let mut tx = self.begin().await?;
        let accepted = self
            .accept_factor(tx.as_mut(), principal.id, &factor, now)
            .await?
            && stores
                .principals
                .record_sign_in(tx.as_mut(), principal.id, claim.map(|c| c.seq), now)
                .await?;
        if !accepted {
            drop(tx);
            return self.refuse_factor(&login, principal.id, claim, meta).await;
        }
        if !stores
            .sessions
            .upgrade_session(tx.as_mut(), auth.session_id, "aal2", &amr, now)
            .await?
        {
            return Err(Error::code(ErrorCode::InvalidToken));
        }
        let data = json!({
            "session_id": auth.session_id,
            "aal": "aal2",
            "second_factor": factor.name(),
        });
        self.announce(
            &mut tx,
            principal.id,
            topics::SESSION_RAISED,
            meta,
            data,
            now,
        )
        .await?;
        if matches!(factor, Factor::Backup(_)) {
            tx.touches(principal.id);
        }
        self.commit(tx).await?;
        self.0.caches.sessions.invalidate(&auth.session_id);
        let session = stores.sessions.get_session(auth.session_id).await?;
        self.grant(&session, None, now).await
    }

    /// The lock check and the claim on the principal's failure count, then
    /// the factor checked: what every guess at a second factor goes through.
    async fn claimed_check(
        &self,
        principal: &Principal,
        login: &Login,
        presented: &Presented<'_>,
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<(Option<Factor>, Option<crate::sign_in::Claim>), Error> {
        if let Some(wait) = lock_left(principal, now) {
            self.record_failure(
                login,
                Some(principal.id),
                ErrorCode::AccountLocked,
                meta,
                None,
            )
            .await?;
            return Err(locked(wait));
        }
        let claim = if self.0.settings.lockout.max_failures == 0 {
            None
        } else {
            match self.claim_sign_in(principal.clone(), now).await {
                Ok(claim) => Some(claim),
                Err(refused) => {
                    self.record_failure(
                        login,
                        Some(principal.id),
                        refused.error_code(),
                        meta,
                        None,
                    )
                    .await?;
                    return Err(refused);
                }
            }
        };
        let factor = self.check_factor(principal.id, presented, now).await?;
        Ok((factor, claim))
    }
}

impl App {
    /// Answers a wrong second factor: the failure is recorded against the
    /// login, with the lock its claim earned.
    async fn refuse_factor<T>(
        &self,
        login: &Login,
        principal: PrincipalId,
        claim: Option<crate::sign_in::Claim>,
        meta: &ClientMeta,
    ) -> Result<T, Error> {
        let lock = claim.and_then(|c| c.earned_lock());
        self.record_failure(login, Some(principal), ErrorCode::InvalidCode, meta, lock)
            .await?;
        Err(wrong_code())
    }
}
