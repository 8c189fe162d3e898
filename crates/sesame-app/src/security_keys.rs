//! Security keys: WebAuthn credentials kept as a second factor (not
//! discoverable, not a way in on their own). Registered while signed in,
//! listed and removed under `/v1/me/security-keys`; at sign-in or step-up,
//! `POST /v1/sessions/mfa/webauthn` starts the assertion that
//! `POST /v1/sessions/mfa` finishes with `ceremony_id` and `credential`.

use crate::assertion::{AssertionState, Refused};
use crate::hash_opaque_id;
use crate::webauthn::RegistrationFinish;
use crate::webauthn::{
    CeremonyStarted, b64, ceremony_gone, clean_name, internal, refused, stored_form,
};
use crate::{App, AuthContext, ClientMeta, views::BackupCodes};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sesame_core::{Error, ErrorCode, PrincipalId};
use sesame_credentials::SecurityKeyRecord;
use sesame_events::topics;
use time::OffsetDateTime;
use uuid::Uuid;
use webauthn_rs::prelude::{
    Credential, PublicKeyCredential, RegisterPublicKeyCredential, SecurityKey,
    SecurityKeyRegistration,
};
use webauthn_rs_core::proto::UserVerificationPolicy;

const REGISTER: &str = "security_key";
const MFA: &str = "mfa";

/// `POST /v1/sessions/mfa/webauthn`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MfaWebauthnBegin {
    /// The challenge a first factor earned; without it, the caller's own
    /// session (step-up).
    pub challenge_id: Option<String>,
}

