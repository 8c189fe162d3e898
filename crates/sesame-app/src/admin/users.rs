//! The admin API's operations on users: the directory (keyset pages, a
//! login identifier search), a user's status, suspension and reactivation,
//! and a user's sessions.

use super::cursor;
use crate::access::{Access, Caller};
use crate::{App, ClientMeta, SessionView};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sesame_core::{Error, ErrorCode, FieldError, PrincipalId, StoreError};
use sesame_events::topics;
use time::OffsetDateTime;
use uuid::Uuid;

/// `POST /v1/admin/users/{id}/suspend`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuspendRequest {
    /// Why, for the audit log.
    pub reason: Option<String>,
}

/// A principal as the admin API lists it.
#[derive(Debug, Serialize)]
pub struct AdminUserItem {
    /// The principal.
    pub id: PrincipalId,
    /// Its kind.
    pub kind: String,
    /// `active` or `suspended`.
    pub status: &'static str,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last successful sign-in.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login_at: Option<OffsetDateTime>,
}

impl From<sesame_credentials::Principal> for AdminUserItem {
    fn from(p: sesame_credentials::Principal) -> Self {
        Self {
            id: p.id,
            kind: p.kind,
            status: if p.is_active { "active" } else { "suspended" },
            created_at: p.created_at,
            last_login_at: p.last_login_at,
        }
    }
}

/// A principal as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct AdminUserView {
    /// What lists show.
    #[serde(flatten)]
    pub principal: AdminUserItem,
    /// Names of the roles it holds.
    pub roles: Vec<String>,
}

/// `GET /v1/admin/users`: filters and the page to read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// A login identifier, matched exactly once normalised by its type.
    pub q: Option<String>,
    /// Only principals of this kind.
    pub kind: Option<String>,
    /// `active` or `suspended`.
    pub status: Option<String>,
    /// Items per page, 1–200 (default 50).
    pub limit: Option<i64>,
    /// Where the previous page ended, bound to its filters.
    pub cursor: Option<String>,
}

/// A page of users.
#[derive(Debug, Serialize)]
pub struct UserPage {
    /// The users, in creation order.
    pub items: Vec<AdminUserItem>,
    /// The cursor of the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// A principal made by an operator or an admin: any declared kind, one
/// login (taken as verified: whoever creates it vouches for it), a password
/// when given, and roles.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// A declared kind.
    pub kind: String,
    /// Its first login.
    pub login: sesame_credentials::LoginInput,
    /// Its password, if it signs in with one.
    pub password: Option<String>,
    /// Roles to assign at once.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `DELETE /v1/admin/users/{id}/sessions`.
#[derive(Debug, Serialize)]
pub struct Revoked {
    /// How many sessions were revoked.
    pub revoked: usize,
}

impl App {
    /// `GET /v1/admin/users/{id}`.
    pub async fn admin_get_user(
        &self,
        caller: &Caller,
        id: PrincipalId,
    ) -> Result<AdminUserView, Error> {
        self.admit_read(caller, "users:read", "user", Some(id))
            .await?;
        let principal = self.existing_principal(id).await?;
        let roles = self.0.stores.access.roles_of(id).await?;
        Ok(AdminUserView {
            principal: principal.into(),
            roles: roles.into_iter().map(|r| r.name).collect(),
        })
    }

