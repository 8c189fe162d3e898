//! `PrincipalStore`, `LoginAttemptStore`, `LoginMethodStore` and `PasswordStore`.

use crate::{Backend, Harness, T0, at, committed, login, principal};
use sesame_core::{PrincipalId, StoreError};
use sesame_credentials::{
    CredentialSummary, LOGIN_IDENTIFIER_UNIQUE, LoginAttempt, LoginType, Principal,
};
use uuid::Uuid;

/// A principal reads back as written; an unknown one is `NotFound`.
pub async fn principals_read_back<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    assert_eq!(s.get_principal(p.id).await.unwrap(), p);
    let err = s.get_principal(PrincipalId::new()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

/// Principals list in id order from a cursor, filtered by kind and status.
pub async fn principals_are_listed_by_id_from_a_cursor<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let mut made = Vec::new();
    for i in 0..5 {
        let p = Principal::new(
            PrincipalId::new(),
            if i == 3 { "vendor" } else { "user" },
            T0,
        );
        committed(s, async |tx| s.insert_principal(tx, &p).await.unwrap()).await;
        made.push(p);
    }
    committed(s, async |tx| {
        s.set_principal_active(tx, made[1].id, false, T0)
            .await
            .unwrap()
    })
    .await;
    let ids = |ps: Vec<Principal>| ps.into_iter().map(|p| p.id).collect::<Vec<_>>();
    let all = ids(s.list_principals(None, None, None, 10).await.unwrap());
    assert_eq!(all, made.iter().map(|p| p.id).collect::<Vec<_>>());
    let page = ids(s
        .list_principals(None, None, Some(made[1].id), 2)
        .await
        .unwrap());
    assert_eq!(page, [made[2].id, made[3].id]);
    let vendors = ids(s
        .list_principals(Some("vendor"), None, None, 10)
        .await
        .unwrap());
    assert_eq!(vendors, [made[3].id]);
    let suspended = ids(s
        .list_principals(None, Some(false), None, 10)
        .await
        .unwrap());
    assert_eq!(suspended, [made[1].id]);
    let active_users = ids(s
        .list_principals(Some("user"), Some(true), Some(made[0].id), 10)
        .await
        .unwrap());
    assert_eq!(active_users, [made[2].id, made[4].id]);
}

/// Suspending and reactivating change the principal once each.
pub async fn principals_are_suspended_and_reactivated_once<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let (first, again) = committed(s, async |tx| {
        let first = s
            .set_principal_active(tx, p.id, false, at(5))
            .await
            .unwrap();
        (
            first,
            s.set_principal_active(tx, p.id, false, at(6))
                .await
                .unwrap(),
        )
    })
    .await;
    assert!(first && !again);
    let suspended = s.get_principal(p.id).await.unwrap();
    assert!(!suspended.is_active);
    assert_eq!(suspended.updated_at, at(5));
    let back = committed(s, async |tx| {
        s.set_principal_active(tx, p.id, true, at(7)).await.unwrap()
    })
    .await;
    assert!(back);
    assert!(s.get_principal(p.id).await.unwrap().is_active);
    let missing = committed(s, async |tx| {
        s.set_principal_active(tx, PrincipalId::new(), false, at(8))
            .await
            .unwrap()
    })
    .await;
    assert!(!missing);
}

