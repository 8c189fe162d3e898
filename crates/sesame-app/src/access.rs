//! Who may do what. A role is a named set of `resource:action` permissions
//! (the built-in `admin` holds every one); authorization is by permission,
//! never by kind. Callers of the admin and service calls are a session of a
//! principal holding the permission (at `aal2` for writes) or a service API
//! key scoped with it. Introspection (RFC 7662) answers for access tokens.

use crate::{App, AuthContext};
use serde::{Deserialize, Serialize};
use sesame_core::{Error, ErrorCode, PrincipalId, Rate, StoreError};
use sesame_credentials::{ApiKeyRecord, Role, looks_like_api_key, parse_api_key};
use std::sync::Arc;
use time::Duration;
use uuid::Uuid;

/// The built-in role holding every permission.
pub const ADMIN_ROLE: &str = "admin";

/// Every permission Sesame checks.
pub const PERMISSIONS: &[&str] = &[
    "users:read",
    "users:create",
    "users:update",
    "users:suspend",
    "users:delete",
    "sessions:read",
    "sessions:revoke",
    "roles:assign",
    "roles:manage",
    "audit:read",
    "api_keys:manage",
    "introspect",
    "webhooks:manage",
    "connections:manage",
];

/// A key's last use is written at most this often.
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// A role declared in the configuration, created or updated at start.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoleSeed {
    /// The role's name.
    pub name: String,
    /// Its permissions.
    pub permissions: Vec<String>,
}

/// A kind of principal declared in the configuration: whether its profile
/// lives here (in the identity domain) or in another service under the same
/// id (credentials-only).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindSeed {
    /// The kind, as tokens carry it.
    pub name: String,
    /// Whether Sesame keeps its profile.
    #[serde(default)]
    pub profile: bool,
}

impl KindSeed {
    /// The kinds a deployment starts with: `user` with a profile; `vendor`,
    /// `admin` and `service` credentials-only.
    pub fn defaults() -> Vec<KindSeed> {
        [
            ("user", true),
            ("vendor", false),
            ("admin", false),
            ("service", false),
        ]
        .into_iter()
        .map(|(name, profile)| KindSeed {
            name: name.into(),
            profile,
        })
        .collect()
    }
}

/// Whoever calls an admin or service operation.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A signed-in principal.
    Session(AuthContext),
    /// A service API key.
    Key(ApiKeyRecord),
    /// The operator of this deployment, in process (the command line, tests):
    /// holds every permission. No network request is ever this caller.
    Operator,
}

impl Caller {
    /// The principal acting, when a session calls.
    pub fn principal(&self) -> Option<PrincipalId> {
        match self {
            Caller::Session(auth) => Some(auth.principal_id),
            Caller::Key(_) | Caller::Operator => None,
        }
    }

    /// The actor as events and audit rows name it.
    pub(crate) fn actor(&self) -> sesame_events::Actor {
        match self {
            Caller::Session(auth) => sesame_events::Actor {
                kind: "admin".into(),
                id: auth.principal_id.to_string(),
            },
            Caller::Key(key) => sesame_events::Actor {
                kind: "service".into(),
                id: key.key_id.clone(),
            },
            Caller::Operator => sesame_events::Actor {
                kind: "operator".into(),
                id: "sesame".into(),
            },
        }
    }
}

/// Whether an operation changes something (writes need `aal2` sessions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// `POST /v1/introspect`: the token to describe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectRequest {
    /// The access token.
    pub token: String,
    /// RFC 7662's hint; Sesame only knows access tokens, so it is ignored.
    pub token_type_hint: Option<String>,
}

/// An introspection answer: exactly `{"active": false}` for any token that
/// does not work now, whatever the reason.
#[derive(Debug, Serialize)]
pub struct Introspection {
    /// Whether the token works now.
    pub active: bool,
    /// What an active token stands for.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub token: Option<ActiveToken>,
}

/// What an active access token stands for.
#[derive(Debug, Serialize)]
pub struct ActiveToken {
    /// The principal.
    pub sub: Uuid,
    /// Its kind.
    pub kind: String,
    /// The session.
    pub session_id: Uuid,
    /// Its assurance level.
    pub aal: String,
    /// The roles the principal holds now.
    pub roles: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issue time, seconds since the epoch.
    pub iat: i64,
    /// Issuer.
    pub iss: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
}

impl App {
    /// Creates the built-in `admin` role and the configured ones, or brings
    /// their permissions up to date.
    pub(crate) async fn seed_roles(&self) -> Result<(), Error> {
        let now = self.0.clock.now();
        let mut seeds = vec![RoleSeed {
            name: ADMIN_ROLE.into(),
            permissions: PERMISSIONS.iter().map(|p| (*p).to_owned()).collect(),
        }];
        for seed in &self.0.settings.roles {
            if let Some(unknown) = seed
                .permissions
                .iter()
                .find(|p| !PERMISSIONS.contains(&p.as_str()))
            {
                return Err(Error::problem(
                    ErrorCode::ValidationFailed,
                    format!("role {} names an unknown permission {unknown}", seed.name),
                ));
            }
        }
        seeds.extend(self.0.settings.roles.iter().cloned());
        let mut tx = self.begin().await?;
        for seed in seeds {
            let role = Role {
                name: seed.name,
                permissions: seed.permissions,
                created_at: now,
                updated_at: now,
            };
            self.0.stores.access.put_role(tx.as_mut(), &role).await?;
        }
        self.commit(tx).await?;
        self.0.caches.roles.clear();
        Ok(())
    }