/// A security key as its owner sees it.
#[derive(Debug, Clone, Serialize)]
pub struct SecurityKeyView {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// When it was registered.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last proved a sign-in.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl From<SecurityKeyRecord> for SecurityKeyView {
    fn from(k: SecurityKeyRecord) -> Self {
        Self {
            id: k.id,
            name: k.name,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// A registered security key, and the backup codes when it is the account's
/// first second factor (shown once).
#[derive(Debug, Clone, Serialize)]
pub struct SecurityKeyEnrolled {
    /// The key.
    pub security_key: SecurityKeyView,
    /// Ten backup codes, when this is the first factor.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub backup_codes: Option<BackupCodes>,
}

/// A verified assertion's effect on its key: the key as it is to be
/// stored, and the counter it was read with (for the compare-and-set).
#[derive(Debug)]
pub(crate) struct KeyUse {
    pub(crate) key: SecurityKeyRecord,
    pub(crate) seen_counter: i64,
}

fn key_record(
    key: &SecurityKey,
    id: Uuid,
    principal: PrincipalId,
    name: String,
    now: OffsetDateTime,
) -> Result<SecurityKeyRecord, Error> {
    let (credential, counter, _, _) = stored_form(key)?;
    Ok(SecurityKeyRecord {
        id,
        principal_id: principal,
        name,
        credential,
        counter,
        created_at: now,
        last_used_at: None,
    })
}

impl App {
    /// `POST /v1/me/security-keys/begin`.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn begin_security_key_registration(
        &self,
        auth: &AuthContext,
    ) -> Result<CeremonyStarted, Error> {
        let webauthn = &self.webauthn()?.webauthn;
        self.require_recent_proof(auth).await?;
        let stores = &self.0.stores;
        let mut exclude = Vec::new();
        for k in stores
            .passkeys
            .list_security_keys(auth.principal_id)
            .await?
        {
            let key: SecurityKey = serde_json::from_value(k.credential).map_err(internal("key"))?;
            exclude.push(key.cred_id().clone());
        }
        let summary = stores
            .principals
            .credential_summary(auth.principal_id)
            .await?;
        let name = summary.account_name(auth.principal_id);
        let (options, state) = webauthn
            .start_securitykey_registration(
                auth.principal_id.0,
                &name,
                &name,
                Some(exclude),
                None,
                None,
            )
            .map_err(internal("security key registration"))?;
        self.start_ceremony(
            REGISTER,
            Some(auth.principal_id),
            serde_json::to_value(&state).map_err(internal("ceremony"))?,
            serde_json::to_value(&options).map_err(internal("options"))?,
        )
        .await
    }

    /// `POST /v1/me/security-keys/finish`: the key becomes a second factor;
    /// the account's first one comes with ten backup codes.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn finish_security_key_registration(
        &self,
        auth: &AuthContext,
        req: RegistrationFinish,
        meta: &ClientMeta,
    ) -> Result<SecurityKeyEnrolled, Error> {
        let webauthn = &self.webauthn()?.webauthn;
        self.require_recent_proof(auth).await?;
        let name = clean_name(Some(req.name.as_deref().unwrap_or("Security key")))?;
        let credential: RegisterPublicKeyCredential = serde_json::from_value(req.credential)
            .map_err(|_| Error::field("credential", "invalid"))?;
        let principal = auth.principal_id;
        let stores = &self.0.stores;
        let now = self.0.clock.now();
        let ceremony = stores
            .passkeys
            .take_ceremony(
                &hash_opaque_id(&req.ceremony_id),
                REGISTER,
                Some(principal),
                now,
            )
            .await?
            .ok_or_else(ceremony_gone)?;
        let state: SecurityKeyRegistration =
            serde_json::from_value(ceremony.state).map_err(internal("ceremony"))?;
        let key = webauthn
            .finish_securitykey_registration(&credential, &state)
            .map_err(|e| {
                tracing::info!(error = %e, "security key registration refused");
                refused("The authenticator's answer did not verify")
            })?;
        let record = key_record(&key, Uuid::now_v7(), principal, name, now)?;
        let first = !stores.mfa.mfa_summary(principal).await?.enrolled();
        let codes = if first {
            Some(self.new_backup_codes(principal)?)
        } else {
            None
        };
        let mut tx = self.begin().await?;
        stores
            .passkeys
            .insert_security_key(tx.as_mut(), &record)
            .await?;
        if let Some((_, hashes)) = &codes {
            stores
                .mfa
                .replace_backup_codes(tx.as_mut(), principal, hashes, now)
                .await?;
        }
        let data = json!({ "factor": "webauthn", "security_key_id": record.id, "credential_id": b64(key.cred_id().as_ref()) });
        self.announce(&mut tx, principal, topics::MFA_ENROLLED, meta, data, now)
            .await?;
        tx.touches(principal);
        self.commit(tx).await?;
        Ok(SecurityKeyEnrolled {
            security_key: record.into(),
            backup_codes: codes.map(|(backup_codes, _)| BackupCodes { backup_codes }),
        })
    }

    /// `GET /v1/me/security-keys`.
    pub async fn list_security_keys(
        &self,
        auth: &AuthContext,
    ) -> Result<Vec<SecurityKeyView>, Error> {
        let keys = self
            .0
            .stores
            .passkeys
            .list_security_keys(auth.principal_id)
            .await?;
        Ok(keys.into_iter().map(SecurityKeyView::from).collect())
    }

    /// `DELETE /v1/me/security-keys/{id}`: needs `aal2`; the backup codes go
    /// with the last second factor.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn remove_security_key(
        &self,
        auth: &AuthContext,
        id: Uuid,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        self.require_recent_proof(auth).await?;
        let principal = auth.principal_id;
        let stores = &self.0.stores;
        let now = self.0.clock.now();
        let mut tx = self.begin().await?;
        if !stores
            .passkeys
            .delete_security_key(tx.as_mut(), principal, id)
            .await?
        {
            return Err(Error::code(ErrorCode::NotFound));
        }
        let before = stores.mfa.mfa_summary(principal).await?;
        if !before.totp && before.security_keys <= 1 {
            stores
                .mfa
                .replace_backup_codes(tx.as_mut(), principal, &[], now)
                .await?;
        }
        let data = json!({ "factor": "webauthn", "security_key_id": id });
        self.announce(&mut tx, principal, topics::MFA_REMOVED, meta, data, now)
            .await?;
        tx.touches(principal);
        self.commit(tx).await
    }