    /// `GET /v1/admin/users`: keyset pages in creation order. `q` is a login
    /// identifier, normalised by each login type that accepts it and matched
    /// exactly. A cursor only continues the walk it came from: with other
    /// filters it is refused.
    pub async fn list_users(&self, caller: &Caller, query: UserQuery) -> Result<UserPage, Error> {
        self.admit_read(caller, "users:read", "users", None).await?;
        let query = UserQuery {
            q: cursor::given(query.q),
            kind: cursor::given(query.kind),
            status: cursor::given(query.status),
            cursor: cursor::given(query.cursor),
            ..query
        };
        let limit = query.limit.unwrap_or(50);
        let mut errors = Vec::new();
        if !(1..=200).contains(&limit) {
            errors.push(FieldError::new("limit", "out_of_range"));
        }
        let active = match query.status.as_deref() {
            None => None,
            Some("active") => Some(true),
            Some("suspended") => Some(false),
            Some(_) => {
                errors.push(FieldError::new("status", "invalid_value"));
                None
            }
        };
        let filters = cursor::fingerprint(&[&query.q, &query.kind, &query.status]);
        let after = match &query.cursor {
            None => None,
            Some(text) => match cursor::read(text, &filters) {
                Ok(after) => Some(PrincipalId(after)),
                Err(code) => {
                    errors.push(FieldError::new("cursor", code));
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(Error::validation(errors));
        }
        let stores = &self.0.stores;
        let mut items = match &query.q {
            None => {
                stores
                    .principals
                    .list_principals(query.kind.as_deref(), active, after, limit + 1)
                    .await?
            }
            Some(q) => self.search(q, after, limit).await?,
        };
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        // The cursor follows the page as read: a search filters by kind and
        // status after reading, so a page may hold fewer than `limit`.
        let next_cursor = more
            .then(|| items.last().map(|p| cursor::write(p.id.0, &filters)))
            .flatten();
        items.retain(|p| query.kind.as_ref().is_none_or(|k| *k == p.kind));
        items.retain(|p| active.is_none_or(|a| a == p.is_active));
        Ok(UserPage {
            items: items.into_iter().map(AdminUserItem::from).collect(),
            next_cursor,
        })
    }

    /// A page of the principals `q` names, in id order after `after`: those
    /// holding a login whose identifier is `q` under a login type's
    /// normalisation, and those whose display name starts with `q`. One more
    /// than `limit` when there are more; not yet filtered by kind or status.
    async fn search(
        &self,
        q: &str,
        after: Option<PrincipalId>,
        limit: i64,
    ) -> Result<Vec<sesame_credentials::Principal>, Error> {
        let mut found: Vec<_> = self
            .principals_named(q)
            .await?
            .into_iter()
            .filter(|p| after.is_none_or(|a| p.id.0 > a.0))
            .collect();
        let named = self
            .0
            .stores
            .profiles
            .find_by_display_name_prefix(q.trim(), after, limit + 1)
            .await?;
        for id in named {
            if !found.iter().any(|p| p.id == id) {
                match self.existing_principal(id).await {
                    Ok(p) => found.push(p),
                    // A profile left by an erasure the relay has not finished.
                    Err(Error::Problem {
                        code: ErrorCode::NotFound,
                        ..
                    }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        found.sort_by_key(|p| p.id.0);
        found.truncate(limit as usize + 1);
        Ok(found)
    }

    /// The principals holding a login whose identifier is `q` under any
    /// login type's normalisation.
    async fn principals_named(&self, q: &str) -> Result<Vec<sesame_credentials::Principal>, Error> {
        use sesame_credentials::LoginType;
        let mut found = Vec::new();
        for login_type in [LoginType::Email, LoginType::Phone, LoginType::Username] {
            let Ok(identifier) = sesame_credentials::login::normalise(
                login_type,
                q.trim(),
                &self.0.settings.normalise,
            ) else {
                continue;
            };
            if let Some(method) = self
                .0
                .stores
                .logins
                .find_login_method(login_type, &identifier)
                .await?
                && !found
                    .iter()
                    .any(|p: &sesame_credentials::Principal| p.id == method.principal_id)
            {
                found.push(self.existing_principal(method.principal_id).await?);
            }
        }
        Ok(found)
    }

    /// `POST /v1/admin/users/{id}/suspend`: the principal cannot sign in and
    /// every session of it is revoked, in one commit.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %principal))]
    pub async fn suspend(
        &self,
        caller: &Caller,
        principal: PrincipalId,
        req: SuspendRequest,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        self.require(caller, "users:suspend", Access::Write).await?;
        self.existing_principal(principal).await?;
        let now = self.0.clock.now();
        let stores = &self.0.stores;
        let mut tx = self.begin().await?;
        if stores
            .principals
            .set_principal_active(tx.as_mut(), principal, false, now)
            .await?
        {
            let ended = stores
                .sessions
                .revoke_sessions_of(tx.as_mut(), principal, None, "suspended", now)
                .await?;
            tx.ends(&ended);
            tx.touches(principal);
            let data = json!({ "reason": req.reason, "sessions_revoked": ended.len() });
            self.announce_as(
                &mut tx,
                principal,
                caller.actor(),
                topics::USER_SUSPENDED,
                meta,
                data,
                now,
            )
            .await?;
        }
        self.commit(tx).await
    }

    /// `POST /v1/admin/users/{id}/reactivate`.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %principal))]
    pub async fn reactivate(
        &self,
        caller: &Caller,
        principal: PrincipalId,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        self.require(caller, "users:suspend", Access::Write).await?;
        self.existing_principal(principal).await?;
        let now = self.0.clock.now();
        let mut tx = self.begin().await?;
        if self
            .0
            .stores
            .principals
            .set_principal_active(tx.as_mut(), principal, true, now)
            .await?
        {
            tx.touches(principal);
            self.announce_as(
                &mut tx,
                principal,
                caller.actor(),
                topics::USER_REACTIVATED,
                meta,
                json!({}),
                now,
            )
            .await?;
        }
        self.commit(tx).await
    }

    /// `GET /v1/admin/users/{id}/sessions`: the live ones.
    pub async fn admin_list_sessions(
        &self,
        caller: &Caller,
        principal: PrincipalId,
    ) -> Result<Vec<SessionView>, Error> {
        self.admit_read(caller, "sessions:read", "sessions", Some(principal))
            .await?;
        self.existing_principal(principal).await?;
        let sessions = self
            .0
            .stores
            .sessions
            .list_active_sessions(principal, self.0.clock.now())
            .await?;
        Ok(sessions
            .into_iter()
            .map(|s| SessionView::of(s, sesame_core::SessionId(Uuid::nil())))
            .collect())
    }

    /// `DELETE /v1/admin/users/{id}/sessions`: revokes every live session.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %principal))]
    pub async fn admin_revoke_sessions(
        &self,
        caller: &Caller,
        principal: PrincipalId,
        meta: &ClientMeta,
    ) -> Result<Revoked, Error> {
        self.require(caller, "sessions:revoke", Access::Write)
            .await?;
        self.existing_principal(principal).await?;
        let now = self.0.clock.now();
        let mut tx = self.begin().await?;
        let ended = self
            .0
            .stores
            .sessions
            .revoke_sessions_of(tx.as_mut(), principal, None, "revoked_by_admin", now)
            .await?;
        for id in &ended {
            let data = json!({ "session_id": id, "reason": "revoked_by_admin" });
            self.announce_as(
                &mut tx,
                principal,
                caller.actor(),
                topics::SESSION_REVOKED,
                meta,
                data,
                now,
            )
            .await?;
        }
        tx.ends(&ended);
        self.commit(tx).await?;
        Ok(Revoked {
            revoked: ended.len(),
        })
    }

    /// Creates a principal of any declared kind (`users:create`). A kind
    /// whose profile lives elsewhere gets no identity row.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = tracing::field::Empty))]
    pub async fn create_user(
        &self,
        caller: &Caller,
        req: NewUser,
        meta: &ClientMeta,
    ) -> Result<PrincipalId, Error> {
        use sesame_credentials::{LoginMethod, Principal, password::check_new_password};
        self.require(caller, "users:create", Access::Write).await?;
        let Some(kind) = self.0.settings.kinds.iter().find(|k| k.name == req.kind) else {
            return Err(Error::field("kind", "unknown_kind"));
        };
        let login = req.login.normalise(&self.0.settings.normalise, "login")?;
        let hash = match &req.password {
            Some(password) => {
                check_new_password(password, &[login.identifier.as_str()], "password")?;
                Some(self.0.hasher.hash(password).await?)
            }
            None => None,
        };
        let now = self.0.clock.now();
        let id = PrincipalId::new();
        crate::record_principal(id);
        let stores = &self.0.stores;
        let mut tx = self.begin().await?;
        if kind.profile {
            let profile = sesame_identity::Profile::new(id, Default::default(), now)?;
            stores
                .profiles
                .insert_profile(tx.as_mut(), &profile)
                .await?;
        }
        let principal = Principal::new(id, &kind.name, now);
        stores
            .principals
            .insert_principal(tx.as_mut(), &principal)
            .await?;
        let method = LoginMethod {
            id: Uuid::now_v7(),
            principal_id: id,
            login_type: login.login_type,
            identifier: login.identifier.clone(),
            verified_at: Some(now),
            created_at: now,
            last_used_at: None,
        };
        stores
            .logins
            .insert_login_method(tx.as_mut(), &method)
            .await
            .map_err(crate::registration::identifier_taken)?;
        if let Some(hash) = &hash {
            stores
                .passwords
                .set_password(tx.as_mut(), id, hash, now)
                .await?;
        }
        for role in &req.roles {
            stores
                .access
                .assign_role(tx.as_mut(), id, role, caller.principal(), now)
                .await
                .map_err(crate::access::no_such_role)?;
        }
        let data = json!({
            "login_type": login.login_type.as_str(),
            "has_password": hash.is_some(),
            "kind": kind.name,
            "roles": req.roles,
        });
        self.announce_as(
            &mut tx,
            id,
            caller.actor(),
            topics::USER_SIGNED_UP,
            meta,
            data,
            now,
        )
        .await?;
        self.commit(tx).await?;
        Ok(id)
    }

    /// `GET /v1/admin/users/{id}/logins`.
    pub async fn admin_list_logins(
        &self,
        caller: &Caller,
        principal: PrincipalId,
    ) -> Result<Vec<crate::LoginView>, Error> {
        self.admit_read(caller, "users:read", "logins", Some(principal))
            .await?;
        self.existing_principal(principal).await?;
        let methods = self.0.stores.logins.list_login_methods(principal).await?;
        Ok(methods.into_iter().map(crate::LoginView::from).collect())
    }

    /// `DELETE /v1/admin/users/{id}/logins/{login_id}`: the last-way-in rule
    /// holds for admins too.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %principal))]
    pub async fn admin_unbind_login(
        &self,
        caller: &Caller,
        principal: PrincipalId,
        login_id: Uuid,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        self.require(caller, "users:update", Access::Write).await?;
        self.existing_principal(principal).await?;
        self.remove_login(principal, login_id, caller.actor(), meta)
            .await
    }

    /// `DELETE /v1/admin/users/{id}/mfa`: every second factor (TOTP, security
    /// keys) and the backup codes go, so that a user who lost them all can
    /// sign in with the first factor and enrol again. Passkeys stay: they are
    /// ways in, not second factors.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %principal))]
    pub async fn admin_reset_mfa(
        &self,
        caller: &Caller,
        principal: PrincipalId,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        self.require(caller, "users:update", Access::Write).await?;
        self.existing_principal(principal).await?;
        let now = self.0.clock.now();
        let stores = &self.0.stores;
        let keys = stores.passkeys.list_security_keys(principal).await?;
        let mut tx = self.begin().await?;
        let totp = stores.mfa.delete_totp(tx.as_mut(), principal).await?;
        for key in &keys {
            stores
                .passkeys
                .delete_security_key(tx.as_mut(), principal, key.id)
                .await?;
        }
        stores
            .mfa
            .replace_backup_codes(tx.as_mut(), principal, &[], now)
            .await?;
        if totp || !keys.is_empty() {
            let data = json!({ "factor": "all", "totp": totp, "security_keys": keys.len() });
            self.announce_as(
                &mut tx,
                principal,
                caller.actor(),
                topics::MFA_REMOVED,
                meta,
                data,
                now,
            )
            .await?;
        }
        tx.touches(principal);
        self.commit(tx).await
    }

    /// The principal, or `404 not_found`.
    pub(crate) async fn existing_principal(
        &self,
        id: PrincipalId,
    ) -> Result<sesame_credentials::Principal, Error> {
        match self.0.stores.principals.get_principal(id).await {
            Ok(p) if p.deleted_at.is_none() => Ok(p),
            Ok(_) => Err(Error::problem(ErrorCode::NotFound, "No such user")),
            Err(StoreError::NotFound) => Err(Error::problem(ErrorCode::NotFound, "No such user")),
            Err(e) => Err(e.into()),
        }
    }
}
