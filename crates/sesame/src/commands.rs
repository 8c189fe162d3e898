//! The commands besides `serve`: `sesame migrate`, `sesame keys`,
//! `sesame admin` and `sesame import`, each against the configured database.

use crate::config::Config;
use crate::server::{Backend, StartError, load_master_keys, open_backend};
use sesame_credentials::{MasterKey, MasterKeys};
use sesame_store_postgres::{Domain, RoleNames};
use std::path::PathBuf;
use std::sync::Arc;

/// `sesame migrate`: creates or upgrades the schemas of the configured backend
/// and, given role names, creates the two least-privilege PostgreSQL roles.
/// Returns one line per schema saying where it stands.
pub async fn migrate(
    config: &Config,
    roles: Option<&RoleNames>,
) -> Result<Vec<String>, StartError> {
    let service = |e: sesame_core::StoreError| StartError::Service(e.to_string());
    match open_backend(config, true).await? {
        Backend::Sqlite(_) if roles.is_some() => Err(StartError::Config(
            "--create-roles needs PostgreSQL: the embedded file has no roles".into(),
        )),
        Backend::Sqlite(_) => Ok(vec!["sqlite: current".into()]),
        Backend::Postgres(store) => {
            let mut report = Vec::new();
            if let Some(roles) = roles {
                store.create_roles(roles).await.map_err(service)?;
                report.push(format!(
                    "roles: {} (schema identity), {} (schema credentials)",
                    roles.identity, roles.credentials
                ));
            }
            for domain in Domain::ALL {
                let state = store.schema_state(domain).await.map_err(service)?;
                report.push(format!("schema {}: {state:?}", domain.schema()));
            }
            Ok(report)
        }
    }
}

/// `sesame keys …`.
#[derive(Debug, Clone)]
pub enum KeysCommand {
    /// Every signing key and its state.
    List,
    /// Adds a key that signs after `publish_secs`.
    Rotate {
        /// Seconds the new key is published before it signs.
        publish_secs: u64,
    },
    /// Re-seals every sealed secret under the master key in `new_key_file`.
    RotateMaster {
        /// File holding the new master key (64 hex digits).
        new_key_file: PathBuf,
    },
}

/// Runs a `sesame keys` command against the configured database; returns the
/// lines to print.
pub async fn keys(config: &Config, command: KeysCommand) -> Result<Vec<String>, StartError> {
    let service = |e: sesame_core::Error| StartError::Service(e.to_string());
    let stores = open_backend(config, false).await?.stores();
    let now = sesame_core::Clock::now(&sesame_core::SystemClock);
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    match command {
        KeysCommand::List => {
            let records = stores
                .signing_keys
                .list_signing_keys()
                .await
                .map_err(|e| StartError::Service(e.to_string()))?;
            Ok(records
                .iter()
                .map(|r| {
                    let state = match (r.activated_at, r.retired_at) {
                        (_, Some(at)) if at <= now => "retired",
                        (Some(at), _) if at > now => "published, not signing yet",
                        (Some(_), Some(_)) => "retiring: published, no longer signing",
                        (Some(_), None) => "signing",
                        (None, _) => "published",
                    };
                    format!(
                        "{} {state} (created {}, signs from {}, published until {}, sealed under master key {})",
                        r.kid,
                        rfc3339(r.created_at),
                        r.activated_at.map_or("-".into(), rfc3339),
                        r.retired_at.map_or("-".into(), rfc3339),
                        r.private_key_sealed.key_id,
                    )
                })
                .collect())
        }
        KeysCommand::Rotate { publish_secs } => {
            let master = load_master_keys(config)?;
            // Old tokens live for the access-token lifetime; instances notice a
            // change within `key_refresh_secs`.
            let keep_after = time::Duration::seconds(
                (config.access_token_ttl_secs + config.key_refresh_secs.max(1)) as i64,
            );
            let rotation = sesame_app::keys::rotate_signing_key(
                &stores,
                &master,
                now,
                time::Duration::seconds(publish_secs as i64),
                keep_after,
            )
            .await
            .map_err(service)?;
            let mut lines = vec![format!(
                "new key {}: published now, signs from {}",
                rotation.kid,
                rfc3339(rotation.activates_at)
            )];
            lines.extend(rotation.retiring.iter().map(|(kid, at)| {
                format!(
                    "key {kid}: stops signing then, published until {}",
                    rfc3339(*at)
                )
            }));
            Ok(lines)
        }
        KeysCommand::RotateMaster { new_key_file } => {
            let old = load_master_keys(config)?;
            let text = std::fs::read_to_string(&new_key_file).map_err(|source| StartError::Io {
                path: new_key_file.clone(),
                source,
            })?;
            let new = MasterKey::parse(&text)
                .map_err(|e| StartError::Config(format!("{}: {e}", new_key_file.display())))?;
            let mut previous = vec![old.current().clone()];
            for path in &config.previous_master_key_files {
                if let Ok(text) = std::fs::read_to_string(path)
                    && let Ok(key) = MasterKey::parse(&text)
                {
                    previous.push(key);
                }
            }
            let new_id = new.id().to_owned();
            let keys = MasterKeys::new(new, previous);
            let done = sesame_app::keys::reseal_secrets(&stores, &keys, now)
                .await
                .map_err(service)?;
            Ok(vec![
                format!(
                    "re-sealed {} signing key(s), {} server secret(s), {} TOTP seed(s), {} webhook secret(s), {} connection secret(s) and {} provider token set(s) under master key {new_id}",
                    done.signing_keys,
                    done.server_secrets,
                    done.totp_seeds,
                    done.webhook_secrets,
                    done.connection_secrets,
                    done.provider_tokens
                ),
                format!(
                    "next: set master_key_file = {} on every instance, and keep the old key in previous_master_key_files until all have restarted",
                    new_key_file.display()
                ),
            ])
        }
    }
}

