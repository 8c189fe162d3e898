//! Registration: profile, principal, login method, password, session, audit row
//! and outbox event in one transaction.

use crate::brute_force::Action;
use crate::proof::Proof;
use crate::{App, ClientMeta, RegisterRequest, Registered};
use serde_json::json;
use sesame_core::{Error, ErrorCode, FieldError, PrincipalId, StoreError};
use sesame_credentials::password::check_new_password;
use sesame_credentials::{CodePurpose, LOGIN_IDENTIFIER_UNIQUE, LoginMethod, LoginType, Principal};
use sesame_events::topics;
use sesame_identity::Profile;
use uuid::Uuid;

/// One error for several failed checks: their field errors merged into one
/// validation error, or the first error of another kind.
fn merge_errors(errors: impl IntoIterator<Item = Option<Error>>) -> Error {
    let mut fields: Vec<FieldError> = Vec::new();
    for err in errors.into_iter().flatten() {
        match err {
            Error::Invalid {
                code: ErrorCode::ValidationFailed,
                errors,
            } => fields.extend(errors),
            other => return other,
        }
    }
    Error::validation(fields)
}

/// The answer when a login identifier belongs to someone already.
pub(crate) fn identifier_in_use() -> Error {
    Error::problem(
        ErrorCode::IdentifierTaken,
        "This identifier is already registered",
    )
}

/// Maps the unique index's refusal to `identifier_taken`.
pub(crate) fn identifier_taken(err: StoreError) -> Error {
    match err {
        StoreError::Conflict { constraint } if constraint == LOGIN_IDENTIFIER_UNIQUE => {
            identifier_in_use()
        }
        other => other.into(),
    }
}

impl App {
    /// Signs a new principal up with an identifier and a password.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = tracing::field::Empty))]
    pub async fn register(
        &self,
        req: RegisterRequest,
        meta: &ClientMeta,
    ) -> Result<Registered, Error> {
        let now = self.0.clock.now();
        let login = req.login.normalise(&self.0.settings.normalise, "login");
        let proof = Proof::of(req.password, req.code);
        let id = PrincipalId::new();
        crate::record_principal(id);
        let profile = Profile::new(id, req.profile.unwrap_or_default(), now);
        let (login, proof, profile) = match (login, proof, profile) {
            (Ok(l), Ok(p), Ok(pr)) => (l, p, pr),
            (l, p, pr) => return Err(merge_errors([l.err(), p.err(), pr.err()])),
        };
        self.limit_ip(Action::Register, meta).await?;
        self.limit_login(Action::Register, &login).await?;
        let (hash, code) = match &proof {
            Proof::Password(password) => {
                check_new_password(password, &[login.identifier.as_str()], "password")?;
                // Spare the hash when the identifier is visibly taken; the unique
                // index still decides when two sign-ups race.
                let taken = self
                    .0
                    .stores
                    .logins
                    .find_login_method(login.login_type, &login.identifier)
                    .await?;
                if taken.is_some() {
                    return Err(identifier_in_use());
                }
                let _slot = self.hashing_slot(meta)?;
                (Some(self.0.hasher.hash(password).await?), None)
            }
            Proof::Code(code) => {
                if login.login_type == LoginType::Username {
                    return Err(Error::field("login.type", "codes_not_supported"));
                }
                (
                    None,
                    Some(
                        self.check_code(
                            CodePurpose::Register,
                            &login,
                            None,
                            code,
                            req.verification_id.as_deref(),
                            meta,
                        )
                        .await?,
                    ),
                )
            }
        };
        // Creation happens on the server, so "now" is when the write starts.
        let now = self.0.clock.now().max(now);
        let profile = Profile {
            created_at: now,
            updated_at: now,
            ..profile
        };

        let principal = Principal::new(id, "user", now);
        let method = LoginMethod {
            id: Uuid::now_v7(),
            principal_id: id,
            login_type: login.login_type,
            identifier: login.identifier.clone(),
            // A code proves the person holds the address or number.
            verified_at: code.as_ref().map(|_| now),
            created_at: now,
            last_used_at: Some(now),
        };
        let session = self.new_session(
            id,
            &principal.kind,
            &[proof.amr(login.login_type)],
            meta,
            now,
        )?;
        let stores = &self.0.stores;
        let fail = &self.0.failpoints;

        let mut tx = self.begin().await?;
        stores
            .profiles
            .insert_profile(tx.as_mut(), &profile)
            .await?;
        fail.check("register.profile")?;
        stores
            .principals
            .insert_principal(tx.as_mut(), &principal)
            .await?;
        fail.check("register.principal")?;
        stores
            .logins
            .insert_login_method(tx.as_mut(), &method)
            .await
            .map_err(identifier_taken)?;
        fail.check("register.login_method")?;
        if let Some(hash) = &hash {
            stores
                .passwords
                .set_password(tx.as_mut(), id, hash, now)
                .await?;
        }
        if let Some(code) = &code {
            self.consume_code(tx.as_mut(), code, now).await?;
        }
        fail.check("register.password")?;
        self.insert_session(tx.as_mut(), &session).await?;
        fail.check("register.session")?;
        let data =
            json!({ "login_type": login.login_type.as_str(), "has_password": hash.is_some() });
        self.announce(&mut tx, id, topics::USER_SIGNED_UP, meta, data, now)
            .await?;
        fail.check("register.outbox")?;
        self.commit(tx).await?;

        let user = self.me_of(id, &principal.kind).await?;
        Ok(Registered {
            session: self.grant_new(session, now).await?,
            user,
        })
    }
}
