//! Verification codes: sending them (always `202`, whether or not the login
//! exists), checking them inside other flows, and confirming a login method.

use crate::brute_force::Action;
use crate::brute_force::Refusal;
use crate::outgoing::CodeJob;
use crate::{App, AuthContext, ClientMeta, LoginView};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sesame_core::{Error, ErrorCode, Tx};
use sesame_credentials::codes::MAX_ATTEMPTS;
use sesame_credentials::{CodePurpose, Login, LoginInput, LoginType, VerificationCode};
use sesame_events::topics;
use time::OffsetDateTime;

/// `POST /v1/verifications`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// Where to send the code.
    pub login: LoginInput,
    /// What the code will be used for.
    pub purpose: CodePurpose,
}

/// The answer to a code request: the flow's id, to give back on confirmation
/// (a random one when nothing was sent, so that the answers look alike).
#[derive(Debug, Clone, Serialize)]
pub struct CodeSent {
    /// Names the code on confirmation.
    pub verification_id: String,
}

/// `POST /v1/verifications/confirm`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    /// The login the code was sent to.
    pub login: LoginInput,
    /// The six digits.
    pub code: String,
    /// The flow the code was sent for, as `POST /v1/verifications` returned it.
    pub verification_id: Option<String>,
}

impl App {
    /// Normalises a login that codes can be sent to (e-mail or phone).
    pub(crate) fn code_login(&self, input: &LoginInput) -> Result<Login, Error> {
        let login = input.normalise(&self.0.settings.normalise, "login")?;
        if login.login_type == LoginType::Username {
            return Err(Error::field("login.type", "codes_not_supported"));
        }
        Ok(login)
    }

