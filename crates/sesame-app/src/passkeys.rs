//! Passkeys (WebAuthn): registering one while signed in, listing, renaming
//! and removing them, passwordless sign-in with a discoverable credential,
//! and sign-up with a passkey as the only credential.
//!
//! A passkey is a login method of type `passkey` whose identifier is its
//! credential id (unique across everyone, like every login), plus its public
//! key and counter beside it (ceremonies: [`crate::webauthn`]). A sign-in's counter is stored by
//! compare-and-set, so that one assertion replayed at the same instant signs
//! in once; a counter that goes backwards on a credential that counts is
//! refused and audited.

use crate::assertion::{AssertionState, Refused};
use crate::webauthn::RegistrationFinish;
use crate::webauthn::{
    CeremonyStarted, b64, ceremony_gone, clean_name, internal, refused, stored_form,
};
use crate::{App, AuthContext, ClientMeta, SessionGrant, hash_opaque_id};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sesame_core::{Error, ErrorCode, PrincipalId};
use sesame_credentials::{Login, LoginMethod, LoginType, PasskeyRecord};
use sesame_events::topics;
use time::OffsetDateTime;
use uuid::Uuid;
use webauthn_rs::prelude::{
    CreationChallengeResponse, Credential, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential,
};
use webauthn_rs_core::proto::UserVerificationPolicy;

/// `POST /v1/registrations/passkey/begin`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PasskeySignUpBegin {
    /// The name the authenticator shows for the new account.
    pub display_name: Option<String>,
}

/// `POST /v1/registrations/passkey/finish`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeySignUpFinish {
    /// From `begin`.
    pub ceremony_id: String,
    /// The `PublicKeyCredential` that `navigator.credentials.create()` made.
    pub credential: serde_json::Value,
    /// What to call the passkey (default: "Passkey").
    pub name: Option<String>,
    /// Initial profile fields.
    pub profile: Option<sesame_identity::NewProfile>,
}

/// A sign-up ceremony's state: the library's, and the principal id the
/// authenticator was given as the user handle.
#[derive(Serialize, Deserialize)]
struct SignUpState {
    principal_id: Uuid,
    registration: PasskeyRegistration,
}

/// `POST /v1/sessions/passkey/finish`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeySignInFinish {
    /// From `begin`.
    pub ceremony_id: String,
    /// The `PublicKeyCredential` that `navigator.credentials.get()` made.
    pub credential: serde_json::Value,
}

/// `PATCH /v1/me/passkeys/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeyRename {
    /// The new name.
    pub name: String,
}