    /// `POST /v1/sessions/mfa/webauthn`: options for an assertion by one of
    /// the principal's security keys, for a sign-in challenge or the caller's
    /// own session.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = tracing::field::Empty))]
    pub async fn begin_mfa_webauthn(
        &self,
        req: MfaWebauthnBegin,
        auth: Option<&AuthContext>,
        meta: &ClientMeta,
    ) -> Result<CeremonyStarted, Error> {
        let webauthn = &self.webauthn()?.webauthn;
        self.limit_ip(crate::brute_force::Action::SignIn, meta)
            .await?;
        let stores = &self.0.stores;
        let now = self.0.clock.now();
        let principal = match (&req.challenge_id, auth) {
            (Some(id), _) => stores
                .mfa
                .find_mfa_challenge(&hash_opaque_id(id), now)
                .await?
                .ok_or_else(|| {
                    Error::problem(
                        ErrorCode::CodeExpired,
                        "The challenge has expired, was used or has no tries left: sign in again",
                    )
                })?
                .principal_id,
            (None, Some(auth)) => auth.principal_id,
            (None, None) => return Err(Error::field("challenge_id", "required")),
        };
        crate::record_principal(principal);
        let mut keys = Vec::new();
        for k in stores.passkeys.list_security_keys(principal).await? {
            keys.push(
                serde_json::from_value::<SecurityKey>(k.credential).map_err(internal("key"))?,
            );
        }
        if keys.is_empty() {
            return Err(Error::problem(
                ErrorCode::InvalidState,
                "No security key is enrolled",
            ));
        }
        let (options, _) = webauthn
            .start_securitykey_authentication(&keys)
            .map_err(internal("security key authentication"))?;
        let state = AssertionState::new(&options.public_key.challenge);
        self.start_ceremony(
            MFA,
            Some(principal),
            serde_json::to_value(&state).map_err(internal("ceremony"))?,
            serde_json::to_value(&options).map_err(internal("options"))?,
        )
        .await
    }

    /// Verifies a security key's assertion for `principal`: the key's use to
    /// record when it verified, `None` otherwise (a counter gone backwards is
    /// audited too).
    pub(crate) async fn check_security_key(
        &self,
        principal: PrincipalId,
        ceremony_id: &str,
        credential: &serde_json::Value,
        now: OffsetDateTime,
    ) -> Result<Option<KeyUse>, Error> {
        // Without a relying party no key can be enrolled: nothing verifies.
        let Some(rp) = self.0.webauthn.as_ref() else {
            return Ok(None);
        };
        let stores = &self.0.stores;
        let Ok(credential) = serde_json::from_value::<PublicKeyCredential>(credential.clone())
        else {
            return Ok(None);
        };
        let Some(ceremony) = stores
            .passkeys
            .take_ceremony(&hash_opaque_id(ceremony_id), MFA, Some(principal), now)
            .await?
        else {
            return Ok(None);
        };
        // A ceremony begun by an earlier release kept another form.
        let Ok(state) = serde_json::from_value::<AssertionState>(ceremony.state) else {
            return Ok(None);
        };
        for record in stores.passkeys.list_security_keys(principal).await? {
            let key: SecurityKey =
                serde_json::from_value(record.credential.clone()).map_err(internal("key"))?;
            if key.cred_id() != &credential.raw_id {
                continue;
            }
            let mut stored = Credential::from(key);
            match rp.check_assertion(
                &credential,
                &state,
                UserVerificationPolicy::Preferred,
                &stored,
            ) {
                Ok(asserted) => asserted.apply(&mut stored),
                Err(Refused::CounterRegressed) => {
                    let meta = ClientMeta::default();
                    self.audit_counter_regression(
                        principal,
                        "security_key.counter_regressed",
                        json!({}),
                        &meta,
                        now,
                    )
                    .await?;
                    return Ok(None);
                }
                Err(Refused::Invalid(why)) => {
                    tracing::info!(why, "security key assertion refused");
                    return Ok(None);
                }
            }
            let (credential, counter, _, _) = stored_form(&SecurityKey::from(stored))?;
            let seen_counter = record.counter;
            return Ok(Some(KeyUse {
                key: SecurityKeyRecord {
                    credential,
                    counter,
                    ..record
                },
                seen_counter,
            }));
        }
        Ok(None)
    }
}
