//! Every Sesame store trait on PostgreSQL. The identity domain lives in schema
//! `identity`, the credentials domain (and the outbox) in schema `credentials`.
//! Both may share one pool, or live behind two roles or two databases ("split
//! mode"), in which case a transaction holds one transaction per side.

mod backend;
mod import;
mod migrate;

use async_trait::async_trait;
use serde::Deserialize;
use sesame_core::{Database, StoreError, Tx};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use std::any::Any;
use std::str::FromStr;
use std::time::Duration;

pub use migrate::{Domain, RoleNames, SchemaState};

/// Connection settings shared by both pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PgSettings {
    /// Most connections per pool.
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// Longest a statement may run before the server cancels it, in milliseconds.
    pub statement_timeout_ms: u64,
    /// Longest a request waits for a free connection, in milliseconds.
    pub acquire_timeout_ms: u64,
}

impl Default for PgSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            min_connections: 1,
            statement_timeout_ms: 5_000,
            acquire_timeout_ms: 5_000,
        }
    }
}

/// Where the two domains live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgTarget {
    /// Both schemas through one connection string.
    Single(String),
    /// One connection string per domain: two roles, or two databases.
    Split {
        /// Reaches schema `identity`.
        identity: String,
        /// Reaches schema `credentials`.
        credentials: String,
    },
}

/// The PostgreSQL backend.
#[derive(Debug, Clone)]
pub struct PgStore {
    identity: PgPool,
    credentials: PgPool,
    split: bool,
}

/// A write transaction: on the credentials side, plus one on the identity side
/// in split mode, begun when first needed.
struct PgTx {
    credentials: Transaction<'static, Postgres>,
    identity: Option<Transaction<'static, Postgres>>,
}

impl Tx for PgTx {}

fn foreign() -> StoreError {
    StoreError::unavailable("transaction belongs to another backend")
}

fn pg_tx(tx: &mut dyn Tx) -> Result<&mut PgTx, StoreError> {
    let any: &mut dyn Any = tx;
    any.downcast_mut::<PgTx>().ok_or_else(foreign)
}

/// Maps a driver error to a store error without leaking driver text to clients.
pub(crate) fn map_err(err: sqlx::Error) -> StoreError {
    sesame_store_sql::store_error(err, |db| db.constraint().unwrap_or("unique").to_owned())
}

/// Parses a connection string and applies the settings. `search_path` names
/// the schemas the pool reaches, so that the shared statements name tables
/// without a schema.
fn options(
    url: &str,
    settings: &PgSettings,
    search_path: &str,
) -> Result<PgConnectOptions, StoreError> {
    let timeout = settings.statement_timeout_ms.to_string();
    Ok(PgConnectOptions::from_str(url)
        .map_err(map_err)?
        .application_name("sesame")
        .options([
            ("statement_timeout", timeout.as_str()),
            ("search_path", search_path),
            // "already exists, skipping" notices of idempotent DDL are not news.
            ("client_min_messages", "warning"),
        ]))
}

async fn pool(url: &str, settings: &PgSettings, search_path: &str) -> Result<PgPool, StoreError> {
    PgPoolOptions::new()
        .max_connections(settings.max_connections.max(1))
        .min_connections(settings.min_connections.min(settings.max_connections))
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        // A ping per checkout doubles the round trips of every short query. A
        // connection that broke is closed by the driver on its first error, and
        // none is kept longer than `max_lifetime`.
        .test_before_acquire(false)
        .max_lifetime(Duration::from_secs(30 * 60))
        .idle_timeout(Duration::from_secs(10 * 60))
        .connect_with(options(url, settings, search_path)?)
        .await
        .map_err(map_err)
}

impl PgStore {
    /// Connects; applies nothing (see [`PgStore::migrate`] and [`PgStore::schema_state`]).
    pub async fn connect(target: &PgTarget, settings: &PgSettings) -> Result<Self, StoreError> {
        match target {
            PgTarget::Single(url) => {
                let pool = pool(url, settings, "credentials,identity").await?;
                Ok(Self {
                    identity: pool.clone(),
                    credentials: pool,
                    split: false,
                })
            }
            PgTarget::Split {
                identity,
                credentials,
            } => Ok(Self {
                identity: pool(identity, settings, "identity").await?,
                credentials: pool(credentials, settings, "credentials").await?,
                split: true,
            }),
        }
    }

    /// The pool that reaches schema `identity`.
    pub fn identity_pool(&self) -> &PgPool {
        &self.identity
    }

    /// The pool that reaches schema `credentials`.
    pub fn credentials_pool(&self) -> &PgPool {
        &self.credentials
    }

    /// Whether the domains are reached through two connection strings.
    pub fn is_split(&self) -> bool {
        self.split
    }

    /// The identity-side connection inside `tx`, beginning that side's
    /// transaction in split mode.
    async fn identity_side<'t>(
        &self,
        tx: &'t mut dyn Tx,
    ) -> Result<&'t mut PgConnection, StoreError> {
        let tx = pg_tx(tx)?;
        if !self.split {
            return Ok(&mut *tx.credentials);
        }
        if tx.identity.is_none() {
            tx.identity = Some(self.identity.begin().await.map_err(map_err)?);
        }
        match tx.identity.as_mut() {
            Some(t) => Ok(&mut **t),
            None => Err(foreign()),
        }
    }
}

#[async_trait]
impl Database for PgStore {
    async fn begin(&self) -> Result<Box<dyn Tx>, StoreError> {
        let credentials = self.credentials.begin().await.map_err(map_err)?;
        Ok(Box::new(PgTx {
            credentials,
            identity: None,
        }))
    }

    /// In split mode the identity side commits first: if the process dies
    /// between the two commits, what is left is a profile that no principal,
    /// login method or event refers to, never a principal without a profile.
    async fn commit(&self, tx: Box<dyn Tx>) -> Result<(), StoreError> {
        let any: Box<dyn Any> = tx;
        let tx = any.downcast::<PgTx>().map_err(|_| foreign())?;
        let PgTx {
            credentials,
            identity,
        } = *tx;
        if let Some(identity) = identity {
            identity.commit().await.map_err(map_err)?;
        }
        credentials.commit().await.map_err(map_err)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        for pool in [&self.credentials, &self.identity] {
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }
}