/// A passkey as its owner sees it.
#[derive(Debug, Clone, Serialize)]
pub struct PasskeyView {
    /// Its login method's id (to rename or remove it).
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// The credential id (base64url).
    pub credential_id: String,
    /// Whether it may be synced to other devices.
    pub backup_eligible: bool,
    /// Whether it was synced when last seen.
    pub backed_up: bool,
    /// When it was registered.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last signed in.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

const REGISTER: &str = "register";
const SIGN_IN: &str = "sign_in";
const SIGN_UP: &str = "sign_up";

impl PasskeyView {
    fn of(p: PasskeyRecord, credential_id: String) -> Self {
        Self {
            id: p.login_id,
            name: p.name,
            credential_id,
            backup_eligible: p.backup_eligible,
            backed_up: p.backed_up,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

/// Creation options for a passkey, asking for a discoverable (resident)
/// credential: passwordless sign-in and autofill find it by itself.
fn discoverable(options: &CreationChallengeResponse) -> Result<serde_json::Value, Error> {
    let mut json = serde_json::to_value(options).map_err(internal("options"))?;
    let selection = &mut json["publicKey"]["authenticatorSelection"];
    selection["residentKey"] = json!("required");
    selection["requireResidentKey"] = json!(true);
    Ok(json)
}

/// The stored form of a passkey, with the fields kept beside it.
fn record_of(
    passkey: &Passkey,
    login_id: Uuid,
    principal: PrincipalId,
    name: String,
    now: OffsetDateTime,
) -> Result<PasskeyRecord, Error> {
    let (credential, counter, backup_eligible, backed_up) = stored_form(passkey)?;
    Ok(PasskeyRecord {
        login_id,
        principal_id: principal,
        name,
        credential,
        counter,
        backup_eligible,
        backed_up,
        created_at: now,
        last_used_at: None,
    })
}

impl App {
    /// `POST /v1/me/passkeys/begin`: options to create a passkey for the
    /// caller (credentials it has already excluded).
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn begin_passkey_registration(
        &self,
        auth: &AuthContext,
    ) -> Result<CeremonyStarted, Error> {
        let webauthn = &self.webauthn()?.webauthn;
        self.require_recent_proof(auth).await?;
        let stores = &self.0.stores;
        let summary = stores
            .principals
            .credential_summary(auth.principal_id)
            .await?;
        let name = summary.account_name(auth.principal_id);
        let mut exclude = Vec::new();
        for p in stores.passkeys.list_passkeys(auth.principal_id).await? {
            let passkey: Passkey =
                serde_json::from_value(p.credential).map_err(internal("passkey"))?;
            exclude.push(passkey.cred_id().clone());
        }
        let (options, state) = webauthn
            .start_passkey_registration(auth.principal_id.0, &name, &name, Some(exclude))
            .map_err(internal("passkey registration"))?;
        self.start_ceremony(
            REGISTER,
            Some(auth.principal_id),
            serde_json::to_value(&state).map_err(internal("ceremony"))?,
            discoverable(&options)?,
        )
        .await
    }

    /// `POST /v1/me/passkeys/finish`: checks what the authenticator made and
    /// stores it as a login method of the caller.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn finish_passkey_registration(
        &self,
        auth: &AuthContext,
        req: RegistrationFinish,
        meta: &ClientMeta,
    ) -> Result<PasskeyView, Error> {
        let webauthn = &self.webauthn()?.webauthn;
        self.require_recent_proof(auth).await?;
        let name = clean_name(req.name.as_deref())?;
        let credential: RegisterPublicKeyCredential = serde_json::from_value(req.credential)
            .map_err(|_| Error::field("credential", "invalid"))?;
        let stores = &self.0.stores;
        let now = self.0.clock.now();
        let ceremony = stores
            .passkeys
            .take_ceremony(
                &hash_opaque_id(&req.ceremony_id),
                REGISTER,
                Some(auth.principal_id),
                now,
            )
            .await?
            .ok_or_else(ceremony_gone)?;
        let state: PasskeyRegistration =
            serde_json::from_value(ceremony.state).map_err(internal("ceremony"))?;
        let passkey = webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|e| {
                tracing::info!(error = %e, "passkey registration refused");
                Error::problem(
                    ErrorCode::InvalidCredentials,
                    "The authenticator's answer did not verify",
                )
            })?;
        let credential_id = b64(passkey.cred_id().as_ref());
        let method = LoginMethod {
            id: Uuid::now_v7(),
            principal_id: auth.principal_id,
            login_type: LoginType::Passkey,
            identifier: credential_id.clone(),
            verified_at: Some(now),
            created_at: now,
            last_used_at: None,
        };
        let record = record_of(&passkey, method.id, auth.principal_id, name, now)?;
        let mut tx = self.begin().await?;
        stores
            .logins
            .insert_login_method(tx.as_mut(), &method)
            .await?;
        stores.passkeys.insert_passkey(tx.as_mut(), &record).await?;
        let data = json!({
            "login_id": method.id,
            "login_type": LoginType::Passkey.as_str(),
            "backup_eligible": record.backup_eligible,
        });
        self.announce(
            &mut tx,
            auth.principal_id,
            topics::LOGIN_METHOD_BOUND,
            meta,
            data,
            now,
        )
        .await?;
        tx.touches(auth.principal_id);
        self.commit(tx).await?;
        Ok(PasskeyView::of(record, credential_id))
    }

    /// `POST /v1/registrations/passkey/begin`: options to create the first
    /// and only credential of a new account.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn begin_passkey_sign_up(
        &self,
        req: PasskeySignUpBegin,
        meta: &ClientMeta,
    ) -> Result<CeremonyStarted, Error> {
        let webauthn = &self.webauthn()?.webauthn;
        let name = match req.display_name.as_deref().map(str::trim) {
            None | Some("") => format!("{} account", self.0.settings.totp_issuer),
            name => clean_name(name).map_err(|_| Error::field("display_name", "invalid"))?,
        };
        self.limit_ip(crate::brute_force::Action::Register, meta)
            .await?;
        let id = PrincipalId::new();
        let (options, registration) = webauthn
            .start_passkey_registration(id.0, &name, &name, None)
            .map_err(internal("passkey registration"))?;
        let state = SignUpState {
            principal_id: id.0,
            registration,
        };
        self.start_ceremony(
            SIGN_UP,
            None,
            serde_json::to_value(&state).map_err(internal("ceremony"))?,
            discoverable(&options)?,
        )
        .await
    }

