//! Storage conformance: the same scenarios against every backend, through the
//! store traits only. The backend comes from `SESAME_TEST_BACKEND` (SQLite by
//! default); each test gets a fresh database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code fails loudly

use sesame_core::{Database, PrincipalId, SessionId, StoreError};
use sesame_credentials::{
    LOGIN_IDENTIFIER_UNIQUE, LoginMethod, LoginMethodStore, LoginType, Principal, PrincipalStore,
    RefreshToken, Session, SessionStore,
};
use sesame_events::{Actor, Envelope, OutboxStore};
use sesame_store_postgres::{PgSettings, PgStore, PgTarget};
use sesame_store_sqlite::SqliteStore;
use sesame_tests::{Postgres, TestBackend};
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

/// Every trait a scenario may use.
trait Backend:
    Database + PrincipalStore + LoginMethodStore + SessionStore + OutboxStore + 'static
{
}
impl<T: Database + PrincipalStore + LoginMethodStore + SessionStore + OutboxStore + 'static> Backend
    for T
{
}

/// A fresh store of the configured backend, and what keeps it alive.
enum Fresh {
    Sqlite(Arc<SqliteStore>, tempfile::TempDir),
    Postgres(Arc<PgStore>, Postgres),
}

async fn fresh() -> Fresh {
    match TestBackend::from_env() {
        TestBackend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
            Fresh::Sqlite(Arc::new(store), dir)
        }
        TestBackend::Postgres => {
            let db = Postgres::create().await;
            let store = PgStore::connect(&PgTarget::Single(db.url()), &PgSettings::default())
                .await
                .unwrap();
            store.migrate().await.unwrap();
            Fresh::Postgres(Arc::new(store), db)
        }
    }
}

/// Runs `scenario` on a fresh store of the configured backend.
macro_rules! on_each_backend {
    ($scenario:ident) => {
        match fresh().await {
            Fresh::Sqlite(store, _dir) => $scenario(store).await,
            Fresh::Postgres(store, db) => {
                $scenario(store).await;
                db.drop_now().await;
            }
        }
    };
}

fn session_of(principal: &Principal, now: OffsetDateTime) -> Session {
    Session {
        id: SessionId::new(),
        principal_id: principal.id,
        principal_kind: "user".into(),
        aal: "aal1".into(),
        amr: vec!["pwd".into()],
        ip: None,
        user_agent: None,
        created_at: now,
        last_seen_at: now,
        expires_at: now + time::Duration::days(1),
        revoked_at: None,
        revoke_reason: None,
        proven_at: now,
    }
}

