//! What passkeys and security keys share: the relying party (`[webauthn]`),
//! ceremonies kept server side (taken out once, five minutes), the stored
//! form of a credential, and the audit of a counter that went backwards.

use crate::assertion::RelyingParty;
use crate::{App, ClientMeta};
use serde::Serialize;
use sesame_core::{Error, ErrorCode, PrincipalId};
use sesame_credentials::{AuditEntry, Ceremony};
use time::OffsetDateTime;
use uuid::Uuid;
use webauthn_rs::prelude::{Url, WebauthnBuilder};

/// `POST /v1/me/passkeys/finish` and `POST /v1/me/security-keys/finish`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationFinish {
    /// From `begin`.
    pub ceremony_id: String,
    /// The `PublicKeyCredential` that `navigator.credentials.create()` made.
    pub credential: serde_json::Value,
    /// What to call it (default: "Passkey" or "Security key").
    pub name: Option<String>,
}

/// Longest name of a passkey or a security key, in characters.
const MAX_NAME: usize = 64;

/// The relying party, as configured (`[webauthn]`).
#[derive(Debug, Clone)]
pub struct WebauthnSettings {
    /// The relying-party id: the domain passkeys are bound to.
    pub rp_id: String,
    /// The name authenticators show.
    pub rp_name: String,
    /// Origins allowed to run ceremonies (each must be `rp_id` or below it).
    pub origins: Vec<String>,
}

impl WebauthnSettings {
    /// The WebAuthn relying party these settings describe.
    pub(crate) fn build(&self) -> Result<RelyingParty, Error> {
        let origins: Vec<Url> = self
            .origins
            .iter()
            .map(|o| Url::parse(o))
            .collect::<Result<_, _>>()
            .map_err(internal("[webauthn] origins"))?;
        let first = origins
            .first()
            .ok_or_else(|| Error::internal("[webauthn] origins: at least one is needed"))?;
        let mut builder = WebauthnBuilder::new(&self.rp_id, first)
            .map_err(internal("[webauthn] rp_id and origins"))?
            .rp_name(&self.rp_name);
        for origin in &origins[1..] {
            builder = builder.append_allowed_origin(origin);
        }
        let webauthn = builder.build().map_err(internal("[webauthn]"))?;
        Ok(RelyingParty::new(webauthn, &self.rp_id, origins))
    }
}

/// What a ceremony's `begin` answers: the id to finish it with and the
/// options for `navigator.credentials.create()` or `.get()`.
#[derive(Debug, Clone, Serialize)]
pub struct CeremonyStarted {
    /// Names the ceremony; shown once.
    pub ceremony_id: String,
    /// The WebAuthn options (`publicKey`, and `mediation` for sign-in).
    pub options: serde_json::Value,
    /// Seconds until it expires.
    pub expires_in: i64,
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn ceremony_gone() -> Error {
    Error::problem(
        ErrorCode::InvalidState,
        "The ceremony has expired or was used: begin again",
    )
}

pub(crate) fn refused(why: &str) -> Error {
    Error::problem(ErrorCode::InvalidCredentials, why.to_owned())
}

/// An error of the WebAuthn library or of a stored form it cannot read: an
/// internal error that keeps its cause.
pub(crate) fn internal<E>(what: &'static str) -> impl FnOnce(E) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| Error::internal_from(what, e)
}

pub(crate) fn clean_name(name: Option<&str>) -> Result<String, Error> {
    let name = name.map(str::trim).unwrap_or("Passkey");
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(Error::field("name", "invalid"));
    }
    Ok(name.to_owned())
}

/// A WebAuthn credential's stored form (JSON), with its counter and
/// backup flags, which the library keeps inside it: its stored form is the
/// one place they can be read.
pub(crate) fn stored_form<T: Serialize>(
    credential: &T,
) -> Result<(serde_json::Value, i64, bool, bool), Error> {
    let json = serde_json::to_value(credential).map_err(internal("credential"))?;
    let cred = &json["cred"];
    let flag = |name: &str| cred[name].as_bool().unwrap_or(false);
    let (counter, eligible, backed_up) = (
        cred["counter"].as_i64().unwrap_or(0),
        flag("backup_eligible"),
        flag("backup_state"),
    );
    Ok((json, counter, eligible, backed_up))
}

impl App {
    pub(crate) fn webauthn(&self) -> Result<&RelyingParty, Error> {
        self.0.webauthn.as_ref().ok_or_else(|| {
            Error::problem(
                ErrorCode::NotFound,
                "Passkeys are not configured here: set [webauthn] rp_id and origins",
            )
        })
    }

    pub(crate) async fn start_ceremony(
        &self,
        purpose: &str,
        principal: Option<PrincipalId>,
        state: serde_json::Value,
        options: serde_json::Value,
    ) -> Result<CeremonyStarted, Error> {
        let (id, id_hash) = crate::new_opaque_id()?;
        let now = self.0.clock.now();
        let ttl = self.0.settings.mfa_challenge_ttl;
        let ceremony = Ceremony {
            id_hash,
            purpose: purpose.to_owned(),
            principal_id: principal,
            state,
            created_at: now,
            expires_at: now + ttl,
        };
        self.0.stores.passkeys.insert_ceremony(&ceremony).await?;
        Ok(CeremonyStarted {
            ceremony_id: id,
            options,
            expires_in: ttl.whole_seconds(),
        })
    }

    /// Audits an assertion whose signature counter did not move forward: the
    /// authenticator may have been cloned.
    pub(crate) async fn audit_counter_regression(
        &self,
        principal: PrincipalId,
        event: &str,
        data: serde_json::Value,
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        tracing::warn!(principal = %principal, event, "a WebAuthn counter went backwards");
        let entry = AuditEntry {
            id: Uuid::now_v7(),
            principal_id: Some(principal),
            event: event.to_owned(),
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            data,
            at: now,
        };
        let mut tx = self.begin().await?;
        self.0
            .stores
            .audit
            .append_audit(tx.as_mut(), &entry)
            .await?;
        self.commit(tx).await
    }
}
