//! TOTP enrolment and removal, and the backup codes that come with the
//! first second factor: what a signed-in principal manages of its factors.
//! Checking a factor at sign-in or step-up is [`crate::mfa`]'s.

use crate::brute_force::Action;
use crate::mfa::wrong_code;
use crate::views::{BackupCodes, TotpEnrolment};
use crate::{App, AuthContext, ClientMeta, Stores};
use serde_json::json;
use sesame_core::{Error, ErrorCode, PrincipalId};
use sesame_credentials::mfa::{
    BackupCodeHasher, TotpSeed, new_backup_codes, normalise_backup_code,
};
use sesame_credentials::{MasterKeys, TotpFactor};
use sesame_events::topics;
use time::OffsetDateTime;
use uuid::Uuid;

/// The server secret that keys backup-code hashes.
const BACKUP_CODE_SECRET: &str = "backup-codes";

/// What a server secret's sealing is bound to.
pub(crate) fn secret_context(name: &str) -> Vec<u8> {
    format!("server-secret/{name}").into_bytes()
}

/// The backup-code hasher, keyed by a server secret made on first start and
/// kept sealed in the database (so it outlives master-key rotations).
pub(crate) async fn backup_hasher(
    stores: &Stores,
    master: &MasterKeys,
    now: OffsetDateTime,
) -> Result<BackupCodeHasher, Error> {
    let context = secret_context(BACKUP_CODE_SECRET);
    let fresh = sesame_credentials::random_bytes::<32>()?;
    let sealed = master.current().seal(&fresh, &context)?;
    let stored = stores
        .secrets
        .ensure_server_secret(BACKUP_CODE_SECRET, &sealed, now)
        .await?;
    let key: [u8; 32] = master
        .open(&stored, &context)?
        .try_into()
        .map_err(|_| Error::internal("the backup-code secret is not 32 bytes"))?;
    Ok(BackupCodeHasher::new(key))
}

/// The SVG QR code of `text`.
fn qr_svg(text: &str) -> Result<String, Error> {
    use qrcode::render::svg;
    let code =
        qrcode::QrCode::new(text.as_bytes()).map_err(|e| Error::internal_from("QR code", e))?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build())
}

