//! The admin API's operations on service API keys and roles, and (in
//! [`users`]) on users. Each checks its caller's permission first and is
//! audited with the caller as actor; the HTTP edge (and later gRPC) only
//! calls them.

mod audit;
mod connections;
mod cursor;
mod users;
mod webhooks;

pub use connections::{ConnectionRequest, ConnectionView};
pub use webhooks::{WebhookRequest, WebhookSaved, WebhookView};

pub use audit::{AuditPage, AuditQuery};
pub use users::{
    AdminUserItem, AdminUserView, NewUser, Revoked, SuspendRequest, UserPage, UserQuery,
};

use crate::access::{ADMIN_ROLE, Access, Caller, PERMISSIONS, no_such_role};
use crate::{App, ClientMeta, Stores};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sesame_core::{Error, ErrorCode, FieldError, PrincipalId};
use sesame_credentials::{ApiKeyRecord, AuditEntry, NewApiKey, Role};
use sesame_events::topics;
use time::OffsetDateTime;
use uuid::Uuid;
/// `POST /v1/admin/api-keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRequest {
    /// A name for people.
    pub name: String,
    /// Permissions the key carries.
    pub scopes: Vec<String>,
    /// When it stops working, if ever.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// A key as listed: never its secret.
#[derive(Debug, Serialize)]
pub struct ApiKeyView {
    /// Row id, for revocation.
    pub id: Uuid,
    /// The public part of the key.
    pub key_id: String,
    /// Its name.
    pub name: String,
    /// Its permissions.
    pub scopes: Vec<String>,
    /// The principal that created it, if one did.
    pub created_by: Option<PrincipalId>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Expiry.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Last accepted use (written at most once a minute).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// Revocation time.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<ApiKeyRecord> for ApiKeyView {
    fn from(k: ApiKeyRecord) -> Self {
        Self {
            id: k.id,
            key_id: k.key_id,
            name: k.name,
            scopes: k.scopes,
            created_by: k.created_by,
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A key just created: the whole key, shown this once.
#[derive(Debug, Serialize)]
pub struct ApiKeyCreated {
    /// `ses_live_…`.
    pub key: String,
    /// The stored part.
    #[serde(flatten)]
    pub view: ApiKeyView,
}

/// `PUT /v1/admin/roles/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    /// The role's permissions.
    pub permissions: Vec<String>,
}

impl App {
    /// `POST /v1/admin/api-keys`: a new key, shown once.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn create_api_key(
        &self,
        caller: &Caller,
        req: ApiKeyRequest,
        meta: &ClientMeta,
    ) -> Result<ApiKeyCreated, Error> {
        self.require(caller, "api_keys:manage", Access::Write)
            .await?;
        issue_api_key(&self.0.stores, caller, req, meta, self.0.clock.now()).await
    }

    /// `GET /v1/admin/api-keys`.
    pub async fn list_api_keys(&self, caller: &Caller) -> Result<Vec<ApiKeyView>, Error> {
        self.admit_read(caller, "api_keys:manage", "api_keys", None)
            .await?;
        let keys = self.0.stores.access.list_api_keys().await?;
        Ok(keys.into_iter().map(ApiKeyView::from).collect())
    }

    /// `DELETE /v1/admin/api-keys/{id}`.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn revoke_api_key(
        &self,
        caller: &Caller,
        id: Uuid,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        self.require(caller, "api_keys:manage", Access::Write)
            .await?;
        let now = self.0.clock.now();
        let mut tx = self.begin().await?;
        if !self
            .0
            .stores
            .access
            .revoke_api_key(tx.as_mut(), id, now)
            .await?
        {
            return Err(Error::problem(ErrorCode::NotFound, "No such live API key"));
        }
        let data = json!({ "id": id });
        self.audit_admin(tx.as_mut(), caller, "api_key.revoked", data, meta, now)
            .await?;
        self.commit(tx).await?;
        self.0.caches.api_keys.clear();
        Ok(())
    }

    /// `GET /v1/admin/roles`.
    pub async fn list_roles(&self, caller: &Caller) -> Result<Vec<Role>, Error> {
        self.admit_read(caller, "roles:manage", "roles", None)
            .await?;
        Ok(self.0.stores.access.list_roles().await?)
    }

