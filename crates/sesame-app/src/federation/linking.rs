//! The linking policy, first match wins: a login `(connection, subject)`
//! that exists signs its principal in; a `link` flow binds it to the caller;
//! a verified provider e-mail equal to a verified e-mail login links only
//! where the connection opts in (`409 link_required` otherwise); anything
//! else is a new principal, with the e-mail bound only when verified and
//! unclaimed. An unverified side never links, and linking never removes
//! another credential.

use super::{AMR, Exchanged, gone, internal};
use crate::{App, ClientMeta, LoginView, Registered, SignedIn};
use serde_json::json;
use sesame_core::{Error, ErrorCode, PrincipalId};
use sesame_credentials::{Login, LoginMethod, LoginType, Principal};
use sesame_events::topics;
use sesame_federation::{Connection, ProviderIdentity};
use time::OffsetDateTime;
use uuid::Uuid;

impl App {
    /// Binds `(login_type, subject)` to `principal` (a `link` flow).
    pub(super) async fn link_identity(
        &self,
        principal: PrincipalId,
        connection: &Connection,
        identity: &ProviderIdentity,
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<Exchanged, Error> {
        let login_type = connection.login_type();
        let logins = &self.0.stores.logins;
        // The account that began the link may have gone meanwhile.
        let owner = self.0.stores.principals.get_principal(principal).await;
        if !owner.is_ok_and(|p| p.is_active) {
            return Err(gone());
        }
        if let Some(found) = logins
            .find_login_method(login_type, &identity.subject)
            .await?
        {
            if found.principal_id == principal {
                return Ok(Exchanged::Linked {
                    login: LoginView::from(found),
                    created: false,
                });
            }
            return Err(crate::registration::identifier_in_use());
        }
        let method = self.new_federated_login(principal, connection, identity, now);
        let mut tx = self.begin().await?;
        self.bind_federated(&mut tx, &method, connection, identity, meta, now)
            .await?;
        tx.touches(principal);
        self.commit(tx).await?;
        Ok(Exchanged::Linked {
            login: LoginView::from(method),
            created: true,
        })
    }

    fn new_federated_login(
        &self,
        principal: PrincipalId,
        connection: &Connection,
        identity: &ProviderIdentity,
        now: OffsetDateTime,
    ) -> LoginMethod {
        LoginMethod {
            id: Uuid::now_v7(),
            principal_id: principal,
            login_type: connection.login_type(),
            identifier: identity.subject.clone(),
            verified_at: Some(now),
            created_at: now,
            last_used_at: None,
        }
    }

    /// Inserts a federated login (its provider tokens too, when kept) and
    /// announces it; a conflict on the identifier is `409 identifier_taken`.
    async fn bind_federated(
        &self,
        tx: &mut crate::work::Work,
        method: &LoginMethod,
        connection: &Connection,
        identity: &ProviderIdentity,
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        self.0
            .stores
            .logins
            .insert_login_method(tx.as_mut(), method)
            .await
            .map_err(crate::registration::identifier_taken)?;
        self.keep_tokens(tx, method.id, connection, identity, now)
            .await?;
        let data = json!({ "login_id": method.id, "login_type": method.login_type.as_str() });
        self.announce(
            tx,
            method.principal_id,
            topics::LOGIN_METHOD_BOUND,
            meta,
            data,
            now,
        )
        .await
    }

    async fn keep_tokens(
        &self,
        tx: &mut crate::work::Work,
        login_id: Uuid,
        connection: &Connection,
        identity: &ProviderIdentity,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let (true, Some(tokens)) = (connection.settings.store_tokens, &identity.tokens) else {
            return Ok(());
        };
        let plain = serde_json::to_vec(tokens).map_err(internal("tokens"))?;
        let sealed = self.0.master.current().seal(&plain, login_id.as_bytes())?;
        self.0
            .stores
            .federation
            .put_provider_tokens(tx.as_mut(), login_id, &sealed, now)
            .await?;
        Ok(())
    }

    /// The sign-in side of the linking policy.
    pub(super) async fn federated_sign_in(
        &self,
        connection: &Connection,
        identity: &ProviderIdentity,
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<Exchanged, Error> {
        let login_type = connection.login_type();
        let logins = &self.0.stores.logins;
        // Concurrent first sign-ins of one subject race on the unique index:
        // the losers find the winner's login on the next round.
        for _ in 0..3 {
            if let Some(method) = logins
                .find_login_method(login_type, &identity.subject)
                .await?
            {
                crate::record_principal(method.principal_id);
                return self
                    .open_federated_session(method, connection, identity, meta, now)
                    .await
                    .map(Exchanged::SignedIn);
            }
            let email = self.verified_email(identity);
            if let Some(email) = &email
                && let Some(local) = logins.find_login_method(LoginType::Email, email).await?
                && local.verified_at.is_some()
            {
                if !connection.settings.link_by_verified_email {
                    // A racing first sign-in of this subject may have
                    // committed its login and the e-mail together between
                    // the two reads: then sign in with that login.
                    if logins
                        .find_login_method(login_type, &identity.subject)
                        .await?
                        .is_some()
                    {
                        continue;
                    }
                    return Err(Error::problem(
                        ErrorCode::LinkRequired,
                        "An account with this verified e-mail exists: sign in to it, then link this provider",
                    ));
                }
                crate::record_principal(local.principal_id);
                let method =
                    self.new_federated_login(local.principal_id, connection, identity, now);
                let mut tx = self.begin().await?;
                match self
                    .bind_federated(&mut tx, &method, connection, identity, meta, now)
                    .await
                {
                    Ok(()) => {}
                    Err(e) if e.error_code() == ErrorCode::IdentifierTaken => continue,
                    Err(e) => return Err(e),
                }
                tx.touches(local.principal_id);
                self.commit(tx).await?;
                return self
                    .open_federated_session(method, connection, identity, meta, now)
                    .await
                    .map(Exchanged::SignedIn);
            }
            match self
                .federated_sign_up(connection, identity, email, meta, now)
                .await
            {
                Err(e) if e.error_code() == ErrorCode::IdentifierTaken => continue,
                other => return other,
            }
        }
        Err(Error::problem(
            ErrorCode::Unavailable,
            "Too many concurrent sign-ins of this identity; try again",
        ))
    }

    /// The provider's e-mail, normalised, when the provider verified it.
    fn verified_email(&self, identity: &ProviderIdentity) -> Option<String> {
        let email = identity
            .email
            .as_deref()
            .filter(|_| identity.email_verified)?;
        sesame_credentials::login::normalise(LoginType::Email, email, &self.0.settings.normalise)
            .ok()
    }

    /// A new principal with the federated login, and the verified e-mail
    /// when no one has it.
    async fn federated_sign_up(
        &self,
        connection: &Connection,
        identity: &ProviderIdentity,
        email: Option<String>,
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<Exchanged, Error> {
        self.limit_ip(crate::brute_force::Action::Register, meta)
            .await?;
        let stores = &self.0.stores;
        let id = PrincipalId(Uuid::now_v7());
        crate::record_principal(id);
        let fields = sesame_identity::NewProfile {
            display_name: identity.name.clone(),
            avatar_url: None,
        };
        let profile = sesame_identity::Profile::new(id, fields, now).or_else(|_| {
            sesame_identity::Profile::new(id, sesame_identity::NewProfile::default(), now)
        })?;
        let principal = Principal::new(id, "user", now);
        let method = self.new_federated_login(id, connection, identity, now);
        let email_login = match &email {
            Some(e)
                if stores
                    .logins
                    .find_login_method(LoginType::Email, e)
                    .await?
                    .is_none() =>
            {
                Some(LoginMethod {
                    id: Uuid::now_v7(),
                    principal_id: id,
                    login_type: LoginType::Email,
                    identifier: e.clone(),
                    verified_at: Some(now),
                    created_at: now,
                    last_used_at: None,
                })
            }
            _ => None,
        };
        let session = self.new_session(id, &principal.kind, &[AMR], meta, now)?;
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
        if let Some(email_login) = &email_login {
            // Claimed by someone meanwhile: the next round decides again.
            stores
                .logins
                .insert_login_method(tx.as_mut(), email_login)
                .await
                .map_err(crate::registration::identifier_taken)?;
        }
        self.keep_tokens(&mut tx, method.id, connection, identity, now)
            .await?;
        self.insert_session(tx.as_mut(), &session).await?;
        let data = json!({ "login_type": method.login_type.as_str(), "has_password": false });
        self.announce(&mut tx, id, topics::USER_SIGNED_UP, meta, data, now)
            .await?;
        self.commit(tx).await?;
        let user = self.me_of(id, &principal.kind).await?;
        Ok(Exchanged::Registered(Box::new(Registered {
            session: self.grant_new(session, now).await?,
            user,
        })))
    }

    /// Signs the owner of `method` in, or opens the second-factor challenge.
    async fn open_federated_session(
        &self,
        method: LoginMethod,
        connection: &Connection,
        identity: &ProviderIdentity,
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<SignedIn, Error> {
        let stores = &self.0.stores;
        let principal = stores.principals.get_principal(method.principal_id).await?;
        if !principal.is_active {
            return Err(Error::code(ErrorCode::AccountSuspended));
        }
        if let Some(wait) = crate::sign_in::lock_left(&principal, now) {
            return Err(crate::brute_force::locked(wait));
        }
        let mfa = stores.mfa.mfa_summary(principal.id).await?;
        let mut tx = self.begin().await?;
        self.keep_tokens(&mut tx, method.id, connection, identity, now)
            .await?;
        if mfa.enrolled() {
            let challenge = self
                .open_challenge(tx.as_mut(), &principal, &method, mfa, AMR, now)
                .await?;
            self.commit(tx).await?;
            return Ok(SignedIn::Mfa(challenge));
        }
        let session = self.new_session(principal.id, &principal.kind, &[AMR], meta, now)?;
        stores
            .principals
            .record_sign_in_later(tx.as_mut(), principal.id, now)
            .await?;
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
            "method": AMR,
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