/// A `sesame admin` command.
pub enum AdminCommand {
    /// List the roles and their permissions.
    ListRoles,
    /// Assign (or with `revoke`, take away) a role.
    AssignRole {
        /// The principal.
        user: String,
        /// The role.
        role: String,
        /// Take it away instead.
        revoke: bool,
    },
    /// Create a principal of any declared kind; print its id.
    CreateUser {
        /// A declared kind.
        kind: String,
        /// The login's type (`email`, `phone`, `username`).
        login_type: String,
        /// The login's identifier.
        identifier: String,
        /// Its password, if any.
        password: Option<String>,
        /// Roles to assign.
        roles: Vec<String>,
    },
    /// Create a service API key and print it (once).
    CreateApiKey {
        /// A name for people.
        name: String,
        /// Its permissions.
        scopes: Vec<String>,
        /// Days until it stops working; never when absent.
        expires_in_days: Option<u32>,
    },
}

/// Runs a `sesame admin` command against the configured database, as the
/// operator; returns the lines to print.
pub async fn admin(config: &Config, command: AdminCommand) -> Result<Vec<String>, StartError> {
    let service = |e: sesame_core::Error| StartError::Service(e.to_string());
    let backend = open_backend(config, false).await?;
    let stores = backend.stores();
    let now = sesame_core::Clock::now(&sesame_core::SystemClock);
    let operator = sesame_app::access::Caller::Operator;
    let meta = sesame_app::ClientMeta::default();
    let app = async || {
        crate::server::build_app(
            config,
            stores.clone(),
            load_master_keys(config)?,
            config.settings(&config.issuer(), matches!(backend, Backend::Postgres(_))),
            Arc::new(sesame_core::SystemClock),
            sesame_core::FailPoints::default(),
        )
        .await
    };
    match command {
        AdminCommand::ListRoles => {
            let roles = app().await?.list_roles(&operator).await.map_err(service)?;
            Ok(roles
                .into_iter()
                .map(|r| format!("{}: {}", r.name, r.permissions.join(" ")))
                .collect())
        }
        AdminCommand::AssignRole { user, role, revoke } => {
            let id = user
                .parse()
                .map(sesame_core::PrincipalId)
                .map_err(|_| StartError::Config(format!("{user} is not a principal id")))?;
            let app = app().await?;
            if revoke {
                app.revoke_role(&operator, id, &role, &meta).await
            } else {
                app.assign_role(&operator, id, &role, &meta).await
            }
            .map_err(service)?;
            let done = if revoke { "does not hold" } else { "holds" };
            Ok(vec![format!("{id} {done} the role {role}")])
        }
        AdminCommand::CreateUser {
            kind,
            login_type,
            identifier,
            password,
            roles,
        } => {
            let req = sesame_app::admin::NewUser {
                kind,
                login: sesame_credentials::LoginInput {
                    login_type,
                    identifier,
                },
                password,
                roles,
            };
            let id = app()
                .await?
                .create_user(&operator, req, &meta)
                .await
                .map_err(service)?;
            Ok(vec![id.to_string()])
        }
        AdminCommand::CreateApiKey {
            name,
            scopes,
            expires_in_days,
        } => {
            let req = sesame_app::admin::ApiKeyRequest {
                name,
                scopes,
                expires_at: expires_in_days.map(|d| now + time::Duration::days(i64::from(d))),
            };
            let created = sesame_app::admin::issue_api_key(&stores, &operator, req, &meta, now)
                .await
                .map_err(service)?;
            Ok(vec![
                created.key,
                format!(
                    "key id {} ({}), scopes {}: shown once, store it now",
                    created.view.key_id,
                    created.view.name,
                    created.view.scopes.join(" ")
                ),
            ])
        }
    }
}