    /// Issues a code and sends it when the purpose fits the login's state. The
    /// answer, its time and the cooldown are the same whether or not anything
    /// was sent; the flow id it returns names the code on confirmation.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn send_code(
        &self,
        req: CodeRequest,
        auth: Option<&AuthContext>,
        meta: &ClientMeta,
    ) -> Result<CodeSent, Error> {
        let login = self.code_login(&req.login)?;
        self.limit_ip(Action::SendCode, meta).await?;
        self.limit_login(Action::SendCode, &login).await?;
        if req.purpose == CodePurpose::Bind && auth.is_none() {
            return Err(Error::problem(
                ErrorCode::InvalidToken,
                "Binding needs a signed-in caller",
            ));
        }
        self.issue_code(req.purpose, &login, auth, meta).await
    }

    /// Issues a code for `login`; `auth` is the signed-in caller, if any. A
    /// code is stored (and sent) only when the purpose fits the login; the
    /// cooldown and the answer do not tell which.
    pub(crate) async fn issue_code(
        &self,
        purpose: CodePurpose,
        login: &Login,
        auth: Option<&AuthContext>,
        meta: &ClientMeta,
    ) -> Result<CodeSent, Error> {
        let subject = &subject_of(purpose, auth);
        let now = self.0.clock.now();
        let stores = &self.0.stores;
        if let Some(wait) = self.code_cooldown(purpose, login, subject, meta).await? {
            return Err(Error::Busy {
                code: ErrorCode::RateLimited,
                retry_after_secs: wait,
            });
        }
        let existing = stores
            .logins
            .find_login_method(login.login_type, &login.identifier)
            .await?;
        let deliver = match purpose {
            CodePurpose::Register | CodePurpose::Bind => existing.is_none(),
            CodePurpose::SignIn | CodePurpose::Verify => existing.is_some(),
            CodePurpose::Reset => existing.is_some_and(|m| m.verified_at.is_some()),
        };
        let (code, record) = self.0.codes.issue(purpose, login, subject, now)?;
        let verification_id = record.flow_id.clone();
        // The same hand-over either way: storing and sending happen after.
        self.0.outgoing.enqueue(CodeJob {
            send: deliver.then_some((record, code)),
            purpose,
            login: login.clone(),
        })?;
        Ok(CodeSent { verification_id })
    }

    /// Starts the resend cooldown of a login for this client, or returns the
    /// seconds left of the running one: one atomic step in the shared limits
    /// (in this process, or Redis for every instance). Keyed by the client's
    /// network too, so that a stranger asking for codes does not hold the
    /// owner's cooldown. Should Redis fail, the newest stored code decides.
    async fn code_cooldown(
        &self,
        purpose: CodePurpose,
        login: &Login,
        subject: &str,
        meta: &ClientMeta,
    ) -> Result<Option<u64>, Error> {
        let cooldown = self.0.settings.code_resend_cooldown;
        if !cooldown.is_positive() {
            return Ok(None);
        }
        let network = meta.ip.as_deref().map_or_else(String::new, |ip| {
            crate::client_network(ip, self.0.settings.rate_limits.ipv6_prefix)
        });
        let key = self
            .0
            .codes
            .cooldown_key(purpose, login, &format!("{subject}\n{network}"))?;
        let ttl = std::time::Duration::from_secs(cooldown.whole_seconds().max(0) as u64);
        match self.0.stores.limits.start_cooldown(&key, ttl).await {
            Ok(left) => return Ok(left),
            Err(e) => tracing::warn!(error = %e, "cooldowns unavailable; using the code store"),
        }
        let now = self.0.clock.now();
        let previous = self
            .0
            .stores
            .codes
            .find_code(purpose, login.login_type, &login.identifier, subject)
            .await?;
        Ok(previous.and_then(|previous| {
            let ready_at = previous.created_at + cooldown;
            // Rounded up: a client that waits this long is never refused again.
            (ready_at > now).then(|| crate::brute_force::secs_until(ready_at, now))
        }))
    }

    /// Checks a code for `purpose` and `login`. The guess is compared only
    /// after one of the login's failure budget and one of the code's tries
    /// have been claimed, each by one atomic step; a right guess gives the
    /// budget back. The record returned must be consumed in the caller's
    /// transaction.
    pub(crate) async fn check_code(
        &self,
        purpose: CodePurpose,
        login: &Login,
        auth: Option<&AuthContext>,
        code: &str,
        flow: Option<&str>,
        meta: &ClientMeta,
    ) -> Result<VerificationCode, Error> {
        let now = self.0.clock.now();
        let flow = flow.map(str::trim).filter(|f| !f.is_empty());
        match self
            .claim_and_check(purpose, login, auth, code, flow, now)
            .await
        {
            Ok(record) => Ok(record),
            Err(refused @ (Error::Problem { .. } | Error::Busy { .. })) => {
                self.record_code_failure(purpose, login, refused.error_code(), meta)
                    .await?;
                Err(refused)
            }
            Err(other) => Err(other),
        }
    }

    /// Writes a refused code confirmation to `login_attempts` and the audit
    /// log, with its purpose and reason.
    async fn record_code_failure(
        &self,
        purpose: CodePurpose,
        login: &Login,
        reason: ErrorCode,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        let principal = self
            .0
            .stores
            .logins
            .find_login_method(login.login_type, &login.identifier)
            .await?
            .map(|m| m.principal_id);
        let data = json!({
            "purpose": purpose.as_str(),
            "login_type": login.login_type.as_str(),
            "reason": reason.as_str(),
            "known": principal.is_some(),
        });
        let refusal = Refusal {
            login,
            principal,
            reason: format!("{}:{}", purpose.as_str(), reason.as_str()),
            event: "code.confirm_failed",
            data,
            lock: None,
            locked_out: false,
        };
        self.record_refusal(refusal, meta).await
    }

    /// Claims the budget and a try, then compares (see [`App::check_code`]).
    async fn claim_and_check(
        &self,
        purpose: CodePurpose,
        login: &Login,
        auth: Option<&AuthContext>,
        code: &str,
        flow: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<VerificationCode, Error> {
        let subject = &subject_of(purpose, auth);
        let stores = &self.0.stores;
        let budget = self.code_budget(login)?;
        self.claim_budget(&budget, self.0.settings.code_lockout)
            .await?;
        let claimed = stores
            .codes
            .claim_code_try(
                purpose,
                login.login_type,
                &login.identifier,
                subject,
                flow,
                MAX_ATTEMPTS,
            )
            .await?;
        let Some(record) = claimed else {
            // Only an expired code is worth telling apart; used and spent
            // codes are simply not valid.
            let expired = stores
                .codes
                .find_code(purpose, login.login_type, &login.identifier, subject)
                .await?
                .is_some_and(|c| {
                    c.consumed_at.is_none() && c.attempts < MAX_ATTEMPTS && c.expires_at <= now
                });
            return Err(Error::code(if expired {
                ErrorCode::CodeExpired
            } else {
                ErrorCode::InvalidCode
            }));
        };
        self.0.codes.check(&record, code, now)?;
        self.release_budget(&budget).await?;
        Ok(record)
    }

    /// The failure budget of code confirmations for `login`, across codes.
    fn code_budget(&self, login: &Login) -> Result<String, Error> {
        Ok(format!("code:{}", self.0.codes.login_key(login)?))
    }

    /// Marks a checked code used; a concurrent use of the same code loses.
    pub(crate) async fn consume_code(
        &self,
        tx: &mut dyn Tx,
        record: &VerificationCode,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let consumed = self
            .0
            .stores
            .codes
            .consume_code(tx, record.id, MAX_ATTEMPTS, now)
            .await?;
        if consumed && record.expires_at > now {
            Ok(())
        } else {
            Err(Error::code(ErrorCode::InvalidCode))
        }
    }

    /// Confirms a bound login method with a `verify` code. A caller that holds
    /// no session of the account (`auth`) reclaims it if this is the login's
    /// first proof.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = tracing::field::Empty))]
    pub async fn confirm_verification(
        &self,
        req: ConfirmRequest,
        auth: Option<&AuthContext>,
        meta: &ClientMeta,
    ) -> Result<LoginView, Error> {
        let login = self.code_login(&req.login)?;
        self.limit_ip(Action::ConfirmCode, meta).await?;
        self.limit_login(Action::ConfirmCode, &login).await?;
        let now = self.0.clock.now();
        let record = self
            .check_code(
                CodePurpose::Verify,
                &login,
                None,
                &req.code,
                req.verification_id.as_deref(),
                meta,
            )
            .await?;
        let stores = &self.0.stores;
        let method = stores
            .logins
            .find_login_method(login.login_type, &login.identifier)
            .await?
            .ok_or_else(|| Error::code(ErrorCode::InvalidCode))?;
        crate::record_principal(method.principal_id);
        let mut tx = self.begin().await?;
        self.consume_code(tx.as_mut(), &record, now).await?;
        let revoked = self
            .reclaim_on_first_proof(&mut tx, &method, auth, None, meta, now)
            .await?;
        stores
            .logins
            .mark_login_verified(tx.as_mut(), method.id, now)
            .await?;
        let data = json!({ "login_id": method.id, "login_type": login.login_type.as_str() });
        self.announce(
            &mut tx,
            method.principal_id,
            topics::LOGIN_METHOD_VERIFIED,
            meta,
            data,
            now,
        )
        .await?;
        tx.touches(method.principal_id);
        tx.ends(&revoked);
        self.commit(tx).await?;
        let verified_at = method.verified_at.or(Some(now));
        Ok(LoginView::from(sesame_credentials::LoginMethod {
            verified_at,
            ..method
        }))
    }
}

/// Bind codes belong to the principal that asked for them, so that one person
/// asking cannot replace another's code; other codes belong to the login alone.
fn subject_of(purpose: CodePurpose, auth: Option<&AuthContext>) -> String {
    match (purpose, auth) {
        (CodePurpose::Bind, Some(auth)) => auth.principal_id.to_string(),
        _ => String::new(),
    }
}