fn token(session: &Session, hash: u8, parent: Option<Uuid>, now: OffsetDateTime) -> RefreshToken {
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

async fn rotation<S: Backend>(store: Arc<S>) {
    let now = OffsetDateTime::now_utc();
    let principal = Principal::new(PrincipalId::new(), "user", now);
    let session = session_of(&principal, now);
    let first = token(&session, 1, None, now);
    let mut tx = store.begin().await.unwrap();
    store
        .insert_principal(tx.as_mut(), &principal)
        .await
        .unwrap();
    store.insert_session(tx.as_mut(), &session).await.unwrap();
    store
        .insert_refresh_token(tx.as_mut(), &first)
        .await
        .unwrap();
    store.commit(tx).await.unwrap();

    let second = token(&session, 2, Some(first.id), now);
    assert!(
        store
            .rotate_refresh_token(first.id, &second, now)
            .await
            .unwrap()
    );
    // A used token rotates no more, and writes nothing.
    let third = token(&session, 3, Some(first.id), now);
    assert!(
        !store
            .rotate_refresh_token(first.id, &third, now)
            .await
            .unwrap()
    );
    assert!(store.find_refresh_token(&[3; 32]).await.unwrap().is_none());
    let (found, in_session) = store.find_refresh_token(&[2; 32]).await.unwrap().unwrap();
    assert_eq!(found.parent_id, Some(first.id));
    assert_eq!(in_session.id, session.id);
    let (used, _) = store.find_refresh_token(&[1; 32]).await.unwrap().unwrap();
    assert!(used.used_at.is_some());
    // A failed statement (duplicate hash) leaves the store usable.
    let duplicate = token(&session, 2, None, now);
    assert!(
        store
            .rotate_refresh_token(second.id, &duplicate, now)
            .await
            .is_err()
    );
    let fourth = token(&session, 4, Some(second.id), now);
    assert!(
        store
            .rotate_refresh_token(second.id, &fourth, now)
            .await
            .unwrap()
    );
    // Of twenty rotations of one token at once exactly one wins; independent
    // ones all succeed.
    let racers: Vec<_> = (0..20u8)
        .map(|i| {
            let store = store.clone();
            let next = token(&session, 100 + i, Some(fourth.id), now);
            tokio::spawn(async move {
                store
                    .rotate_refresh_token(fourth.id, &next, now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut wins = 0;
    for r in racers {
        wins += usize::from(r.await.unwrap());
    }
    assert_eq!(wins, 1);
    let independent: Vec<_> = (0..20u8)
        .map(|i| {
            let store = store.clone();
            let chain = token(&session, 200 + i, None, now);
            let next = token(&session, 220 + i, Some(chain.id), now);
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                store
                    .insert_refresh_token(tx.as_mut(), &chain)
                    .await
                    .unwrap();
                store.commit(tx).await.unwrap();
                store
                    .rotate_refresh_token(chain.id, &next, now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for r in independent {
        assert!(r.await.unwrap());
    }
}

#[tokio::test]
async fn rotating_a_used_refresh_token_writes_nothing() {
    on_each_backend!(rotation);
}

async fn identifier_conflicts<S: Backend>(store: Arc<S>) {
    let now = OffsetDateTime::now_utc();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let principal = Principal::new(PrincipalId::new(), "user", now);
        let mut tx = store.begin().await.unwrap();
        store
            .insert_principal(tx.as_mut(), &principal)
            .await
            .unwrap();
        store.commit(tx).await.unwrap();
        ids.push(principal.id);
    }
    let method = |principal| LoginMethod {
        id: Uuid::now_v7(),
        principal_id: principal,
        login_type: LoginType::Email,
        identifier: "taken@example.com".into(),
        verified_at: None,
        created_at: now,
        last_used_at: None,
    };
    let mut tx = store.begin().await.unwrap();
    store
        .insert_login_method(tx.as_mut(), &method(ids[0]))
        .await
        .unwrap();
    store.commit(tx).await.unwrap();
    // The same identifier for someone else is a conflict named after the index,
    // whatever the backend calls it.
    let mut tx = store.begin().await.unwrap();
    let err = store
        .insert_login_method(tx.as_mut(), &method(ids[1]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { constraint } if constraint == LOGIN_IDENTIFIER_UNIQUE),
        "{err:?}"
    );
    drop(tx);
    // The same address as a phone would be another row: types do not collide.
    let found = store
        .find_login_method(LoginType::Email, "taken@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.principal_id, ids[0]);
    assert!(
        store
            .find_login_method(LoginType::Phone, "taken@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_taken_identifier_is_a_named_conflict() {
    on_each_backend!(identifier_conflicts);
}

async fn outbox_delivery<S: Backend>(store: Arc<S>) {
    let now = OffsetDateTime::now_utc();
    let principal = PrincipalId::new();
    let mut tx = store.begin().await.unwrap();
    let mut ids = Vec::new();
    for topic in ["identity.user.signed_up", "identity.user.signed_in"] {
        let env = Envelope::new(
            "sesame://test",
            topic,
            principal,
            Actor::principal(principal),
            serde_json::json!({"n": 1}),
            now,
        );
        ids.push(env.id);
        store.enqueue(tx.as_mut(), &env).await.unwrap();
    }
    // Nothing is visible before the commit.
    assert!(store.pending(10).await.unwrap().is_empty());
    store.commit(tx).await.unwrap();
    let pending = store.pending(10).await.unwrap();
    assert_eq!(pending.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
    assert_eq!(pending[0].payload["type"], "identity.user.signed_up");
    assert_eq!(pending[0].payload["subject"], principal.to_string());
    store.mark_failed(ids[1]).await.unwrap();
    store.mark_published(&ids[..1], now).await.unwrap();
    let left = store.pending(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].id, left[0].attempts), (ids[1], 1));
}

#[tokio::test]
async fn outbox_rows_appear_on_commit_and_leave_when_published() {
    on_each_backend!(outbox_delivery);
}