    /// `POST /v1/registrations/passkey/finish`: a new account whose one way
    /// in is this passkey, signed in at `aal2`.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = tracing::field::Empty))]
    pub async fn finish_passkey_sign_up(
        &self,
        req: PasskeySignUpFinish,
        meta: &ClientMeta,
    ) -> Result<crate::Registered, Error> {
        let webauthn = &self.webauthn()?.webauthn;
        let name = clean_name(req.name.as_deref())?;
        let credential: RegisterPublicKeyCredential = serde_json::from_value(req.credential)
            .map_err(|_| Error::field("credential", "invalid"))?;
        let stores = &self.0.stores;
        let now = self.0.clock.now();
        // The profile is checked before the ceremony is taken, so that a bad
        // field does not use it up; its id is the ceremony's, set below.
        let profile = sesame_identity::Profile::new(
            PrincipalId(Uuid::nil()),
            req.profile.unwrap_or_default(),
            now,
        )?;
        self.limit_ip(crate::brute_force::Action::Register, meta)
            .await?;
        let ceremony = stores
            .passkeys
            .take_ceremony(&hash_opaque_id(&req.ceremony_id), SIGN_UP, None, now)
            .await?
            .ok_or_else(ceremony_gone)?;
        let state: SignUpState =
            serde_json::from_value(ceremony.state).map_err(internal("ceremony"))?;
        let id = PrincipalId(state.principal_id);
        crate::record_principal(id);
        let passkey = webauthn
            .finish_passkey_registration(&credential, &state.registration)
            .map_err(|e| {
                tracing::info!(error = %e, "passkey registration refused");
                refused("The authenticator's answer did not verify")
            })?;
        let credential_id = b64(passkey.cred_id().as_ref());
        let profile = sesame_identity::Profile { id, ..profile };
        let principal = sesame_credentials::Principal::new(id, "user", now);
        let method = LoginMethod {
            id: Uuid::now_v7(),
            principal_id: id,
            login_type: LoginType::Passkey,
            identifier: credential_id,
            verified_at: Some(now),
            created_at: now,
            last_used_at: Some(now),
        };
        let record = record_of(&passkey, method.id, id, name, now)?;
        let mut session = self.new_session(id, &principal.kind, &["hwk", "user"], meta, now)?;
        session.session.aal = "aal2".into();
        let mut tx = self.begin().await?;
        stores
            .profiles
            .insert_profile(tx.as_mut(), &profile)
            .await?;
        stores
            .principals
            .insert_principal(tx.as_mut(), &principal)
            .await?;
        stores
            .logins
            .insert_login_method(tx.as_mut(), &method)
            .await
            .map_err(crate::registration::identifier_taken)?;
        stores.passkeys.insert_passkey(tx.as_mut(), &record).await?;
        self.insert_session(tx.as_mut(), &session).await?;
        let data = json!({ "login_type": LoginType::Passkey.as_str(), "has_password": false });
        self.announce(&mut tx, id, topics::USER_SIGNED_UP, meta, data, now)
            .await?;
        self.commit(tx).await?;
        let user = self.me_of(id, &principal.kind).await?;
        Ok(crate::Registered {
            session: self.grant_new(session, now).await?,
            user,
        })
    }

