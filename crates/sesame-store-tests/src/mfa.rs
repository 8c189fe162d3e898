//! `MfaStore` and `ServerSecretStore`, and the second-factor corners of
//! `PrincipalStore` (giving a claim back) and `SessionStore` (raising a
//! session in place).

use crate::{Backend, Harness, T0, at, committed, principal, session_of};
use sesame_core::PrincipalId;
use sesame_credentials::{LoginType, MfaChallenge, MfaSummary, Sealed, SweepBefore, TotpFactor};
use uuid::Uuid;

fn sealed(key_id: &str, byte: u8) -> Sealed {
    Sealed {
        key_id: key_id.into(),
        blob: vec![byte; 60],
    }
}

fn pending(owner: PrincipalId, byte: u8, made: i64) -> TotpFactor {
    TotpFactor {
        principal_id: owner,
        id: Uuid::now_v7(),
        secret: sealed("master-a", byte),
        confirmed_at: None,
        last_step: None,
        created_at: at(made),
    }
}

fn challenge(owner: PrincipalId, hash: u8, expires: i64) -> MfaChallenge {
    MfaChallenge {
        id_hash: vec![hash; 32],
        principal_id: owner,
        login_id: Uuid::now_v7(),
        login_type: LoginType::Email,
        identifier: "ada@example.com".into(),
        amr: vec!["pwd".into()],
        attempts: 0,
        created_at: T0,
        expires_at: at(expires),
        consumed_at: None,
    }
}

/// A pending factor reads back as written and is replaced by a new pending
/// one; only the pending one by its id is confirmed (with its step), and a
/// confirmed one is never replaced. The summary counts only confirmed ones.
pub async fn totp_factors_are_pending_until_confirmed<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    assert_eq!(s.get_totp(p.id).await.unwrap(), None);
    let first = pending(p.id, 1, 1);
    assert!(s.put_pending_totp(&first).await.unwrap());
    assert_eq!(s.get_totp(p.id).await.unwrap(), Some(first.clone()));
    let second = pending(p.id, 2, 2);
    assert!(s.put_pending_totp(&second).await.unwrap());
    assert_eq!(s.get_totp(p.id).await.unwrap(), Some(second.clone()));
    assert_eq!(s.mfa_summary(p.id).await.unwrap(), MfaSummary::default());

    let confirmed = committed(s, async |tx| {
        let stale = s.confirm_totp(tx, p.id, first.id, 7, at(3)).await.unwrap();
        let right = s.confirm_totp(tx, p.id, second.id, 7, at(3)).await.unwrap();
        let again = s.confirm_totp(tx, p.id, second.id, 8, at(4)).await.unwrap();
        (stale, right, again)
    })
    .await;
    assert_eq!(confirmed, (false, true, false));
    let stored = s.get_totp(p.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.confirmed_at, stored.last_step),
        (Some(at(3)), Some(7))
    );
    assert!(!s.put_pending_totp(&pending(p.id, 3, 5)).await.unwrap());
    assert_eq!(
        s.get_totp(p.id).await.unwrap().unwrap().secret,
        second.secret
    );
    assert!(s.mfa_summary(p.id).await.unwrap().totp);
    assert!(s.credential_summary(p.id).await.unwrap().mfa.totp);

    let removed = committed(s, async |tx| {
        (
            s.delete_totp(tx, p.id).await.unwrap(),
            s.delete_totp(tx, p.id).await.unwrap(),
        )
    })
    .await;
    assert_eq!(removed, (true, false));
    assert_eq!(s.get_totp(p.id).await.unwrap(), None);
}

/// A time step is accepted only when it is later than every step accepted
/// before (the confirming one included), and never on a pending factor.
pub async fn totp_steps_are_accepted_once_and_in_order<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let factor = pending(p.id, 1, 1);
    s.put_pending_totp(&factor).await.unwrap();
    let accept = |step| async move {
        committed(s, async |tx| {
            s.accept_totp_step(tx, p.id, step).await.unwrap()
        })
        .await
    };
    assert!(!accept(10).await, "a pending factor accepts nothing");
    committed(s, async |tx| {
        assert!(
            s.confirm_totp(tx, p.id, factor.id, 10, at(2))
                .await
                .unwrap()
        );
    })
    .await;
    assert!(!accept(10).await, "the confirming step is used");
    assert!(!accept(9).await, "an earlier step is refused");
    assert!(accept(11).await);
    assert!(!accept(11).await);
    assert!(accept(13).await);
    assert!(!accept(12).await);
    assert_eq!(s.get_totp(p.id).await.unwrap().unwrap().last_step, Some(13));
}