/// The summary of a principal's credentials is what the separate reads say:
/// no login and no password at first, then every login oldest first (and only
/// its own), the password, and the time a reclaim removed it.
pub async fn credential_summaries_agree_with_the_separate_reads<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let other = principal(s).await;
    let empty = s.credential_summary(p.id).await.unwrap();
    assert_eq!(
        empty,
        CredentialSummary {
            logins: vec![],
            has_password: false,
            password_removed_at: None,
            mfa: Default::default(),
        }
    );
    let email = login(p.id, LoginType::Email, "summary@example.com");
    let name = login(p.id, LoginType::Username, "summary");
    committed(s, async |tx| {
        // Inserted newest first: the summary still lists the oldest first.
        s.insert_login_method(tx, &name).await.unwrap();
        s.insert_login_method(tx, &email).await.unwrap();
        let theirs = login(other.id, LoginType::Username, "someone-else");
        s.insert_login_method(tx, &theirs).await.unwrap();
        s.set_password(tx, p.id, "$argon2id$one", at(1))
            .await
            .unwrap();
    })
    .await;
    let full = s.credential_summary(p.id).await.unwrap();
    assert_eq!(full.logins, s.list_login_methods(p.id).await.unwrap());
    assert_eq!(
        full.logins.iter().map(|m| m.id).collect::<Vec<_>>(),
        [email.id, name.id]
    );
    assert!(full.has_password);
    assert_eq!(full.password_removed_at, None);

    committed(s, async |tx| {
        assert!(s.remove_password(tx, p.id, at(2)).await.unwrap());
    })
    .await;
    let reclaimed = s.credential_summary(p.id).await.unwrap();
    assert_eq!(
        (reclaimed.has_password, reclaimed.password_removed_at),
        (false, Some(at(2)))
    );
    assert_eq!(reclaimed.logins.len(), 2);

    let err = s.credential_summary(PrincipalId::new()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

/// Attempts are claimed against the count and lock that were read; a stale
/// read claims nothing; a sign-in or a released claim clears both, but only
/// while no other attempt came between.
pub async fn sign_in_attempts_are_claimed<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let first = s
        .claim_sign_in_attempt(p.id, 0, None, None, at(1))
        .await
        .unwrap()
        .expect("the first claim");
    // Someone who read the count before the first claim claims nothing.
    assert_eq!(
        s.claim_sign_in_attempt(p.id, 0, None, None, at(1))
            .await
            .unwrap(),
        None
    );
    let lock = at(600);
    let second = s
        .claim_sign_in_attempt(p.id, 1, None, Some(lock), at(2))
        .await
        .unwrap()
        .expect("the second claim");
    assert!(second > first);
    let now = s.get_principal(p.id).await.unwrap();
    assert_eq!((now.failed_attempts, now.locked_until), (2, Some(lock)));
    assert_eq!(now.updated_at, at(2));
    // A claim that saw no lock, or another one, is stale too.
    assert_eq!(
        s.claim_sign_in_attempt(p.id, 2, None, None, at(3))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.claim_sign_in_attempt(p.id, 2, Some(at(500)), None, at(3))
            .await
            .unwrap(),
        None
    );
    // Without a new lock, the one there stays.
    let third = s
        .claim_sign_in_attempt(p.id, 2, Some(lock), None, at(4))
        .await
        .unwrap()
        .expect("the third claim");
    assert_eq!(
        s.get_principal(p.id).await.unwrap().locked_until,
        Some(lock)
    );

    // A refusal noted meanwhile makes the claim stale: the sign-in writes nothing.
    committed(s, async |tx| {
        s.note_refused_attempt(tx, p.id).await.unwrap()
    })
    .await;
    let signed_in = committed(s, async |tx| {
        s.record_sign_in(tx, p.id, Some(third), at(5))
            .await
            .unwrap()
    })
    .await;
    assert!(!signed_in);
    assert_eq!(s.get_principal(p.id).await.unwrap().failed_attempts, 3);
    assert!(!s.release_sign_in_claim(p.id, third, at(5)).await.unwrap());

    // Without a claim, a sign-in clears the count and the lock.
    let signed_in = committed(s, async |tx| {
        s.record_sign_in(tx, p.id, None, at(6)).await.unwrap()
    })
    .await;
    assert!(signed_in);
    let now = s.get_principal(p.id).await.unwrap();
    assert_eq!(
        (now.failed_attempts, now.locked_until, now.last_login_at),
        (0, None, Some(at(6)))
    );

    // The latest claim is released; a sign-in on it then still counts.
    let fourth = s
        .claim_sign_in_attempt(p.id, 0, None, None, at(7))
        .await
        .unwrap()
        .expect("the fourth claim");
    assert!(s.release_sign_in_claim(p.id, fourth, at(8)).await.unwrap());
    let now = s.get_principal(p.id).await.unwrap();
    assert_eq!((now.failed_attempts, now.last_login_at), (0, Some(at(6))));
    let signed_in = committed(s, async |tx| {
        s.record_sign_in(tx, p.id, Some(fourth), at(9))
            .await
            .unwrap()
    })
    .await;
    assert!(signed_in);
    assert_eq!(
        s.get_principal(p.id).await.unwrap().last_login_at,
        Some(at(9))
    );
    // An unknown principal is never claimed.
    assert_eq!(
        s.claim_sign_in_attempt(PrincipalId::new(), 0, None, None, at(9))
            .await
            .unwrap(),
        None
    );
}

