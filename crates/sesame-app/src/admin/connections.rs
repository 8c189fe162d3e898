//! `/v1/admin/connections`: enterprise identity providers (`oidc:<name>`,
//! `oauth:<name>`) added, changed and removed at run time, with no restart
//! and no migration: a connection is a row, its logins are login methods.
//! Presets (Google, Apple, …) and connections in the configuration file are
//! changed there. Client secrets are kept sealed and never shown.

use crate::access::{Access, Caller};
use crate::{App, ClientMeta};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sesame_core::{Error, ErrorCode, FieldError};
use sesame_credentials::StoredConnection;
use sesame_federation::{Connection, ConnectionSettings, Provider};
use time::OffsetDateTime;

/// `PUT /v1/admin/connections/{name}`: the settings and, beside them, the
/// client secret; a key it does not know is refused.
#[derive(Debug, Clone)]
pub struct ConnectionRequest {
    /// The client secret; an existing connection keeps its own when absent.
    pub client_secret: Option<String>,
    /// Everything else.
    pub settings: ConnectionSettings,
}

impl<'de> Deserialize<'de> for ConnectionRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let object = serde_json::Map::deserialize(d)?;
        let (taken, settings) = ConnectionSettings::read_beside(object, &["client_secret"])
            .map_err(D::Error::custom)?;
        let client_secret = match taken.into_iter().next().flatten() {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(_) => return Err(D::Error::custom("client_secret: a string")),
        };
        Ok(Self {
            client_secret,
            settings,
        })
    }
}

/// A connection as the API shows it: never its secret.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionView {
    /// Its name: the login type of its logins.
    pub name: String,
    /// The provider it follows.
    pub provider: Provider,
    /// Its settings.
    #[serde(flatten)]
    pub settings: ConnectionSettings,
    /// Whether a client secret is kept.
    pub has_client_secret: bool,
    /// Defined in the configuration file.
    pub from_config: bool,
}

impl ConnectionView {
    fn of(c: &Connection) -> Self {
        Self {
            name: c.name.clone(),
            provider: c.provider,
            settings: c.settings.clone(),
            has_client_secret: c.secret.is_some(),
            from_config: c.from_config,
        }
    }
}

fn not_found() -> Error {
    Error::problem(ErrorCode::NotFound, "No such connection")
}

fn from_config_refused() -> Error {
    Error::problem(
        ErrorCode::Forbidden,
        "This connection is defined in the configuration file: change it there",
    )
}

impl App {
    /// `GET /v1/admin/connections`: the configured ones, then the stored ones.
    pub async fn list_connections(&self, caller: &Caller) -> Result<Vec<ConnectionView>, Error> {
        self.admit_read(caller, "connections:manage", "connections", None)
            .await?;
        let mut all = Vec::new();
        for seed in &self.0.settings.federation.connections {
            all.push(ConnectionView::of(&self.connection(&seed.name).await?));
        }
        for stored in self.0.stores.federation.list_connections().await? {
            all.push(ConnectionView::of(&self.open_connection(&stored)?));
        }
        Ok(all)
    }

    /// The names of the connections that exist now: the config file's and
    /// the stored ones.
    pub(crate) async fn connection_names(&self) -> Result<Vec<String>, Error> {
        let configured = self.0.settings.federation.connections.iter();
        let stored = self.0.stores.federation.list_connections().await?;
        Ok(configured
            .map(|c| c.name.clone())
            .chain(stored.into_iter().map(|c| c.name))
            .collect())
    }

    fn configured(&self, name: &str) -> bool {
        self.0
            .settings
            .federation
            .connections
            .iter()
            .any(|c| c.name == name)
    }

    /// `PUT /v1/admin/connections/{name}`: creates or replaces an
    /// `oidc:<name>` or `oauth:<name>` connection; answers whether it was created.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn put_connection(
        &self,
        caller: &Caller,
        name: &str,
        req: ConnectionRequest,
        meta: &ClientMeta,
    ) -> Result<(bool, ConnectionView), Error> {
        self.require(caller, "connections:manage", Access::Write)
            .await?;
        if !matches!(
            Provider::of_name(name),
            Some(Provider::Oidc | Provider::Oauth2)
        ) {
            return Err(Error::validation(vec![FieldError::new(
                "name",
                "invalid_format",
            )]));
        }
        if self.configured(name) {
            return Err(from_config_refused());
        }
        let store = &self.0.stores.federation;
        let existing = store.get_connection(name).await?;
        let now = self.0.clock.now();
        let context = super::super::federation::connection_context(name);
        let sealed = match (&req.client_secret, &existing) {
            (Some(secret), _) => Some(
                self.0
                    .master
                    .current()
                    .seal(secret.as_bytes(), context.as_bytes())?,
            ),
            (None, Some(e)) => e.secret.clone(),
            (None, None) => None,
        };
        let secret = req
            .client_secret
            .clone()
            .map(SecretString::from)
            .or(match &sealed {
                Some(s) => Some(SecretString::from(
                    String::from_utf8(self.0.master.open(s, context.as_bytes())?)
                        .map_err(|e| Error::internal_from("connection secret", e))?,
                )),
                None => None,
            });
        let connection = Connection::new(name, req.settings.clone(), secret, false)
            .map_err(|(field, code)| Error::validation(vec![FieldError::new(field, code)]))?;
        let stored = StoredConnection {
            name: name.to_owned(),
            settings: serde_json::to_value(&req.settings)
                .map_err(|e| Error::internal_from("connection", e))?,
            secret: sealed,
            created_at: existing.as_ref().map_or(now, |e| e.created_at),
            updated_at: now,
        };
        let mut tx = self.begin().await?;
        store.put_connection(tx.as_mut(), &stored).await?;
        let data = json!({ "name": name, "issuer": req.settings.issuer });
        self.audit_admin(tx.as_mut(), caller, "connection.changed", data, meta, now)
            .await?;
        self.commit(tx).await?;
        Ok((existing.is_none(), ConnectionView::of(&connection)))
    }

    /// `DELETE /v1/admin/connections/{name}`: its logins stay (they sign in
    /// again if it comes back) but cannot be used meanwhile.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn delete_connection(
        &self,
        caller: &Caller,
        name: &str,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        self.require(caller, "connections:manage", Access::Write)
            .await?;
        if self.configured(name) {
            return Err(from_config_refused());
        }
        let now: OffsetDateTime = self.0.clock.now();
        let mut tx = self.begin().await?;
        if !self
            .0
            .stores
            .federation
            .delete_connection(tx.as_mut(), name)
            .await?
        {
            return Err(not_found());
        }
        self.audit_admin(
            tx.as_mut(),
            caller,
            "connection.deleted",
            json!({ "name": name }),
            meta,
            now,
        )
        .await?;
        self.commit(tx).await
    }
}
