//! `PasskeyStore`.

use crate::{Backend, Harness, T0, at, committed, login, principal};
use sesame_core::PrincipalId;
use sesame_credentials::{Ceremony, LoginType, PasskeyRecord, SecurityKeyRecord, SweepBefore};
use uuid::Uuid;

fn passkey(owner: PrincipalId, login_id: Uuid, counter: i64) -> PasskeyRecord {
    PasskeyRecord {
        login_id,
        principal_id: owner,
        name: "Laptop".into(),
        credential: serde_json::json!({"cred": {"counter": counter}}),
        counter,
        backup_eligible: true,
        backed_up: false,
        created_at: T0,
        last_used_at: None,
    }
}

fn ceremony(purpose: &str, owner: Option<PrincipalId>, hash: u8, expires: i64) -> Ceremony {
    Ceremony {
        id_hash: vec![hash; 32],
        purpose: purpose.into(),
        principal_id: owner,
        state: serde_json::json!({"challenge": hash}),
        created_at: T0,
        expires_at: at(expires),
    }
}

/// A passkey reads back with its login method, lists per owner oldest
/// first, is renamed only by its owner, records a use only by
/// compare-and-set on its counter, and goes with its login method.
pub async fn passkeys_are_stored_renamed_used_once_and_unbound<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let other = principal(s).await;
    let first = login(p.id, LoginType::Passkey, "cred-one");
    let second = login(p.id, LoginType::Passkey, "cred-two");
    let theirs = login(other.id, LoginType::Passkey, "cred-three");
    committed(s, async |tx| {
        for (m, counter) in [(&second, 0), (&first, 5), (&theirs, 0)] {
            s.insert_login_method(tx, m).await.unwrap();
            s.insert_passkey(tx, &passkey(m.principal_id, m.id, counter))
                .await
                .unwrap();
        }
    })
    .await;
    let listed = s.list_passkeys(p.id).await.unwrap();
    assert_eq!(
        listed,
        vec![passkey(p.id, first.id, 5), passkey(p.id, second.id, 0)]
    );
    assert_eq!(
        s.get_passkey(theirs.id).await.unwrap(),
        Some(passkey(other.id, theirs.id, 0))
    );
    assert_eq!(s.get_passkey(Uuid::now_v7()).await.unwrap(), None);

    assert!(s.rename_passkey(p.id, first.id, "Phone").await.unwrap());
    assert!(!s.rename_passkey(p.id, theirs.id, "Mine now").await.unwrap());
    assert_eq!(
        s.get_passkey(first.id).await.unwrap().unwrap().name,
        "Phone"
    );

    let mut used = passkey(p.id, first.id, 6);
    used.backed_up = true;
    let outcomes = committed(s, async |tx| {
        (
            s.record_passkey_use(tx, first.id, 5, &used, at(10))
                .await
                .unwrap(),
            s.record_passkey_use(tx, first.id, 5, &used, at(11))
                .await
                .unwrap(),
        )
    })
    .await;
    assert_eq!(outcomes, (true, false), "the second saw a stale counter");
    let stored = s.get_passkey(first.id).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.counter,
            stored.backed_up,
            stored.last_used_at,
            stored.credential
        ),
        (6, true, Some(at(10)), used.credential.clone())
    );

    committed(s, async |tx| {
        assert!(s.delete_login_method(tx, p.id, first.id).await.unwrap());
    })
    .await;
    assert_eq!(s.get_passkey(first.id).await.unwrap(), None);
    assert_eq!(s.list_passkeys(p.id).await.unwrap().len(), 1);
}