    /// The roles `principal` holds now, with their permissions.
    pub(crate) async fn roles_of(&self, principal: PrincipalId) -> Result<Arc<Vec<Role>>, Error> {
        let cache = &self.0.caches.roles;
        if let Some(roles) = cache.get(&principal) {
            return Ok(roles);
        }
        let ticket = cache.ticket();
        let roles = Arc::new(self.0.stores.access.roles_of(principal).await?);
        cache.fill(principal, roles.clone(), ticket);
        Ok(roles)
    }

    /// The names of the roles `principal` holds, for tokens.
    pub(crate) async fn role_names(&self, principal: PrincipalId) -> Result<Vec<String>, Error> {
        Ok(self
            .roles_of(principal)
            .await?
            .iter()
            .map(|r| r.name.clone())
            .collect())
    }

    /// The caller behind a bearer credential: a service API key (by its
    /// prefix) or an access token.
    pub async fn caller(&self, bearer: &str) -> Result<Caller, Error> {
        if looks_like_api_key(bearer) {
            self.authenticate_key(bearer).await.map(Caller::Key)
        } else {
            self.authenticate(bearer).await.map(Caller::Session)
        }
    }

    /// Checks a service API key: a mistyped one (checksum), an unknown one, a
    /// revoked or expired one and a wrong secret are all the same `401`.
    pub async fn authenticate_key(&self, text: &str) -> Result<ApiKeyRecord, Error> {
        let refused = || Error::problem(ErrorCode::InvalidToken, "The API key is not valid");
        let presented = parse_api_key(text).ok_or_else(refused)?;
        let cache = &self.0.caches.api_keys;
        let key = match cache.get(presented.key_id) {
            Some(key) => key,
            None => {
                let ticket = cache.ticket();
                let key = self
                    .0
                    .stores
                    .access
                    .find_api_key(presented.key_id)
                    .await?
                    .ok_or_else(refused)?;
                cache.fill(key.key_id.clone(), key.clone(), ticket);
                key
            }
        };
        let now = self.0.clock.now();
        if !key.is_usable(now) || !key.matches(presented.secret) {
            return Err(refused());
        }
        if key.last_used_at.is_none_or(|at| at < now - TOUCH_EVERY) {
            self.0
                .stores
                .access
                .touch_api_key(key.id, now, now - TOUCH_EVERY)
                .await?;
            cache.invalidate(&key.key_id);
        }
        Ok(key)
    }

    /// Refuses `caller` unless it holds `permission`: `403 forbidden`, or
    /// `403 mfa_required` for a write by a session below `aal2`.
    pub(crate) async fn require(
        &self,
        caller: &Caller,
        permission: &str,
        access: Access,
    ) -> Result<(), Error> {
        let forbidden = || {
            Error::problem(
                ErrorCode::Forbidden,
                format!("This needs the permission {permission}"),
            )
        };
        match caller {
            Caller::Operator => {}
            Caller::Key(key) => {
                if !key.scopes.iter().any(|s| s == permission) {
                    return Err(forbidden());
                }
            }
            Caller::Session(auth) => {
                let roles = self.roles_of(auth.principal_id).await?;
                let holds = roles
                    .iter()
                    .any(|r| r.name == ADMIN_ROLE || r.permissions.iter().any(|p| p == permission));
                if !holds {
                    return Err(forbidden());
                }
                if access == Access::Write && auth.aal != "aal2" {
                    return Err(Error::problem(
                        ErrorCode::MfaRequired,
                        "Admin changes need a session raised with a second factor",
                    ));
                }
            }
        }
        Ok(())
    }

    /// `POST /v1/introspect` for a caller holding the `introspect` scope.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn introspect(&self, caller: &Caller, token: &str) -> Result<Introspection, Error> {
        let Caller::Key(key) = caller else {
            return Err(Error::problem(
                ErrorCode::Forbidden,
                "Introspection is for service API keys",
            ));
        };
        self.require(caller, "introspect", Access::Read).await?;
        self.limit(
            &format!("introspect:key:{}", key.key_id),
            self.0.settings.rate_limits.per_api_key,
        )
        .await?;
        let (claims, _) = match self.check_access_token(token).await {
            Ok(checked) => checked,
            Err(Error::Problem {
                code: ErrorCode::InvalidToken,
                ..
            }) => {
                return Ok(Introspection {
                    active: false,
                    token: None,
                });
            }
            Err(e) => return Err(e),
        };
        let roles = self.role_names(PrincipalId(claims.sub)).await?;
        Ok(Introspection {
            active: true,
            token: Some(ActiveToken {
                sub: claims.sub,
                kind: claims.kind,
                session_id: claims.sid,
                aal: claims.aal,
                roles,
                exp: claims.exp,
                iat: claims.iat,
                iss: claims.iss,
                token_type: "Bearer",
            }),
        })
    }
}

/// The default rate of introspections per key.
pub(crate) fn default_key_rate() -> Rate {
    Rate::new(60_000, 60)
}

/// A store conflict on a role's foreign key: the role does not exist.
pub(crate) fn no_such_role(e: StoreError) -> Error {
    match e {
        StoreError::Conflict { .. } => Error::problem(ErrorCode::NotFound, "No such role"),
        other => other.into(),
    }
}
