//! Binding and unbinding login methods. Every way in is a row; adding or
//! removing one never touches the profile, roles or other sessions.

use crate::brute_force::Action;
use crate::registration::identifier_taken;
use crate::{App, AuthContext, ClientMeta, LoginView};
use serde::Deserialize;
use serde_json::json;
use sesame_core::{Error, ErrorCode};
use sesame_credentials::{CodePurpose, LoginInput, LoginMethod, LoginType};
use sesame_events::topics;
use uuid::Uuid;

/// `POST /v1/me/logins`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindRequest {
    /// The login to add.
    pub login: LoginInput,
    /// A `bind` code sent to it (e-mail and phone).
    pub code: Option<String>,
    /// The flow the code was sent for.
    pub verification_id: Option<String>,
}

impl App {
    /// Adds a login method to the caller. E-mail and phone need a `bind` code
    /// sent to them and are stored verified; a username needs none. The unique
    /// index decides who wins an identifier.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn bind_login(
        &self,
        auth: &AuthContext,
        req: BindRequest,
        meta: &ClientMeta,
    ) -> Result<LoginView, Error> {
        let login = req.login.normalise(&self.0.settings.normalise, "login")?;
        self.require_recent_proof(auth).await?;
        let now = self.0.clock.now();
        let record = match (login.login_type, req.code.as_deref()) {
            (LoginType::Username, None) => None,
            (LoginType::Username, Some(_)) => return Err(Error::field("code", "not_allowed")),
            (_, None) => return Err(Error::field("code", "required")),
            (_, Some(code)) => {
                self.limit_ip(Action::ConfirmCode, meta).await?;
                self.limit_login(Action::ConfirmCode, &login).await?;
                Some(
                    self.check_code(
                        CodePurpose::Bind,
                        &login,
                        Some(auth),
                        code,
                        req.verification_id.as_deref(),
                        meta,
                    )
                    .await?,
                )
            }
        };
        let method = LoginMethod {
            id: Uuid::now_v7(),
            principal_id: auth.principal_id,
            login_type: login.login_type,
            identifier: login.identifier.clone(),
            verified_at: record.as_ref().map(|_| now),
            created_at: now,
            last_used_at: None,
        };
        let stores = &self.0.stores;
        let mut tx = self.begin().await?;
        if let Some(record) = &record {
            self.consume_code(tx.as_mut(), record, now).await?;
        }
        stores
            .logins
            .insert_login_method(tx.as_mut(), &method)
            .await
            .map_err(identifier_taken)?;
        let data = json!({ "login_id": method.id, "login_type": login.login_type.as_str() });
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
        Ok(LoginView::from(method))
    }

    /// Removes one of the caller's login methods, unless it is the last way in:
    /// what remains must still sign in (any method with a password, an e-mail
    /// or phone without one).
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn unbind_login(
        &self,
        auth: &AuthContext,
        id: Uuid,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        self.require_recent_proof(auth).await?;
        let actor = sesame_events::Actor::principal(auth.principal_id);
        self.remove_login(auth.principal_id, id, actor, meta).await
    }

    /// Removes `principal`'s login method `id` for `actor`, unless it is the
    /// last way in (a username counts only with a password, a provider's
    /// login only while its connection exists).
    pub(crate) async fn remove_login(
        &self,
        principal: sesame_core::PrincipalId,
        id: Uuid,
        actor: sesame_events::Actor,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        let now = self.0.clock.now();
        let stores = &self.0.stores;
        let has_password = stores.passwords.get_password(principal).await?.is_some();
        let connections = self.connection_names().await?;
        let mut tx = self.begin().await?;
        let methods = stores
            .logins
            .list_login_methods_for_update(tx.as_mut(), principal)
            .await?;
        let target = methods
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| Error::problem(ErrorCode::NotFound, "No such login method"))?;
        let usable = |m: &&LoginMethod| {
            m.id != id
                && match m.login_type {
                    LoginType::Username => has_password,
                    LoginType::Federated(name) => connections.iter().any(|c| c == name),
                    _ => true,
                }
        };
        if !methods.iter().any(|m| usable(&m)) {
            return Err(Error::problem(
                ErrorCode::LastLoginMethod,
                "This is the last way to sign in; add another before removing it",
            ));
        }
        stores
            .logins
            .delete_login_method(tx.as_mut(), principal, id)
            .await?;
        let data = json!({ "login_id": id, "login_type": target.login_type.as_str() });
        self.announce_as(
            &mut tx,
            principal,
            actor,
            topics::LOGIN_METHOD_UNBOUND,
            meta,
            data,
            now,
        )
        .await?;
        tx.touches(principal);
        self.commit(tx).await?;
        Ok(())
    }
}
