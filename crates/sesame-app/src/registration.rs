//! Registration: profile, principal, login method, password, session, audit row
//! and outbox event in one transaction.

use crate::{App, ClientMeta, RegisterRequest, Registered};
use serde_json::json;
use sesame_core::{Error, ErrorCode, FieldError, PrincipalId, StoreError};
use sesame_credentials::password::check_new_password;
use sesame_credentials::{LOGIN_IDENTIFIER_UNIQUE, LoginMethod, Principal};
use sesame_events::topics;
use sesame_identity::Profile;
use uuid::Uuid;

/// Merges the field errors of several checks into one validation error.
pub(crate) fn collect_errors<T>(results: Vec<Result<T, Error>>) -> Result<Vec<T>, Error> {
    let mut ok = Vec::new();
    let mut fields: Vec<FieldError> = Vec::new();
    for r in results {
        match r {
            Ok(v) => ok.push(v),
            Err(Error::Invalid {
                code: ErrorCode::ValidationFailed,
                errors,
            }) => fields.extend(errors),
            Err(other) => return Err(other),
        }
    }
    if fields.is_empty() {
        Ok(ok)
    } else {
        Err(Error::validation(fields))
    }
}

pub(crate) fn identifier_taken(err: StoreError) -> Error {
    match err {
        StoreError::Conflict { constraint } if constraint == LOGIN_IDENTIFIER_UNIQUE => {
            Error::problem(
                ErrorCode::IdentifierTaken,
                "This identifier is already registered",
            )
        }
        other => other.into(),
    }
}

impl App {
    /// Signs a new principal up with an identifier and a password.
    pub async fn register(
        &self,
        req: RegisterRequest,
        meta: &ClientMeta,
    ) -> Result<Registered, Error> {
        let now = self.0.clock.now();
        let login = req.login.normalise(&self.0.settings.normalise, "login");
        let password = match (&req.password, &req.code) {
            (Some(pw), None) => Ok(pw.clone()),
            (None, Some(_)) => Err(Error::field("code", "unsupported")),
            (Some(_), Some(_)) => Err(Error::field("code", "not_allowed_with_password")),
            (None, None) => Err(Error::field("password", "required")),
        };
        let id = PrincipalId::new();
        let profile = Profile::new(id, req.profile.unwrap_or_default(), now);
        let (login, password, profile) = match (login, password, profile) {
            (Ok(l), Ok(p), Ok(pr)) => (l, p, pr),
            (l, p, pr) => {
                collect_errors(vec![l.map(|_| ()), p.map(|_| ()), pr.map(|_| ())])?;
                return Err(Error::Internal("validation disagreed with itself".into()));
            }
        };
        check_new_password(&password, &[login.identifier.as_str()], "password")?;
        // Spare the hash when the identifier is visibly taken; the unique index
        // still decides when two sign-ups race.
        if self
            .0
            .stores
            .logins
            .find_login_method(login.login_type, &login.identifier)
            .await?
            .is_some()
        {
            return Err(identifier_taken(StoreError::Conflict {
                constraint: LOGIN_IDENTIFIER_UNIQUE.into(),
            }));
        }
        let hash = self.0.hasher.hash(&password).await?;
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
            verified_at: None,
            created_at: now,
            last_used_at: Some(now),
        };
        let session = self.new_session(id, &principal.kind, &["pwd"], meta, now)?;
        let stores = &self.0.stores;
        let fail = &self.0.failpoints;

        let mut tx = stores.db.begin().await?;
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
        stores
            .passwords
            .set_password(tx.as_mut(), id, &hash, now)
            .await?;
        fail.check("register.password")?;
        self.insert_session(tx.as_mut(), &session).await?;
        fail.check("register.session")?;
        let data = json!({ "login_type": login.login_type.as_str(), "has_password": true });
        self.announce(tx.as_mut(), id, topics::USER_SIGNED_UP, meta, data, now)
            .await?;
        fail.check("register.outbox")?;
        stores.db.commit(tx).await?;

        let user = self.me_of(id, &principal.kind).await?;
        Ok(Registered {
            session: self.grant_new(session, now)?,
            user,
        })
    }
}
