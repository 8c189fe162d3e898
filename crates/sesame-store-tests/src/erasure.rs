//! `ErasureStore`.

use crate::{Backend, Harness, T0, at, committed, login, principal, session_of, token};
use sesame_core::PrincipalId;
use sesame_credentials::{AuditEntry, LoginAttempt, LoginType, Role};
use sesame_events::{Actor, Envelope};
use uuid::Uuid;

/// Counts rows of `table` about `id` (by `column`).
async fn rows<S: Backend>(h: &Harness<S>, table: &str, column: &str, id: Uuid) -> i64 {
    h.db.count(&format!(
        "SELECT COUNT(*) FROM {table} WHERE {column} = {}",
        h.db.uuid_literal(id)
    ))
    .await
}

/// Erasing a principal removes what it proved itself with and its sessions,
/// scrubs its audit rows, attempts and events, keeps a tombstone, and leaves
/// everyone else alone; a second erasure finds nothing.
pub async fn a_principal_is_erased_to_a_tombstone<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let other = principal(s).await;
    let mine = login(p.id, LoginType::Email, "gone@example.com");
    let theirs = login(other.id, LoginType::Email, "stays@example.com");
    let session = session_of(&p, T0);
    let kept = session_of(&other, T0);
    let attempt = |login: &sesame_credentials::LoginMethod| LoginAttempt {
        id: Uuid::now_v7(),
        login_type: login.login_type,
        identifier: login.identifier.clone(),
        principal_id: None,
        ip: Some("198.51.100.7".into()),
        success: false,
        reason: Some("bad_password".into()),
        at: T0,
    };
    let audit = |who: PrincipalId| AuditEntry {
        id: Uuid::now_v7(),
        principal_id: Some(who),
        event: "user.signed_in".into(),
        ip: Some("198.51.100.7".into()),
        user_agent: Some("agent".into()),
        data: serde_json::json!({"identifier": "gone@example.com"}),
        at: T0,
    };
    let event = |who: PrincipalId| {
        Envelope::new(
            "sesame://test",
            "identity.user.signed_up",
            who,
            Actor::principal(who),
            serde_json::json!({"identifier": "gone@example.com"}),
            T0,
        )
    };
    committed(s, async |tx| {
        for (n, m, sess) in [(1, &mine, &session), (2, &theirs, &kept)] {
            s.insert_login_method(tx, m).await.unwrap();
            s.set_password(tx, m.principal_id, "$argon2id$hash", T0)
                .await
                .unwrap();
            s.insert_session(tx, sess).await.unwrap();
            s.insert_refresh_token(tx, &token(sess, n, None, T0))
                .await
                .unwrap();
            s.record_attempt(tx, &attempt(m)).await.unwrap();
            s.append_audit(tx, &audit(m.principal_id)).await.unwrap();
            s.enqueue(tx, &event(m.principal_id)).await.unwrap();
        }
        let role = Role {
            name: "support".into(),
            permissions: vec!["users:read".into()],
            created_at: T0,
            updated_at: T0,
        };
        s.put_role(tx, &role).await.unwrap();
        s.assign_role(tx, p.id, "support", None, T0).await.unwrap();
        s.assign_role(tx, other.id, "support", None, T0)
            .await
            .unwrap();
    })
    .await;

    let erased = committed(s, async |tx| {
        s.erase_principal(tx, p.id, at(60)).await.unwrap()
    })
    .await;
    assert_eq!(erased, Some(vec![session.id]));
    let tombstone = s.get_principal(p.id).await.unwrap();
    assert_eq!(tombstone.deleted_at, Some(at(60)));
    assert!(!tombstone.is_active);
    for (table, column) in [
        ("login_methods", "principal_id"),
        ("passwords", "principal_id"),
        ("password_history", "principal_id"),
        ("sessions", "principal_id"),
        ("role_assignments", "principal_id"),
    ] {
        assert_eq!(rows(h, table, column, p.id.0).await, 0, "{table} kept rows");
        assert_eq!(
            rows(h, table, column, other.id.0).await,
            1,
            "{table} lost another's"
        );
    }
    assert_eq!(
        rows(h, "refresh_tokens", "session_id", session.id.0).await,
        0
    );
    assert_eq!(rows(h, "refresh_tokens", "session_id", kept.id.0).await, 1);
    assert_eq!(
        h.db.count("SELECT COUNT(*) FROM login_attempts WHERE identifier = 'gone@example.com'")
            .await,
        0
    );
    assert_eq!(h.db.count("SELECT COUNT(*) FROM login_attempts").await, 1);
    let audited = h
        .db
        .count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE principal_id = {} AND ip IS NULL AND user_agent IS NULL",
            h.db.uuid_literal(p.id.0)
        ))
        .await;
    assert_eq!(
        audited, 1,
        "the audit row is kept, without address or agent"
    );
    assert_eq!(
        h.db.count("SELECT COUNT(*) FROM audit_log WHERE ip IS NOT NULL")
            .await,
        1,
        "another's audit row keeps its address"
    );
    let events = crate::outbox::sent_envelopes(s).await;
    let data = |who: PrincipalId| {
        events
            .iter()
            .find(|e| e["subject"] == who.to_string())
            .unwrap()["data"]
            .clone()
    };
    assert_eq!(data(p.id), serde_json::json!({}));
    assert_eq!(
        data(other.id),
        serde_json::json!({"identifier": "gone@example.com"})
    );

    // The identifier is free at once; a second erasure finds nothing.
    let again = login(other.id, LoginType::Email, "gone@example.com");
    committed(s, async |tx| {
        s.insert_login_method(tx, &again).await.unwrap()
    })
    .await;
    let twice = committed(s, async |tx| {
        s.erase_principal(tx, p.id, at(61)).await.unwrap()
    })
    .await;
    assert_eq!(twice, None);
    let nobody = committed(s, async |tx| {
        s.erase_principal(tx, PrincipalId::new(), at(62))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(nobody, None);
}
