//! The password lifecycle: set a first one (progressive authentication), change
//! it, reset it with a code. Each change revokes other sessions.

use crate::brute_force::Action;
use crate::{App, AuthContext, ClientMeta};
use serde::Deserialize;
use serde_json::json;
use sesame_core::{Error, ErrorCode, FieldError, PrincipalId, SessionId};
use sesame_credentials::password::check_new_password;
use sesame_credentials::{CodePurpose, LoginInput, LoginMethod};
use sesame_events::topics;
use time::OffsetDateTime;

/// Passwords that may not come back.
pub const HISTORY: i64 = 5;

/// `PUT /v1/me/password`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// Required when a password is set.
    pub current_password: Option<String>,
    /// The new password.
    pub new_password: String,
}

/// `POST /v1/password-resets`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// A verified e-mail or phone of the account.
    pub login: LoginInput,
}

/// `POST /v1/password-resets/confirm`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirm {
    /// The login the code was sent to.
    pub login: LoginInput,
    /// The six digits.
    pub code: String,
    /// The flow the code was sent for.
    pub verification_id: Option<String>,
    /// The new password.
    pub new_password: String,
}

impl App {
    /// Sets the caller's first password, or changes it given the current one.
    /// Every other session of the caller is revoked.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn change_password(
        &self,
        auth: &AuthContext,
        req: PasswordChange,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        let stores = &self.0.stores;
        self.limit_ip(Action::ChangePassword, meta).await?;
        self.limit_principal(Action::ChangePassword, auth.principal_id)
            .await?;
        self.require_second_factor(auth).await?;
        let _slot = self.hashing_slot(meta)?;
        let current = stores.passwords.get_password(auth.principal_id).await?;
        if let Some(hash) = &current {
            let given = req
                .current_password
                .as_deref()
                .ok_or_else(|| Error::field("current_password", "required"))?;
            self.check_current_password(auth, given, hash, meta).await?;
        } else {
            // Without a current password to check, only a recent proof stops a
            // stolen token from locking the owner out.
            self.require_recent_proof(auth).await?;
        }
        let first = current.is_none();
        let topic = if first {
            topics::PASSWORD_SET
        } else {
            topics::PASSWORD_CHANGED
        };
        self.replace_password(
            auth.principal_id,
            &req.new_password,
            Some(auth.session_id),
            topic,
            meta,
            None,
        )
        .await
    }

    /// Checks the caller's current password. The attempt is claimed on the
    /// principal's failure count first, exactly like a sign-in, so wrong
    /// guesses here lock the account too; a right one gives the claim back.
    pub(crate) async fn check_current_password(
        &self,
        auth: &AuthContext,
        given: &str,
        hash: &str,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        let stores = &self.0.stores;
        let now = self.0.clock.now();
        let principal = stores.principals.get_principal(auth.principal_id).await?;
        let claim = self.claim_sign_in(principal, now).await?;
        let right = self.0.hasher.verify(given, Some(hash)).await?;
        if right
            && stores
                .principals
                .release_sign_in_claim(auth.principal_id, claim.seq, now)
                .await?
        {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let audit = sesame_credentials::AuditEntry {
            id: uuid::Uuid::now_v7(),
            principal_id: Some(auth.principal_id),
            event: "password.check_failed".to_owned(),
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            data: json!({ "reason": ErrorCode::InvalidCurrentPassword.as_str(), "failures": claim.failures }),
            at: now,
        };
        stores.audit.append_audit(tx.as_mut(), &audit).await?;
        if let Some(lock) = claim.earned_lock() {
            self.announce_lock(&mut tx, auth.principal_id, lock, meta, now)
                .await?;
        }
        self.commit(tx).await?;
        Err(Error::code(ErrorCode::InvalidCurrentPassword))
    }

    /// Sends a reset code to a verified e-mail or phone; answers alike whether
    /// or not it exists.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn request_password_reset(
        &self,
        req: ResetRequest,
        meta: &ClientMeta,
    ) -> Result<crate::CodeSent, Error> {
        let login = self.code_login(&req.login)?;
        self.limit_ip(Action::SendCode, meta).await?;
        self.limit_login(Action::SendCode, &login).await?;
        self.issue_code(CodePurpose::Reset, &login, None, meta)
            .await
    }

    /// Sets a new password with a reset code and revokes every session.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = tracing::field::Empty))]
    pub async fn confirm_password_reset(
        &self,
        req: ResetConfirm,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        let login = self.code_login(&req.login)?;
        self.limit_ip(Action::ConfirmCode, meta).await?;
        self.limit_login(Action::ConfirmCode, &login).await?;
        let _slot = self.hashing_slot(meta)?;
        let record = self
            .check_code(
                CodePurpose::Reset,
                &login,
                None,
                &req.code,
                req.verification_id.as_deref(),
                meta,
            )
            .await?;
        let method = self
            .0
            .stores
            .logins
            .find_login_method(login.login_type, &login.identifier)
            .await?
            .filter(|m| m.verified_at.is_some())
            .ok_or_else(|| Error::code(ErrorCode::InvalidCode))?;
        let principal = method.principal_id;
        crate::record_principal(principal);
        self.replace_password(
            principal,
            &req.new_password,
            None,
            topics::PASSWORD_RESET,
            meta,
            Some(record),
        )
        .await
    }

    /// Checks policy and history, hashes, and writes the new password with the
    /// revocations, audit row and event in one transaction.
    async fn replace_password(
        &self,
        principal: PrincipalId,
        new_password: &str,
        keep: Option<SessionId>,
        topic: &str,
        meta: &ClientMeta,
        code: Option<sesame_credentials::VerificationCode>,
    ) -> Result<(), Error> {
        let stores = &self.0.stores;
        let logins: Vec<LoginMethod> = stores.logins.list_login_methods(principal).await?;
        let identifiers: Vec<&str> = logins.iter().map(|m| m.identifier.as_str()).collect();
        check_new_password(new_password, &identifiers, "new_password")?;
        for old in stores
            .passwords
            .password_history(principal, HISTORY)
            .await?
        {
            if self.0.hasher.verify(new_password, Some(&old)).await? {
                return Err(Error::Invalid {
                    code: ErrorCode::PasswordReused,
                    errors: vec![FieldError::new("new_password", "recently_used")],
                });
            }
        }
        let hash = self.0.hasher.hash(new_password).await?;
        let now: OffsetDateTime = self.0.clock.now();
        let mut tx = self.begin().await?;
        if let Some(code) = &code {
            self.consume_code(tx.as_mut(), code, now).await?;
        }
        stores
            .passwords
            .set_password(tx.as_mut(), principal, &hash, now)
            .await?;
        stores
            .passwords
            .prune_password_history(tx.as_mut(), principal, HISTORY)
            .await?;
        let reason = topic.trim_start_matches("identity.").replace('.', "_");
        let revoked = stores
            .sessions
            .revoke_sessions_of(tx.as_mut(), principal, keep, &reason, now)
            .await?;
        let data = json!({ "sessions_revoked": revoked.len() });
        self.announce(&mut tx, principal, topic, meta, data, now)
            .await?;
        tx.touches(principal);
        tx.ends(&revoked);
        self.commit(tx).await?;
        Ok(())
    }
}
