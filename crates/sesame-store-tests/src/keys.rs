//! `SigningKeyStore` and `AuditStore`.

use crate::{Backend, Harness, T0, at, committed, principal};
use sesame_credentials::{AuditEntry, MasterKey, Sealed, SigningKeyRecord};
use uuid::Uuid;

fn key(created: i64) -> SigningKeyRecord {
    SigningKeyRecord::generate(&MasterKey::from_bytes([7; 32]), at(created)).unwrap()
}

fn same(a: &SigningKeyRecord, b: &SigningKeyRecord) -> bool {
    (
        &a.kid,
        &a.alg,
        &a.private_key_sealed,
        &a.public_jwk,
        a.created_at,
        a.activated_at,
        a.retired_at,
    ) == (
        &b.kid,
        &b.alg,
        &b.private_key_sealed,
        &b.public_jwk,
        b.created_at,
        b.activated_at,
        b.retired_at,
    )
}

/// Keys list oldest first as written; one is retired, another resealed
/// under a new master key, and nothing else about them changes.
pub async fn keys_are_listed_retired_and_resealed<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    assert!(s.list_signing_keys().await.unwrap().is_empty());
    let mut older = key(1);
    older.activated_at = None;
    let newer = key(2);
    committed(s, async |tx| {
        s.insert_signing_key(tx, &newer).await.unwrap();
        s.insert_signing_key(tx, &older).await.unwrap();
    })
    .await;
    let listed = s.list_signing_keys().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(same(&listed[0], &older) && same(&listed[1], &newer));

    let resealed = Sealed {
        key_id: "next-master".into(),
        blob: vec![9; 72],
    };
    committed(s, async |tx| {
        s.retire_signing_key(tx, &older.kid, at(100)).await.unwrap();
        s.reseal_signing_key(tx, &newer.kid, &resealed)
            .await
            .unwrap();
    })
    .await;
    let listed = s.list_signing_keys().await.unwrap();
    let mut expect_older = older.clone();
    expect_older.retired_at = Some(at(100));
    let mut expect_newer = newer.clone();
    expect_newer.private_key_sealed = resealed;
    assert!(same(&listed[0], &expect_older), "{:?}", listed[0]);
    assert!(same(&listed[1], &expect_newer), "{:?}", listed[1]);
}

/// An audit entry is written with its transaction, and only then, with
/// its data as JSON.
pub async fn audit_entries_are_appended_with_their_transaction<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let entry = |event: &str| AuditEntry {
        id: Uuid::now_v7(),
        principal_id: Some(p.id),
        event: event.into(),
        ip: Some("198.51.100.7".into()),
        user_agent: None,
        data: serde_json::json!({"login_type": "email", "n": 1}),
        at: T0,
    };
    let mut tx = s.begin().await.unwrap();
    s.append_audit(tx.as_mut(), &entry("rolled.back"))
        .await
        .unwrap();
    drop(tx);
    committed(s, async |tx| {
        s.append_audit(tx, &entry("password.changed"))
            .await
            .unwrap();
        s.append_audit(
            tx,
            &AuditEntry {
                principal_id: None,
                ..entry("login.unknown")
            },
        )
        .await
        .unwrap();
    })
    .await;
    assert_eq!(h.db.count("SELECT COUNT(*) FROM audit_log").await, 2);
    assert_eq!(
        h.db.count("SELECT COUNT(*) FROM audit_log WHERE event = 'rolled.back'")
            .await,
        0
    );
    assert_eq!(
        h.db.count("SELECT COUNT(*) FROM audit_log WHERE principal_id IS NULL")
            .await,
        1
    );
    let data =
        h.db.text("SELECT CAST(data AS TEXT) FROM audit_log WHERE event = 'password.changed'")
            .await;
    let data: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(data, serde_json::json!({"login_type": "email", "n": 1}));
}
