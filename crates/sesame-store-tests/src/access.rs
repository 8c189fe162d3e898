//! `AccessStore`.

use crate::{Backend, Harness, T0, at, committed, principal};
use sesame_core::StoreError;
use sesame_credentials::{ApiKeyRecord, Role};
use uuid::Uuid;

fn role(name: &str, permissions: &[&str], when: i64) -> Role {
    Role {
        name: name.into(),
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        created_at: at(when),
        updated_at: at(when),
    }
}

fn key(key_id: &str, created: i64) -> ApiKeyRecord {
    ApiKeyRecord {
        id: Uuid::now_v7(),
        key_id: key_id.into(),
        secret_hash: vec![7; 32],
        name: format!("key {key_id}"),
        scopes: vec!["introspect".into(), "users:read".into()],
        created_by: None,
        created_at: at(created),
        expires_at: Some(at(3600)),
        last_used_at: None,
        revoked_at: None,
    }
}

/// A role is created, its permissions replaced (keeping its creation time),
/// assigned once however often it is assigned, listed per principal with its
/// permissions, revoked once, and deleted with its assignments; an unknown
/// role cannot be assigned.
pub async fn roles_are_assigned_once_and_go_with_their_role<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let other = principal(s).await;
    committed(s, async |tx| {
        s.put_role(tx, &role("support", &["users:read"], 0))
            .await
            .unwrap();
        s.put_role(tx, &role("auditor", &["audit:read"], 0))
            .await
            .unwrap();
    })
    .await;
    let replaced = committed(s, async |tx| {
        s.put_role(tx, &role("support", &["users:read", "sessions:revoke"], 10))
            .await
            .unwrap()
    })
    .await;
    let support = Role {
        created_at: T0,
        ..role("support", &["users:read", "sessions:revoke"], 10)
    };
    assert_eq!(
        replaced, support,
        "the stored role, with its first creation time"
    );
    assert_eq!(
        s.list_roles().await.unwrap(),
        vec![role("auditor", &["audit:read"], 0), support.clone()]
    );
    let (first, again) = committed(s, async |tx| {
        let first = s
            .assign_role(tx, p.id, "support", Some(other.id), at(20))
            .await
            .unwrap();
        let again = s
            .assign_role(tx, p.id, "support", None, at(21))
            .await
            .unwrap();
        s.assign_role(tx, p.id, "auditor", None, at(22))
            .await
            .unwrap();
        s.assign_role(tx, other.id, "auditor", None, at(22))
            .await
            .unwrap();
        (first, again)
    })
    .await;
    assert!(first && !again, "a second assignment was new");
    assert_eq!(
        s.roles_of(p.id).await.unwrap(),
        vec![role("auditor", &["audit:read"], 0), support.clone()]
    );
    let mut tx = s.begin().await.unwrap();
    let unknown = s
        .assign_role(tx.as_mut(), p.id, "nobody", None, at(23))
        .await;
    assert!(
        matches!(unknown, Err(StoreError::Conflict { .. })),
        "{unknown:?}"
    );
    drop(tx);
    let (revoked, again) = committed(s, async |tx| {
        let revoked = s.revoke_role(tx, p.id, "support").await.unwrap();
        (revoked, s.revoke_role(tx, p.id, "support").await.unwrap())
    })
    .await;
    assert!(revoked && !again);
    assert_eq!(
        s.roles_of(p.id).await.unwrap(),
        vec![role("auditor", &["audit:read"], 0)]
    );
    let deleted = committed(s, async |tx| s.delete_role(tx, "auditor").await.unwrap()).await;
    assert!(deleted);
    assert_eq!(s.roles_of(p.id).await.unwrap(), vec![]);
    assert_eq!(s.roles_of(other.id).await.unwrap(), vec![]);
    assert_eq!(s.list_roles().await.unwrap(), vec![support]);
}

/// A key reads back by its key id, lists newest first, is revoked once, and
/// records its last use at most once per period.
pub async fn api_keys_are_found_revoked_once_and_touched_sparingly<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let owner = principal(s).await;
    let older = key("olderkey", 0);
    let newer = ApiKeyRecord {
        created_by: Some(owner.id),
        expires_at: None,
        ..key("newerkey", 5)
    };
    committed(s, async |tx| {
        s.insert_api_key(tx, &older).await.unwrap();
        s.insert_api_key(tx, &newer).await.unwrap();
    })
    .await;
    assert_eq!(
        s.find_api_key("newerkey").await.unwrap(),
        Some(newer.clone())
    );
    assert_eq!(s.find_api_key("nokey").await.unwrap(), None);
    assert_eq!(
        s.list_api_keys().await.unwrap(),
        vec![newer.clone(), older.clone()]
    );
    let mut tx = s.begin().await.unwrap();
    let taken = s.insert_api_key(tx.as_mut(), &key("olderkey", 6)).await;
    assert!(
        matches!(taken, Err(StoreError::Conflict { .. })),
        "{taken:?}"
    );
    drop(tx);

    s.touch_api_key(older.id, at(100), at(40)).await.unwrap();
    s.touch_api_key(older.id, at(110), at(50)).await.unwrap();
    let used = s.find_api_key("olderkey").await.unwrap().unwrap();
    assert_eq!(
        used.last_used_at,
        Some(at(100)),
        "touched within its period"
    );
    s.touch_api_key(older.id, at(200), at(140)).await.unwrap();
    let used = s.find_api_key("olderkey").await.unwrap().unwrap();
    assert_eq!(used.last_used_at, Some(at(200)));

    let (first, again) = committed(s, async |tx| {
        let first = s.revoke_api_key(tx, older.id, at(300)).await.unwrap();
        (
            first,
            s.revoke_api_key(tx, older.id, at(301)).await.unwrap(),
        )
    })
    .await;
    assert!(first && !again);
    let revoked = s.find_api_key("olderkey").await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(at(300)));
    assert!(!revoked.is_usable(at(300)));
}