    /// `GET /v1/me/passkeys`.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn list_passkeys(&self, auth: &AuthContext) -> Result<Vec<PasskeyView>, Error> {
        let stores = &self.0.stores;
        let methods = stores.logins.list_login_methods(auth.principal_id).await?;
        let passkeys = stores.passkeys.list_passkeys(auth.principal_id).await?;
        Ok(passkeys
            .into_iter()
            .filter_map(|p| {
                let m = methods.iter().find(|m| m.id == p.login_id)?;
                let id = m.identifier.clone();
                Some(PasskeyView::of(p, id))
            })
            .collect())
    }

    /// `PATCH /v1/me/passkeys/{id}`.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn rename_passkey(
        &self,
        auth: &AuthContext,
        id: Uuid,
        req: PasskeyRename,
    ) -> Result<PasskeyView, Error> {
        let name = clean_name(Some(&req.name))?;
        if !self
            .0
            .stores
            .passkeys
            .rename_passkey(auth.principal_id, id, &name)
            .await?
        {
            return Err(Error::code(ErrorCode::NotFound));
        }
        self.list_passkeys(auth)
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| Error::code(ErrorCode::NotFound))
    }

    /// `DELETE /v1/me/passkeys/{id}`: unbinds its login method (the last way
    /// in stays).
    pub async fn remove_passkey(
        &self,
        auth: &AuthContext,
        id: Uuid,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        let mine = self
            .0
            .stores
            .passkeys
            .get_passkey(id)
            .await?
            .is_some_and(|p| p.principal_id == auth.principal_id);
        if !mine {
            return Err(Error::code(ErrorCode::NotFound));
        }
        self.unbind_login(auth, id, meta).await
    }

    /// `POST /v1/sessions/passkey/begin`: options for a discoverable
    /// credential, with conditional mediation (autofill).
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn begin_passkey_sign_in(&self, meta: &ClientMeta) -> Result<CeremonyStarted, Error> {
        let rp = self.webauthn()?;
        self.limit_ip(crate::brute_force::Action::SignIn, meta)
            .await?;
        let (options, _) = rp
            .webauthn
            .start_discoverable_authentication()
            .map_err(internal("passkey sign-in"))?;
        let state = AssertionState::new(&options.public_key.challenge);
        self.start_ceremony(
            SIGN_IN,
            None,
            serde_json::to_value(&state).map_err(internal("ceremony"))?,
            serde_json::to_value(&options).map_err(internal("options"))?,
        )
        .await
    }

    /// `POST /v1/sessions/passkey/finish`: an `aal2` session for the
    /// passkey's owner (the authenticator verified the user).
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = tracing::field::Empty))]
    pub async fn finish_passkey_sign_in(
        &self,
        req: PasskeySignInFinish,
        meta: &ClientMeta,
    ) -> Result<SessionGrant, Error> {
        let result = self.passkey_sign_in(req, meta).await;
        crate::observe::sign_in("passkey", &result, false);
        result
    }

    async fn passkey_sign_in(
        &self,
        req: PasskeySignInFinish,
        meta: &ClientMeta,
    ) -> Result<SessionGrant, Error> {
        let rp = self.webauthn()?;
        self.limit_ip(crate::brute_force::Action::SignIn, meta)
            .await?;
        let credential: PublicKeyCredential = serde_json::from_value(req.credential)
            .map_err(|_| Error::field("credential", "invalid"))?;
        let stores = &self.0.stores;
        let now = self.0.clock.now();
        let ceremony = stores
            .passkeys
            .take_ceremony(&hash_opaque_id(&req.ceremony_id), SIGN_IN, None, now)
            .await?
            .ok_or_else(ceremony_gone)?;
        // A ceremony begun by an earlier release kept another form.
        let state: AssertionState =
            serde_json::from_value(ceremony.state).map_err(|_| ceremony_gone())?;
        let (user, credential_id) = rp
            .webauthn
            .identify_discoverable_authentication(&credential)
            .map_err(|_| refused("The credential names no account"))?;
        let credential_id = b64(credential_id);
        let method = stores
            .logins
            .find_login_method(LoginType::Passkey, &credential_id)
            .await?
            .filter(|m| m.principal_id.0 == user)
            .ok_or_else(|| refused("No account has this passkey"))?;
        crate::record_principal(method.principal_id);
        let record = stores
            .passkeys
            .get_passkey(method.id)
            .await?
            .ok_or_else(|| refused("No account has this passkey"))?;
        let mut stored: Credential = Passkey::deserialize(&record.credential)
            .map_err(internal("passkey"))?
            .into();
        let asserted = match rp.check_assertion(
            &credential,
            &state,
            UserVerificationPolicy::Required,
            &stored,
        ) {
            Ok(asserted) => asserted,
            Err(Refused::CounterRegressed) => {
                let data = json!({ "login_id": method.id });
                self.audit_counter_regression(
                    method.principal_id,
                    "passkey.counter_regressed",
                    data,
                    meta,
                    now,
                )
                .await?;
                return Err(refused(
                    "The authenticator's counter went backwards: the passkey may be cloned",
                ));
            }
            Err(Refused::Invalid(why)) => {
                tracing::info!(why, "passkey assertion refused");
                return Err(refused("The assertion did not verify"));
            }
        };
        let principal = stores.principals.get_principal(method.principal_id).await?;
        if !principal.is_active {
            return Err(Error::code(ErrorCode::AccountSuspended));
        }
        if let Some(wait) = crate::sign_in::lock_left(&principal, now) {
            return Err(crate::brute_force::locked(wait));
        }
        asserted.apply(&mut stored);
        let used = record_of(
            &Passkey::from(stored),
            record.login_id,
            record.principal_id,
            record.name.clone(),
            now,
        )?;
        let aal = if asserted.user_verified {
            "aal2"
        } else {
            "aal1"
        };
        let mut session =
            self.new_session(principal.id, &principal.kind, &["hwk", "user"], meta, now)?;
        session.session.aal = aal.into();
        // Begun and committed on the writer's thread: see `App::on_writer`.
        let app = self.clone();
        let meta = meta.clone();
        let write = async move {
            let stores = &app.0.stores;
            let mut tx = app.begin().await?;
            if !stores
                .passkeys
                .record_passkey_use(tx.as_mut(), record.login_id, record.counter, &used, now)
                .await?
            {
                return Err(refused("This assertion was used already"));
            }
            stores
                .principals
                .record_sign_in_later(tx.as_mut(), principal.id, now)
                .await?;
            app.insert_session(tx.as_mut(), &session).await?;
            let login = Login {
                login_type: LoginType::Passkey,
                identifier: credential_id,
            };
            app.note_sign_in(tx.as_mut(), method.id, &login, principal.id, &meta, now)
                .await?;
            let data = json!({
                "login_type": LoginType::Passkey.as_str(),
                "session_id": session.session.id,
                "method": "passkey",
            });
            app.announce(
                &mut tx,
                principal.id,
                topics::USER_SIGNED_IN,
                &meta,
                data,
                now,
            )
            .await?;
            app.commit(tx).await?;
            Ok(session)
        };
        let session = self.on_writer(write).await?;
        self.grant_new(session, now).await
    }
}