/// One step offered by many at the same instant is accepted once.
pub async fn racing_totp_steps_accept_once<S: Backend>(h: &Harness<S>) {
    let p = principal(&*h.store).await;
    let factor = pending(p.id, 1, 1);
    h.store.put_pending_totp(&factor).await.unwrap();
    committed(&*h.store, async |tx| {
        h.store
            .confirm_totp(tx, p.id, factor.id, 1, at(2))
            .await
            .unwrap()
    })
    .await;
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let s = h.store.clone();
            tokio::spawn(async move {
                let mut tx = s.begin().await.unwrap();
                let accepted = s.accept_totp_step(tx.as_mut(), p.id, 5).await.unwrap();
                s.commit(tx).await.unwrap();
                accepted
            })
        })
        .collect();
    let mut accepted = 0;
    for racer in racers {
        accepted += usize::from(racer.await.unwrap());
    }
    assert_eq!(accepted, 1);
}

/// Backup codes are replaced as a set, each used once, and counted while
/// unused; many using one code at once use it once.
pub async fn backup_codes_are_replaced_and_used_once<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let other = principal(s).await;
    let old: Vec<Vec<u8>> = (1..=3).map(|b| vec![b; 32]).collect();
    committed(s, async |tx| {
        s.replace_backup_codes(tx, p.id, &old, at(1)).await.unwrap();
        s.replace_backup_codes(tx, other.id, &old, at(1))
            .await
            .unwrap();
    })
    .await;
    assert_eq!(s.mfa_summary(p.id).await.unwrap().backup_codes_left, 3);
    let used = committed(s, async |tx| {
        (
            s.use_backup_code(tx, p.id, &old[0], at(2)).await.unwrap(),
            s.use_backup_code(tx, p.id, &old[0], at(3)).await.unwrap(),
            s.use_backup_code(tx, p.id, &[9; 32], at(3)).await.unwrap(),
        )
    })
    .await;
    assert_eq!(used, (true, false, false));
    assert_eq!(s.mfa_summary(p.id).await.unwrap().backup_codes_left, 2);
    assert_eq!(
        s.credential_summary(p.id)
            .await
            .unwrap()
            .mfa
            .backup_codes_left,
        2
    );
    assert_eq!(s.mfa_summary(other.id).await.unwrap().backup_codes_left, 3);

    let new: Vec<Vec<u8>> = (4..=5).map(|b| vec![b; 32]).collect();
    committed(s, async |tx| {
        s.replace_backup_codes(tx, p.id, &new, at(4)).await.unwrap()
    })
    .await;
    assert_eq!(s.mfa_summary(p.id).await.unwrap().backup_codes_left, 2);
    let old_again = committed(s, async |tx| {
        s.use_backup_code(tx, p.id, &old[1], at(5)).await.unwrap()
    })
    .await;
    assert!(!old_again, "replaced codes are gone");

    let racers: Vec<_> = (0..10)
        .map(|_| {
            let s = h.store.clone();
            let code = new[0].clone();
            tokio::spawn(async move {
                let mut tx = s.begin().await.unwrap();
                let used = s
                    .use_backup_code(tx.as_mut(), p.id, &code, at(6))
                    .await
                    .unwrap();
                s.commit(tx).await.unwrap();
                used
            })
        })
        .collect();
    let mut used = 0;
    for racer in racers {
        used += usize::from(racer.await.unwrap());
    }
    assert_eq!(used, 1);
    assert_eq!(s.mfa_summary(p.id).await.unwrap().backup_codes_left, 1);
}

/// A challenge gives up to its limit of tries, none once expired or used,
/// is used once, and is swept once expired; racing claims stop at the limit.
pub async fn mfa_challenges_are_claimed_to_the_limit_and_used_once<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let live = challenge(p.id, 1, 300);
    let raced = challenge(p.id, 2, 300);
    let old = challenge(p.id, 3, 60);
    committed(s, async |tx| {
        for c in [&live, &raced, &old] {
            s.insert_mfa_challenge(tx, c).await.unwrap();
        }
    })
    .await;
    // Found without a try being claimed, while live.
    assert_eq!(
        s.find_mfa_challenge(&live.id_hash, at(10)).await.unwrap(),
        Some(live.clone())
    );
    assert_eq!(
        s.find_mfa_challenge(&old.id_hash, at(61)).await.unwrap(),
        None
    );
    let first = s.claim_mfa_try(&live.id_hash, 5, at(10)).await.unwrap();
    let mut expected = live.clone();
    expected.attempts = 1;
    assert_eq!(first, Some(expected));
    assert!(
        s.claim_mfa_try(&old.id_hash, 5, at(61))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.claim_mfa_try(&[7; 32], 5, at(10))
            .await
            .unwrap()
            .is_none()
    );

    let racers: Vec<_> = (0..12)
        .map(|_| {
            let s = h.store.clone();
            let hash = raced.id_hash.clone();
            tokio::spawn(async move { s.claim_mfa_try(&hash, 5, at(10)).await.unwrap().is_some() })
        })
        .collect();
    let mut granted = 0;
    for racer in racers {
        granted += usize::from(racer.await.unwrap());
    }
    assert_eq!(granted, 5);

    let consumed = committed(s, async |tx| {
        (
            s.consume_mfa_challenge(tx, &live.id_hash, at(11))
                .await
                .unwrap(),
            s.consume_mfa_challenge(tx, &live.id_hash, at(12))
                .await
                .unwrap(),
        )
    })
    .await;
    assert_eq!(consumed, (true, false));
    assert!(
        s.claim_mfa_try(&live.id_hash, 5, at(13))
            .await
            .unwrap()
            .is_none()
    );

    let swept = s
        .sweep(SweepBefore {
            expired_codes: at(100),
            used_refresh_tokens: T0,
            ended_sessions: T0,
            login_attempts: T0,
        })
        .await
        .unwrap();
    assert_eq!(swept.mfa_challenges, 1);
    assert_eq!(
        h.db.count("SELECT COUNT(*) FROM mfa_challenges").await,
        2,
        "the live ones stay"
    );
}