impl App {
    /// `POST /v1/me/mfa/totp`: a new pending TOTP factor (replacing a pending
    /// one), with what an authenticator app needs to add it.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn begin_totp(&self, auth: &AuthContext) -> Result<TotpEnrolment, Error> {
        self.require_recent_proof(auth).await?;
        let stores = &self.0.stores;
        let principal = auth.principal_id;
        let summary = stores.principals.credential_summary(principal).await?;
        if summary.mfa.totp {
            return Err(already_enrolled());
        }
        let seed = TotpSeed::generate()?;
        let now = self.0.clock.now();
        let factor = TotpFactor {
            principal_id: principal,
            id: Uuid::now_v7(),
            secret: self
                .0
                .master
                .current()
                .seal(seed.as_bytes(), principal.0.as_bytes())?,
            confirmed_at: None,
            last_step: None,
            created_at: now,
        };
        if !stores.mfa.put_pending_totp(&factor).await? {
            return Err(already_enrolled());
        }
        let account = summary.account_name(principal);
        let otpauth_uri = seed.otpauth_uri(&self.0.settings.totp_issuer, &account)?;
        Ok(TotpEnrolment {
            secret: seed.base32()?,
            qr_svg: qr_svg(&otpauth_uri)?,
            otpauth_uri,
        })
    }

    /// `POST /v1/me/mfa/totp/confirm`: a first code confirms the pending
    /// factor (its time step counts as used) and ten backup codes are made.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn confirm_totp(
        &self,
        auth: &AuthContext,
        code: &str,
        meta: &ClientMeta,
    ) -> Result<BackupCodes, Error> {
        self.require_recent_proof(auth).await?;
        let principal = auth.principal_id;
        self.limit_principal(Action::SignIn, principal).await?;
        let stores = &self.0.stores;
        let factor = stores
            .mfa
            .get_totp(principal)
            .await?
            .filter(|f| f.confirmed_at.is_none())
            .ok_or_else(|| {
                Error::problem(
                    ErrorCode::InvalidState,
                    "No TOTP factor is pending: POST /v1/me/mfa/totp first",
                )
            })?;
        let now = self.0.clock.now();
        let step = self.totp_step(&factor, code, now)?.ok_or_else(wrong_code)?;
        let (codes, hashes) = self.new_backup_codes(principal)?;
        let mut tx = self.begin().await?;
        if !stores
            .mfa
            .confirm_totp(tx.as_mut(), principal, factor.id, step, now)
            .await?
        {
            return Err(wrong_code());
        }
        stores
            .mfa
            .replace_backup_codes(tx.as_mut(), principal, &hashes, now)
            .await?;
        let data = json!({ "factor": "totp", "backup_codes": codes.len() });
        self.announce(&mut tx, principal, topics::MFA_ENROLLED, meta, data, now)
            .await?;
        tx.touches(principal);
        self.commit(tx).await?;
        Ok(BackupCodes {
            backup_codes: codes,
        })
    }

    /// `DELETE /v1/me/mfa/totp`: needs a current code and an `aal2` session;
    /// the backup codes go with the last second factor.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn remove_totp(
        &self,
        auth: &AuthContext,
        code: &str,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        self.require_recent_proof(auth).await?;
        let principal = auth.principal_id;
        self.limit_principal(Action::SignIn, principal).await?;
        let stores = &self.0.stores;
        let factor = stores
            .mfa
            .get_totp(principal)
            .await?
            .filter(|f| f.confirmed_at.is_some())
            .ok_or_else(|| Error::problem(ErrorCode::NotFound, "No TOTP factor is enrolled"))?;
        let now = self.0.clock.now();
        let step = self.totp_step(&factor, code, now)?.ok_or_else(wrong_code)?;
        let mut tx = self.begin().await?;
        if !stores
            .mfa
            .accept_totp_step(tx.as_mut(), principal, step)
            .await?
        {
            return Err(wrong_code());
        }
        stores.mfa.delete_totp(tx.as_mut(), principal).await?;
        if stores.mfa.mfa_summary(principal).await?.security_keys == 0 {
            // The last second factor: its backup codes go with it.
            stores
                .mfa
                .replace_backup_codes(tx.as_mut(), principal, &[], now)
                .await?;
        }
        let data = json!({ "factor": "totp" });
        self.announce(&mut tx, principal, topics::MFA_REMOVED, meta, data, now)
            .await?;
        tx.touches(principal);
        self.commit(tx).await
    }

    /// `POST /v1/me/mfa/backup-codes`: ten new backup codes replace the old.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn regenerate_backup_codes(
        &self,
        auth: &AuthContext,
        meta: &ClientMeta,
    ) -> Result<BackupCodes, Error> {
        self.require_recent_proof(auth).await?;
        let principal = auth.principal_id;
        let stores = &self.0.stores;
        if !stores.mfa.mfa_summary(principal).await?.enrolled() {
            return Err(Error::problem(
                ErrorCode::InvalidState,
                "Backup codes come with a second factor: enrol one first",
            ));
        }
        let now = self.0.clock.now();
        let (codes, hashes) = self.new_backup_codes(principal)?;
        let mut tx = self.begin().await?;
        stores
            .mfa
            .replace_backup_codes(tx.as_mut(), principal, &hashes, now)
            .await?;
        let data = json!({ "backup_codes": codes.len() });
        let topic = topics::MFA_BACKUP_CODES_REGENERATED;
        self.announce(&mut tx, principal, topic, meta, data, now)
            .await?;
        tx.touches(principal);
        self.commit(tx).await?;
        Ok(BackupCodes {
            backup_codes: codes,
        })
    }

    /// Ten backup codes as shown, and their hashes as stored.
    pub(crate) fn new_backup_codes(
        &self,
        principal: PrincipalId,
    ) -> Result<(Vec<String>, Vec<Vec<u8>>), Error> {
        let codes = new_backup_codes()?;
        let hashes = codes
            .iter()
            .map(|c| {
                let canonical = normalise_backup_code(c)
                    .ok_or_else(|| Error::internal("a new backup code does not read back"))?;
                self.0.backup.hash(principal, &canonical)
            })
            .collect::<Result<_, _>>()?;
        Ok((codes, hashes))
    }

    /// The time step `code` matches on `factor`'s seed at `now`.
    pub(crate) fn totp_step(
        &self,
        factor: &TotpFactor,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<Option<i64>, Error> {
        let seed = TotpSeed::from_bytes(
            self.0
                .master
                .open(&factor.secret, factor.principal_id.0.as_bytes())?,
        );
        self.0.backup.note_evaluated();
        seed.matching_step(code, now.unix_timestamp())
    }
}

fn already_enrolled() -> Error {
    Error::problem(
        ErrorCode::MfaAlreadyEnrolled,
        "A TOTP factor is enrolled already: remove it first",
    )
}