/// A ceremony is taken once, only for its purpose and principal and while
/// live; racing takes get it once; expired ones are swept.
pub async fn ceremonies_are_taken_once<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let register = ceremony("register", Some(p.id), 1, 300);
    let sign_in = ceremony("sign_in", None, 2, 300);
    let old = ceremony("sign_in", None, 3, 60);
    for c in [&register, &sign_in, &old] {
        s.insert_ceremony(c).await.unwrap();
    }
    let take = |hash: u8, purpose: &'static str, owner: Option<PrincipalId>, now: i64| async move {
        s.take_ceremony(&[hash; 32], purpose, owner, at(now))
            .await
            .unwrap()
    };
    assert_eq!(
        take(1, "sign_in", Some(p.id), 10).await,
        None,
        "another purpose"
    );
    assert_eq!(take(1, "register", None, 10).await, None, "no principal");
    assert_eq!(
        take(1, "register", Some(PrincipalId::new()), 10).await,
        None
    );
    assert_eq!(take(3, "sign_in", None, 61).await, None, "expired");
    assert_eq!(take(1, "register", Some(p.id), 10).await, Some(register));
    assert_eq!(take(1, "register", Some(p.id), 10).await, None, "taken");

    let racers: Vec<_> = (0..8)
        .map(|_| {
            let s = h.store.clone();
            tokio::spawn(async move {
                s.take_ceremony(&[2; 32], "sign_in", None, at(10))
                    .await
                    .unwrap()
                    .is_some()
            })
        })
        .collect();
    let mut taken = 0;
    for racer in racers {
        taken += usize::from(racer.await.unwrap());
    }
    assert_eq!(taken, 1);

    let swept = s
        .sweep(SweepBefore {
            expired_codes: at(100),
            used_refresh_tokens: T0,
            ended_sessions: T0,
            login_attempts: T0,
        })
        .await
        .unwrap();
    assert_eq!(swept.mfa_challenges, 1, "the expired ceremony");
    assert_eq!(
        h.db.count("SELECT COUNT(*) FROM webauthn_ceremonies").await,
        0
    );
}

/// Security keys list per owner oldest first, count toward the MFA summary,
/// record a use only by compare-and-set on the counter, and are removed
/// only by their owner.
pub async fn security_keys_are_counted_used_once_and_removed<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let other = principal(s).await;
    let key = |owner: PrincipalId, counter: i64| SecurityKeyRecord {
        id: Uuid::now_v7(),
        principal_id: owner,
        name: "YubiKey".into(),
        credential: serde_json::json!({"cred": {"counter": counter}}),
        counter,
        created_at: T0,
        last_used_at: None,
    };
    let (first, second, theirs) = (key(p.id, 3), key(p.id, 0), key(other.id, 0));
    committed(s, async |tx| {
        for k in [&first, &second, &theirs] {
            s.insert_security_key(tx, k).await.unwrap();
        }
    })
    .await;
    assert_eq!(
        s.list_security_keys(p.id).await.unwrap(),
        vec![first.clone(), second.clone()]
    );
    assert_eq!(s.mfa_summary(p.id).await.unwrap().security_keys, 2);
    assert!(s.mfa_summary(p.id).await.unwrap().enrolled());
    assert_eq!(
        s.credential_summary(p.id).await.unwrap().mfa.security_keys,
        2
    );

    let mut used = first.clone();
    used.counter = 4;
    let outcomes = committed(s, async |tx| {
        (
            s.record_security_key_use(tx, first.id, 3, &used, at(5))
                .await
                .unwrap(),
            s.record_security_key_use(tx, first.id, 3, &used, at(6))
                .await
                .unwrap(),
        )
    })
    .await;
    assert_eq!(outcomes, (true, false));
    let stored = &s.list_security_keys(p.id).await.unwrap()[0];
    assert_eq!((stored.counter, stored.last_used_at), (4, Some(at(5))));

    let removed = committed(s, async |tx| {
        (
            s.delete_security_key(tx, p.id, theirs.id).await.unwrap(),
            s.delete_security_key(tx, p.id, second.id).await.unwrap(),
            s.delete_security_key(tx, p.id, second.id).await.unwrap(),
        )
    })
    .await;
    assert_eq!(removed, (false, true, false));
    assert_eq!(s.mfa_summary(p.id).await.unwrap().security_keys, 1);
    assert_eq!(s.list_security_keys(other.id).await.unwrap().len(), 1);
}