    /// `PUT /v1/admin/roles/{name}`: creates a role or replaces its permissions.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn put_role(
        &self,
        caller: &Caller,
        name: &str,
        req: RoleRequest,
        meta: &ClientMeta,
    ) -> Result<Role, Error> {
        self.require(caller, "roles:manage", Access::Write).await?;
        builtin_untouched(name)?;
        let mut errors = unknown_permissions("permissions", &req.permissions);
        if !valid_role_name(name) {
            errors.push(FieldError::new("name", "invalid_format"));
        }
        if !errors.is_empty() {
            return Err(Error::validation(errors));
        }
        let now = self.0.clock.now();
        let role = Role {
            name: name.to_owned(),
            permissions: req.permissions,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.begin().await?;
        let role = self.0.stores.access.put_role(tx.as_mut(), &role).await?;
        let data = json!({ "role": role.name, "permissions": role.permissions });
        self.audit_admin(tx.as_mut(), caller, "role.changed", data, meta, now)
            .await?;
        self.commit(tx).await?;
        self.0.caches.roles.clear();
        Ok(role)
    }

    /// `DELETE /v1/admin/roles/{name}`: the role and every assignment of it.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn delete_role(
        &self,
        caller: &Caller,
        name: &str,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        self.require(caller, "roles:manage", Access::Write).await?;
        builtin_untouched(name)?;
        let now = self.0.clock.now();
        let mut tx = self.begin().await?;
        if !self.0.stores.access.delete_role(tx.as_mut(), name).await? {
            return Err(Error::problem(ErrorCode::NotFound, "No such role"));
        }
        let data = json!({ "role": name });
        self.audit_admin(tx.as_mut(), caller, "role.deleted", data, meta, now)
            .await?;
        self.commit(tx).await?;
        self.0.caches.roles.clear();
        Ok(())
    }

    /// `PUT /v1/admin/users/{id}/roles/{role}`: idempotent; the event only
    /// when the principal did not hold the role.
    pub async fn assign_role(
        &self,
        caller: &Caller,
        principal: PrincipalId,
        role: &str,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        self.change_role(caller, principal, role, true, meta).await
    }

    /// `DELETE /v1/admin/users/{id}/roles/{role}`: idempotent.
    pub async fn revoke_role(
        &self,
        caller: &Caller,
        principal: PrincipalId,
        role: &str,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        self.change_role(caller, principal, role, false, meta).await
    }

    /// Gives (`assign`) or takes away a role; the event and audit row only
    /// when that changed something.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %principal))]
    async fn change_role(
        &self,
        caller: &Caller,
        principal: PrincipalId,
        role: &str,
        assign: bool,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        self.require(caller, "roles:assign", Access::Write).await?;
        self.existing_principal(principal).await?;
        let now = self.0.clock.now();
        let access = &self.0.stores.access;
        let mut tx = self.begin().await?;
        let (changed, topic) = if assign {
            let by = caller.principal();
            let new = access
                .assign_role(tx.as_mut(), principal, role, by, now)
                .await
                .map_err(no_such_role)?;
            (new, topics::ROLE_ASSIGNED)
        } else {
            let gone = access.revoke_role(tx.as_mut(), principal, role).await?;
            (gone, topics::ROLE_REVOKED)
        };
        if changed {
            let data = json!({ "role": role });
            self.announce_as(&mut tx, principal, caller.actor(), topic, meta, data, now)
                .await?;
        }
        self.commit(tx).await?;
        self.0.caches.roles.invalidate(&principal);
        Ok(())
    }
}