/// `sesame import`: a wide table into the configured database.
pub async fn import(
    config: &Config,
    options: &crate::import::ImportOptions,
) -> Result<crate::import::Summary, StartError> {
    config.validate().map_err(StartError::Config)?;
    let backend = open_backend(config, false).await?;
    if let Backend::Sqlite(store) = &backend {
        store
            .prepare_bulk_load()
            .await
            .map_err(|e| StartError::Service(e.to_string()))?;
    }
    let stores = backend.stores();
    let summary = crate::import::run(&stores, &config.normalise(), options)
        .await
        .map_err(StartError::Service)?;
    if let Backend::Sqlite(store) = &backend {
        store
            .finish_bulk_load()
            .await
            .map_err(|e| StartError::Service(e.to_string()))?;
    }
    Ok(summary)
}

/// `sesame events …`.
#[derive(Debug, Clone)]
pub enum EventsCommand {
    /// Deliveries, newest event first.
    List {
        /// Only the failed ones (given up on, or their endpoint disabled).
        failed: bool,
        /// At most this many.
        limit: i64,
    },
    /// Makes failed deliveries pending again, due now, with the same event id.
    Retry {
        /// Those of this event; every failed one when `None`.
        event: Option<uuid::Uuid>,
    },
}

/// Runs a `sesame events` command against the configured database; returns
/// the lines to print (a listing is tab-separated, with a header).
pub async fn events(config: &Config, command: EventsCommand) -> Result<Vec<String>, StartError> {
    let service = |e: sesame_core::StoreError| StartError::Service(e.to_string());
    let stores = open_backend(config, false).await?.stores();
    let now = sesame_core::Clock::now(&sesame_core::SystemClock);
    match command {
        EventsCommand::List { failed, limit } => {
            let rows = stores
                .outbox
                .list_deliveries(failed, limit.max(1))
                .await
                .map_err(service)?;
            let mut lines = vec![
                "event_id\tsink\ttopic\tstatus\tattempts\tnext_attempt_at\tlast_error".to_owned(),
            ];
            lines.extend(rows.iter().map(|r| {
                let next = r
                    .next_attempt_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                format!(
                    "{}\t{}\t{}\t{}\t{}\t{next}\t{}",
                    r.event_id,
                    r.sink,
                    r.topic,
                    r.status.as_str(),
                    r.attempts,
                    r.last_error
                        .as_deref()
                        .unwrap_or("")
                        .replace(['\t', '\n'], " "),
                )
            }));
            Ok(lines)
        }
        EventsCommand::Retry { event } => {
            let n = stores
                .outbox
                .retry_failed(event, now)
                .await
                .map_err(service)?;
            if n == 0 && event.is_some() {
                return Err(StartError::Config(
                    "that event has no failed delivery".into(),
                ));
            }
            Ok(vec![format!("{n} failed delivery(ies) pending again")])
        }
    }
}