/// Sealed seeds list for a master-key rotation and are resealed only from
/// the key they were read under; a server secret is made once (the first
/// writer wins), listed and resealed.
pub async fn seeds_and_server_secrets_are_resealed<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let q = principal(s).await;
    s.put_pending_totp(&pending(p.id, 1, 1)).await.unwrap();
    s.put_pending_totp(&pending(q.id, 2, 1)).await.unwrap();
    let mut seals = s.list_totp_seals().await.unwrap();
    seals.sort_by_key(|(id, _)| id.0);
    let mut expected = vec![(p.id, sealed("master-a", 1)), (q.id, sealed("master-a", 2))];
    expected.sort_by_key(|(id, _)| id.0);
    assert_eq!(seals, expected);
    committed(s, async |tx| {
        s.reseal_totp(tx, p.id, "master-a", &sealed("master-b", 3))
            .await
            .unwrap();
        // Read under another key: left alone.
        s.reseal_totp(tx, q.id, "master-z", &sealed("master-b", 4))
            .await
            .unwrap();
    })
    .await;
    assert_eq!(
        s.get_totp(p.id).await.unwrap().unwrap().secret,
        sealed("master-b", 3)
    );
    assert_eq!(
        s.get_totp(q.id).await.unwrap().unwrap().secret,
        sealed("master-a", 2)
    );

    assert!(s.list_server_secrets().await.unwrap().is_empty());
    let first = s
        .ensure_server_secret("backup-codes", &sealed("master-a", 5), at(1))
        .await
        .unwrap();
    let second = s
        .ensure_server_secret("backup-codes", &sealed("master-a", 6), at(2))
        .await
        .unwrap();
    assert_eq!(
        (first.clone(), second),
        (sealed("master-a", 5), sealed("master-a", 5))
    );
    committed(s, async |tx| {
        s.reseal_server_secret(tx, "backup-codes", &sealed("master-b", 7))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(
        s.list_server_secrets().await.unwrap(),
        vec![("backup-codes".to_owned(), sealed("master-b", 7))]
    );
}

/// A claim given back lowers the count by one and lifts the lock it set,
/// only while no other attempt came since; a session is raised in place
/// while it is active.
pub async fn claims_are_given_back_and_sessions_raised<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let first = s
        .claim_sign_in_attempt(p.id, 0, None, None, at(1))
        .await
        .unwrap()
        .unwrap();
    let lock = at(600);
    let second = s
        .claim_sign_in_attempt(p.id, 1, None, Some(lock), at(2))
        .await
        .unwrap()
        .unwrap();
    let stale = committed(s, async |tx| {
        s.give_back_sign_in_claim(tx, p.id, first, false, at(3))
            .await
            .unwrap()
    })
    .await;
    assert!(!stale, "another attempt came after the first");
    let given = committed(s, async |tx| {
        s.give_back_sign_in_claim(tx, p.id, second, true, at(3))
            .await
            .unwrap()
    })
    .await;
    assert!(given);
    let now = s.get_principal(p.id).await.unwrap();
    assert_eq!((now.failed_attempts, now.locked_until), (1, None));

    let session = session_of(&p, T0);
    let mut ended = session_of(&p, T0);
    committed(s, async |tx| {
        s.insert_session(tx, &session).await.unwrap();
        s.insert_session(tx, &ended).await.unwrap();
        s.revoke_session(tx, ended.id, "logout", at(1))
            .await
            .unwrap();
    })
    .await;
    ended.revoked_at = Some(at(1));
    let amr = vec!["pwd".to_owned(), "otp".to_owned()];
    let raised = committed(s, async |tx| {
        (
            s.upgrade_session(tx, session.id, "aal2", &amr, at(5))
                .await
                .unwrap(),
            s.upgrade_session(tx, ended.id, "aal2", &amr, at(5))
                .await
                .unwrap(),
        )
    })
    .await;
    assert_eq!(raised, (true, false));
    let read = s.get_session(session.id).await.unwrap();
    assert_eq!(
        (read.aal.as_str(), read.amr, read.proven_at),
        ("aal2", amr, at(5))
    );
    assert_eq!(s.get_session(ended.id).await.unwrap().aal, "aal1");
}
