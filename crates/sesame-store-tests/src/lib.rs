#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test support fails loudly
//! The storage contract. Each public `async fn` of the modules below states
//! what one store trait promises, through the trait alone (with a look behind
//! it, through [`TestDb`], only for tables no trait reads back). The
//! `contract` test binary runs every one of them on SQLite, on PostgreSQL with
//! both schemas in one database, and on PostgreSQL split across two
//! databases, each on a fresh database; a new backend passes when it passes
//! them all.

pub mod access;
pub mod codes;
pub mod credentials;
pub mod erasure;
pub mod federation;
pub mod identity;
pub mod import;
pub mod keys;
pub mod mfa;
pub mod outbox;
pub mod passkeys;
pub mod schema;
pub mod sessions;
pub mod upkeep;

use sesame_core::{CounterStore, Database, PrincipalId, SessionId, Tx};
use sesame_credentials::{
    AccessStore, AuditStore, ErasureStore, FederationStore, ImportStore, LoginAttemptStore,
    LoginMethod, LoginMethodStore, LoginType, MfaStore, PasskeyStore, PasswordStore, Principal,
    PrincipalStore, RefreshToken, RetentionStore, ServerSecretStore, Session, SessionStore,
    SigningKeyStore, VerificationCodeStore,
};
use sesame_events::{OutboxStore, WebhookStore};
use sesame_identity::ProfileStore;
use sesame_store_postgres::{PgSettings, PgStore, PgTarget};
use sesame_store_sqlite::SqliteStore;
pub use sesame_testdb::TestDb;
use sesame_testdb::{Postgres, postgres_available};
use std::sync::Arc;
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

/// Every store trait a backend implements.
pub trait Backend:
    Database
    + AccessStore
    + ErasureStore
    + PrincipalStore
    + LoginAttemptStore
    + LoginMethodStore
    + PasswordStore
    + SessionStore
    + VerificationCodeStore
    + RetentionStore
    + SigningKeyStore
    + MfaStore
    + ServerSecretStore
    + PasskeyStore
    + AuditStore
    + ImportStore
    + ProfileStore
    + CounterStore
    + OutboxStore
    + WebhookStore
    + FederationStore
    + 'static
{
}

impl<T> Backend for T where
    T: Database
        + AccessStore
        + ErasureStore
        + PrincipalStore
        + LoginAttemptStore
        + LoginMethodStore
        + PasswordStore
        + SessionStore
        + VerificationCodeStore
        + RetentionStore
        + SigningKeyStore
        + MfaStore
        + ServerSecretStore
        + PasskeyStore
        + AuditStore
        + ImportStore
        + ProfileStore
        + CounterStore
        + OutboxStore
        + WebhookStore
        + FederationStore
        + 'static
{
}

/// A fresh, migrated store, a view of its credentials tables for checks no
/// trait can make, and whatever keeps its database alive.
pub struct Harness<S> {
    /// The store under test.
    pub store: Arc<S>,
    /// The credentials side of its database.
    pub db: TestDb,
    keep: Keep,
}

enum Keep {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Databases(Vec<Postgres>),
}

impl<S> Harness<S> {
    /// Drops the databases it made.
    pub async fn finish(self) {
        self.db.close().await;
        if let Keep::Databases(databases) = self.keep {
            for db in databases {
                db.drop_now().await;
            }
        }
    }

    /// Whether the store is PostgreSQL (where locks are rows, not the file).
    pub fn is_postgres(&self) -> bool {
        matches!(self.db, TestDb::Postgres { .. })
    }
}

/// A fresh SQLite file.
pub async fn sqlite() -> Harness<SqliteStore> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("contract.db"))
        .await
        .unwrap();
    let server = store.clone();
    let db = TestDb::sqlite_with_outage(store.pool().clone(), move || server.close());
    Harness {
        store: Arc::new(store),
        db,
        keep: Keep::Dir(dir),
    }
}

/// A fresh PostgreSQL database holding both schemas; `None` (after a
/// message) when no server answers outside CI.
pub async fn postgres() -> Option<Harness<PgStore>> {
    if !postgres_available().await {
        return None;
    }
    let database = Postgres::create().await;
    let store = PgStore::connect(&PgTarget::Single(database.url()), &PgSettings::default())
        .await
        .unwrap();
    Some(migrated(store, vec![database]).await)
}

/// Two fresh PostgreSQL databases, one per domain (split mode).
pub async fn postgres_split() -> Option<Harness<PgStore>> {
    if !postgres_available().await {
        return None;
    }
    let identity = Postgres::create().await;
    let credentials = Postgres::create().await;
    let target = PgTarget::Split {
        identity: identity.url(),
        credentials: credentials.url(),
    };
    let store = PgStore::connect(&target, &PgSettings::default())
        .await
        .unwrap();
    Some(migrated(store, vec![identity, credentials]).await)
}

async fn migrated(store: PgStore, databases: Vec<Postgres>) -> Harness<PgStore> {
    store.migrate().await.unwrap();
    let db = TestDb::postgres(vec![store.credentials_pool().clone()]).await;
    Harness {
        store: Arc::new(store),
        db,
        keep: Keep::Databases(databases),
    }
}

/// The instant every contract starts from: fixed, and whole microseconds, so
/// that what comes back compares equal on every backend.
pub const T0: OffsetDateTime = datetime!(2026-06-01 12:00:00 UTC);

/// `T0` plus `seconds`.
pub fn at(seconds: i64) -> OffsetDateTime {
    T0 + time::Duration::seconds(seconds)
}

/// Runs `write` in a transaction of its own and commits it.
pub async fn committed<S: Backend, T>(store: &S, write: impl AsyncFnOnce(&mut dyn Tx) -> T) -> T {
    let mut tx = store.begin().await.unwrap();
    let out = write(tx.as_mut()).await;
    store.commit(tx).await.unwrap();
    out
}

/// A stored principal of kind `user`, created at `T0`.
pub async fn principal<S: Backend>(store: &S) -> Principal {
    let principal = Principal::new(PrincipalId::new(), "user", T0);
    committed(store, async |tx| {
        store.insert_principal(tx, &principal).await.unwrap()
    })
    .await;
    principal
}

/// An unverified login method of `owner`, not yet stored.
pub fn login(owner: PrincipalId, login_type: LoginType, identifier: &str) -> LoginMethod {
    LoginMethod {
        id: Uuid::now_v7(),
        principal_id: owner,
        login_type,
        identifier: identifier.into(),
        verified_at: None,
        created_at: T0,
        last_used_at: None,
    }
}

/// A password session of `principal` opened at `opened`, for a day; not stored.
pub fn session_of(principal: &Principal, opened: OffsetDateTime) -> Session {
    Session {
        id: SessionId::new(),
        principal_id: principal.id,
        principal_kind: principal.kind.clone(),
        aal: "aal1".into(),
        amr: vec!["pwd".into()],
        ip: None,
        user_agent: None,
        created_at: opened,
        last_seen_at: opened,
        expires_at: opened + time::Duration::days(1),
        revoked_at: None,
        revoke_reason: None,
        proven_at: opened,
    }
}

/// A refresh token of `session` whose hash is 32 times `hash`; not stored.
pub fn token(
    session: &Session,
    hash: u8,
    parent: Option<Uuid>,
    now: OffsetDateTime,
) -> RefreshToken {
    RefreshToken {
        secret_sealed: None,
        id: Uuid::now_v7(),
        session_id: session.id,
        token_hash: vec![hash; 32],
        parent_id: parent,
        used_at: None,
        created_at: now,
        expires_at: session.expires_at,
    }
}