/// A sign-in recorded without a claim clears the count and the lock with
/// the transaction's commit, and not at all when it rolls back.
pub async fn a_sign_in_recorded_for_later_lands_with_the_commit<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let lock = at(600);
    s.claim_sign_in_attempt(p.id, 0, None, Some(lock), at(1))
        .await
        .unwrap()
        .expect("a claim");
    let mut tx = s.begin().await.unwrap();
    s.record_sign_in_later(tx.as_mut(), p.id, at(2))
        .await
        .unwrap();
    drop(tx);
    let now = s.get_principal(p.id).await.unwrap();
    assert_eq!(
        (now.failed_attempts, now.locked_until, now.last_login_at),
        (1, Some(lock), None)
    );
    committed(s, async |tx| {
        s.record_sign_in_later(tx, p.id, at(3)).await.unwrap()
    })
    .await;
    let now = s.get_principal(p.id).await.unwrap();
    assert_eq!(
        (now.failed_attempts, now.locked_until, now.last_login_at),
        (0, None, Some(at(3)))
    );
}

/// Of many claims racing on the same read, exactly one is counted.
pub async fn racing_claims_count_once<S: Backend>(h: &Harness<S>) {
    let p = principal(&*h.store).await;
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let s = h.store.clone();
            tokio::spawn(async move {
                s.claim_sign_in_attempt(p.id, 0, None, None, at(1))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut claimed = 0;
    for racer in racers {
        claimed += usize::from(racer.await.unwrap().is_some());
    }
    assert_eq!(claimed, 1);
    assert_eq!(
        h.store.get_principal(p.id).await.unwrap().failed_attempts,
        1
    );
}

/// An attempt is written with its transaction, and only then.
pub async fn login_attempts_are_appended<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let attempt = |success| LoginAttempt {
        id: Uuid::now_v7(),
        login_type: LoginType::Email,
        identifier: "a@example.com".into(),
        principal_id: Some(p.id),
        ip: Some("192.0.2.1".into()),
        success,
        reason: (!success).then(|| "bad_password".into()),
        at: T0,
    };
    let mut tx = s.begin().await.unwrap();
    s.record_attempt(tx.as_mut(), &attempt(false))
        .await
        .unwrap();
    drop(tx);
    assert_eq!(h.db.count("SELECT COUNT(*) FROM login_attempts").await, 0);
    committed(s, async |tx| {
        s.record_attempt(tx, &attempt(false)).await.unwrap();
        s.record_attempt(tx, &attempt(true)).await.unwrap();
    })
    .await;
    assert_eq!(h.db.count("SELECT COUNT(*) FROM login_attempts").await, 2);
    assert_eq!(
        h.db.count("SELECT COUNT(*) FROM login_attempts WHERE reason = 'bad_password'")
            .await,
        1
    );
}

/// A taken identifier is a conflict named after the unique index, whatever
/// the backend calls it; the same text under another type is another row.
pub async fn a_taken_identifier_is_a_named_conflict<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let (a, b) = (principal(s).await, principal(s).await);
    committed(s, async |tx| {
        s.insert_login_method(tx, &login(a.id, LoginType::Email, "taken@example.com"))
            .await
            .unwrap()
    })
    .await;
    let mut tx = s.begin().await.unwrap();
    let err = s
        .insert_login_method(
            tx.as_mut(),
            &login(b.id, LoginType::Email, "taken@example.com"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { constraint } if constraint == LOGIN_IDENTIFIER_UNIQUE),
        "{err:?}"
    );
    drop(tx);
    let found = s
        .find_login_method(LoginType::Email, "taken@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.principal_id, a.id);
    assert!(
        s.find_login_method(LoginType::Phone, "taken@example.com")
            .await
            .unwrap()
            .is_none()
    );
    committed(s, async |tx| {
        s.insert_login_method(tx, &login(b.id, LoginType::Username, "taken@example.com"))
            .await
            .unwrap()
    })
    .await;
}

/// Login methods list oldest first; verification keeps its first instant;
/// a touch notes the last use; a delete needs the owner.
pub async fn login_methods_are_listed_verified_touched_and_deleted<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let other = principal(s).await;
    let email = login(p.id, LoginType::Email, "one@example.com");
    let phone = login(p.id, LoginType::Phone, "+14155550100");
    committed(s, async |tx| {
        s.insert_login_method(tx, &email).await.unwrap();
        s.insert_login_method(tx, &phone).await.unwrap();
    })
    .await;
    assert_eq!(
        s.list_login_methods(p.id).await.unwrap(),
        vec![email.clone(), phone.clone()]
    );
    assert!(s.list_login_methods(other.id).await.unwrap().is_empty());

    committed(s, async |tx| {
        s.mark_login_verified(tx, email.id, at(10)).await.unwrap();
        s.mark_login_verified(tx, email.id, at(20)).await.unwrap();
        s.touch_login_method(tx, phone.id, at(30)).await.unwrap();
    })
    .await;
    let methods = s.list_login_methods(p.id).await.unwrap();
    assert_eq!(methods[0].verified_at, Some(at(10)));
    assert_eq!(methods[0].last_used_at, None);
    assert_eq!(methods[1].verified_at, None);
    assert_eq!(methods[1].last_used_at, Some(at(30)));
    assert_eq!(
        s.find_login_method(LoginType::Email, "one@example.com")
            .await
            .unwrap(),
        Some(methods[0].clone())
    );

    let deleted = committed(s, async |tx| {
        let theirs = s.delete_login_method(tx, other.id, email.id).await.unwrap();
        let unknown = s
            .delete_login_method(tx, p.id, Uuid::now_v7())
            .await
            .unwrap();
        let mine = s.delete_login_method(tx, p.id, email.id).await.unwrap();
        (theirs, unknown, mine)
    })
    .await;
    assert_eq!(deleted, (false, false, true));
    assert_eq!(
        s.list_login_methods(p.id).await.unwrap(),
        vec![methods[1].clone()]
    );
    assert!(
        s.find_login_method(LoginType::Email, "one@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

/// Changes to a principal's methods are serialised: a second reader for
/// update waits for the first transaction and sees what it left.
pub async fn login_method_changes_are_serialised<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let email = login(p.id, LoginType::Email, "one@example.com");
    let phone = login(p.id, LoginType::Phone, "+14155550100");
    committed(s, async |tx| {
        s.insert_login_method(tx, &email).await.unwrap();
        s.insert_login_method(tx, &phone).await.unwrap();
    })
    .await;
    let mut first = s.begin().await.unwrap();
    assert_eq!(
        s.list_login_methods_for_update(first.as_mut(), p.id)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        s.delete_login_method(first.as_mut(), p.id, email.id)
            .await
            .unwrap()
    );
    let store = h.store.clone();
    let second = tokio::spawn(async move {
        let mut tx = store.begin().await.unwrap();
        let seen = store
            .list_login_methods_for_update(tx.as_mut(), p.id)
            .await
            .unwrap();
        store.commit(tx).await.unwrap();
        seen
    });
    if h.is_postgres() {
        // The second transaction is blocked on the principal's row lock
        // before the first commits (SQLite has one writer: it cannot begin).
        let waiting = "SELECT COUNT(*) FROM pg_stat_activity
                       WHERE wait_event_type = 'Lock' AND datname = current_database()";
        let mut polls = 0;
        while h.db.count(waiting).await == 0 {
            polls += 1;
            assert!(polls < 2000, "the second reader never waited for the lock");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    s.commit(first).await.unwrap();
    assert_eq!(second.await.unwrap(), vec![phone]);
}

/// A password is set, replaced, read and removed; its history keeps every
/// hash, newest first, and removal notes when.
pub async fn passwords_are_set_replaced_and_removed<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    assert_eq!(s.get_password(p.id).await.unwrap(), None);
    committed(s, async |tx| {
        s.set_password(tx, p.id, "$argon2id$one", at(1))
            .await
            .unwrap()
    })
    .await;
    committed(s, async |tx| {
        s.set_password(tx, p.id, "$argon2id$two", at(2))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(
        s.get_password(p.id).await.unwrap().as_deref(),
        Some("$argon2id$two")
    );
    assert_eq!(
        s.password_history(p.id, 10).await.unwrap(),
        ["$argon2id$two", "$argon2id$one"]
    );
    assert_eq!(
        s.password_history(p.id, 1).await.unwrap(),
        ["$argon2id$two"]
    );

    let removed = committed(s, async |tx| {
        let first = s.remove_password(tx, p.id, at(3)).await.unwrap();
        let again = s.remove_password(tx, p.id, at(4)).await.unwrap();
        (first, again)
    })
    .await;
    assert_eq!(removed, (true, false));
    assert_eq!(s.get_password(p.id).await.unwrap(), None);
    let now = s.get_principal(p.id).await.unwrap();
    assert_eq!(now.password_removed_at, Some(at(3)));
    assert_eq!(s.password_history(p.id, 10).await.unwrap().len(), 2);
    // A rolled-back change leaves nothing.
    let mut tx = s.begin().await.unwrap();
    s.set_password(tx.as_mut(), p.id, "$argon2id$three", at(5))
        .await
        .unwrap();
    drop(tx);
    assert_eq!(s.get_password(p.id).await.unwrap(), None);
    assert_eq!(s.password_history(p.id, 10).await.unwrap().len(), 2);
}

/// A re-hash replaces the hash that was read, in the password and its
/// history, and nothing once the password changed.
pub async fn a_hash_upgrade_is_compare_and_set<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    committed(s, async |tx| {
        s.set_password(tx, p.id, "$bcrypt$old", at(1))
            .await
            .unwrap()
    })
    .await;
    let upgraded = committed(s, async |tx| {
        s.upgrade_hash(tx, p.id, "$bcrypt$old", "$argon2id$new", at(2))
            .await
            .unwrap()
    })
    .await;
    assert!(upgraded);
    assert_eq!(
        s.get_password(p.id).await.unwrap().as_deref(),
        Some("$argon2id$new")
    );
    assert_eq!(
        s.password_history(p.id, 10).await.unwrap(),
        ["$argon2id$new"]
    );
    let stale = committed(s, async |tx| {
        s.upgrade_hash(tx, p.id, "$bcrypt$old", "$argon2id$other", at(3))
            .await
            .unwrap()
    })
    .await;
    assert!(!stale);
    assert_eq!(
        s.get_password(p.id).await.unwrap().as_deref(),
        Some("$argon2id$new")
    );
}

/// Pruning keeps the newest hashes of one principal, in the order they were
/// set even when set at the same instant.
pub async fn history_pruning_keeps_the_newest<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let (p, other) = (principal(s).await, principal(s).await);
    committed(s, async |tx| {
        for n in 1..=5 {
            s.set_password(tx, p.id, &format!("$h${n}"), T0)
                .await
                .unwrap();
            s.set_password(tx, other.id, &format!("$o${n}"), T0)
                .await
                .unwrap();
        }
        s.prune_password_history(tx, p.id, 3).await.unwrap();
    })
    .await;
    assert_eq!(
        s.password_history(p.id, 10).await.unwrap(),
        ["$h$5", "$h$4", "$h$3"]
    );
    assert_eq!(s.password_history(other.id, 10).await.unwrap().len(), 5);
    assert_eq!(s.get_password(p.id).await.unwrap().as_deref(), Some("$h$5"));
}