/// Creates a service API key for `caller` (whose permission the caller of
/// this has checked): the command line's path, and the admin API's.
pub async fn issue_api_key(
    stores: &Stores,
    caller: &Caller,
    req: ApiKeyRequest,
    meta: &ClientMeta,
    now: OffsetDateTime,
) -> Result<ApiKeyCreated, Error> {
    let mut errors = Vec::new();
    if req.name.trim().is_empty() || req.name.chars().count() > 100 {
        errors.push(FieldError::new("name", "invalid_length"));
    }
    errors.extend(unknown_permissions("scopes", &req.scopes));
    if req.expires_at.is_some_and(|at| at <= now) {
        errors.push(FieldError::new("expires_at", "in_the_past"));
    }
    if !errors.is_empty() {
        return Err(Error::validation(errors));
    }
    let (key, record) = new_key(req, caller.principal(), now)?;
    let mut tx = stores.db.begin().await?;
    stores.access.insert_api_key(tx.as_mut(), &record).await?;
    let data = json!({ "key_id": record.key_id, "name": record.name, "scopes": record.scopes });
    let entry = admin_audit(caller, "api_key.created", data, meta, now);
    stores.audit.append_audit(tx.as_mut(), &entry).await?;
    stores.db.commit(tx).await?;
    Ok(ApiKeyCreated {
        key,
        view: record.into(),
    })
}

impl App {
    /// Checks the permission of an admin read and audits the read (event
    /// `admin.read`, about the principal read when there is one): who looked
    /// at an account is itself worth keeping.
    pub(crate) async fn admit_read(
        &self,
        caller: &Caller,
        permission: &str,
        what: &str,
        about: Option<PrincipalId>,
    ) -> Result<(), Error> {
        self.require(caller, permission, Access::Read).await?;
        let now = self.0.clock.now();
        let data = json!({ "what": what });
        let mut entry = admin_audit(caller, "admin.read", data, &ClientMeta::default(), now);
        entry.principal_id = about.or(entry.principal_id);
        let mut tx = self.begin().await?;
        self.0
            .stores
            .audit
            .append_audit(tx.as_mut(), &entry)
            .await?;
        self.commit(tx).await
    }

    /// Appends the audit row of an admin change to keys or roles.
    async fn audit_admin(
        &self,
        tx: &mut dyn sesame_core::Tx,
        caller: &Caller,
        event: &str,
        data: serde_json::Value,
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let entry = admin_audit(caller, event, data, meta, now);
        self.0.stores.audit.append_audit(tx, &entry).await?;
        Ok(())
    }
}

/// The audit row of an admin change that is about no principal's security
/// (keys, roles), naming its actor.
fn admin_audit(
    caller: &Caller,
    event: &str,
    mut data: serde_json::Value,
    meta: &ClientMeta,
    now: OffsetDateTime,
) -> AuditEntry {
    if let Some(fields) = data.as_object_mut() {
        fields.insert("actor".into(), json!(caller.actor()));
    }
    AuditEntry {
        id: Uuid::now_v7(),
        principal_id: caller.principal(),
        event: event.to_owned(),
        ip: meta.ip.clone(),
        user_agent: meta.user_agent.clone(),
        data,
        at: now,
    }
}

/// A new key and its stored record.
fn new_key(
    req: ApiKeyRequest,
    created_by: Option<PrincipalId>,
    now: OffsetDateTime,
) -> Result<(String, ApiKeyRecord), Error> {
    let new = NewApiKey::generate()?;
    let record = ApiKeyRecord {
        id: Uuid::now_v7(),
        key_id: new.key_id,
        secret_hash: new.secret_hash,
        name: req.name.trim().to_owned(),
        scopes: req.scopes,
        created_by,
        created_at: now,
        expires_at: req.expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    Ok((new.key, record))
}

/// A field error for each permission Sesame does not know.
fn unknown_permissions(field: &str, permissions: &[String]) -> Vec<FieldError> {
    permissions
        .iter()
        .enumerate()
        .filter(|(_, p)| !PERMISSIONS.contains(&p.as_str()))
        .map(|(i, _)| FieldError::new(format!("{field}[{i}]"), "unknown_permission"))
        .collect()
}

/// Role names: 1–64 lowercase letters, digits, `_`, `-` and `.`.
fn valid_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b))
}

/// The built-in role is the configuration's, not the API's.
fn builtin_untouched(name: &str) -> Result<(), Error> {
    if name == ADMIN_ROLE {
        return Err(Error::problem(
            ErrorCode::Forbidden,
            "The built-in admin role cannot be changed",
        ));
    }
    Ok(())
}
