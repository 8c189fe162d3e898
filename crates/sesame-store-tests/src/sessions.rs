//! `SessionStore`: sessions and their rotating refresh tokens.

use crate::{Backend, Harness, T0, at, committed, principal, session_of, token};
use sesame_core::{SessionId, StoreError};
use sesame_credentials::{Sealed, Session};

async fn stored<S: Backend>(s: &S, session: &Session) {
    committed(s, async |tx| s.insert_session(tx, session).await.unwrap()).await;
}

/// A session reads back as written; an unknown one is `NotFound`.
pub async fn sessions_read_back<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let mut session = session_of(&p, T0);
    session.amr = vec!["pwd".into(), "otp".into()];
    session.aal = "aal2".into();
    session.ip = Some("2001:db8::1".into());
    session.user_agent = Some("Mozilla/5.0 (X11) \u{1F600}".into());
    session.proven_at = at(5);
    stored(s, &session).await;
    assert_eq!(s.get_session(session.id).await.unwrap(), session);
    let err = s.get_session(SessionId::new()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

/// The active sessions of a principal, newest first, each last seen at its
/// newest refresh; revoked, expired and other people's sessions left out.
pub async fn active_sessions_are_listed_newest_first<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let (p, other) = (principal(s).await, principal(s).await);
    let oldest = session_of(&p, at(1));
    let revoked = session_of(&p, at(2));
    let mut expired = session_of(&p, at(3));
    expired.expires_at = at(50);
    let newest = session_of(&p, at(4));
    let theirs = session_of(&other, at(5));
    for session in [&oldest, &revoked, &expired, &newest, &theirs] {
        stored(s, session).await;
    }
    committed(s, async |tx| {
        assert!(
            s.revoke_session(tx, revoked.id, "logout", at(6))
                .await
                .unwrap()
        );
        s.insert_refresh_token(tx, &token(&oldest, 1, None, at(10)))
            .await
            .unwrap();
        s.insert_refresh_token(tx, &token(&oldest, 2, None, at(20)))
            .await
            .unwrap();
    })
    .await;
    let active = s.list_active_sessions(p.id, at(100)).await.unwrap();
    assert_eq!(
        active.iter().map(|x| x.id).collect::<Vec<_>>(),
        [newest.id, oldest.id]
    );
    assert_eq!(active[0].last_seen_at, newest.last_seen_at);
    assert_eq!(active[1].last_seen_at, at(20));
    // Before it expired, the expired one was active.
    assert_eq!(s.list_active_sessions(p.id, at(40)).await.unwrap().len(), 3);
}

/// "Sign out everywhere else" revokes all but the one kept, once, with the
/// reason given; without one kept it revokes all.
pub async fn revoke_all_but_one<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let (p, other) = (principal(s).await, principal(s).await);
    let sessions: Vec<_> = (0..3).map(|n| session_of(&p, at(n))).collect();
    let theirs = session_of(&other, T0);
    for session in sessions.iter().chain([&theirs]) {
        stored(s, session).await;
    }
    let keep = sessions[1].id;
    let mut revoked = committed(s, async |tx| {
        s.revoke_sessions_of(tx, p.id, Some(keep), "password_changed", at(10))
            .await
            .unwrap()
    })
    .await;
    revoked.sort_by_key(|id| id.0);
    assert_eq!(revoked, [sessions[0].id, sessions[2].id]);
    let gone = s.get_session(sessions[0].id).await.unwrap();
    assert_eq!(
        (gone.revoked_at, gone.revoke_reason.as_deref()),
        (Some(at(10)), Some("password_changed"))
    );
    assert_eq!(
        s.list_active_sessions(p.id, at(11)).await.unwrap()[0].id,
        keep
    );
    let rest = committed(s, async |tx| {
        s.revoke_sessions_of(tx, p.id, None, "admin", at(12))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(rest, [keep]);
    assert!(
        s.list_active_sessions(p.id, at(13))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.list_active_sessions(other.id, at(13))
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A session is revoked once; a revoked session cannot prove itself again.
pub async fn a_session_is_revoked_once<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let session = session_of(&p, T0);
    stored(s, &session).await;
    assert!(s.mark_session_proven(session.id, at(5)).await.unwrap());
    assert_eq!(s.get_session(session.id).await.unwrap().proven_at, at(5));
    let results = committed(s, async |tx| {
        let first = s
            .revoke_session(tx, session.id, "logout", at(6))
            .await
            .unwrap();
        let again = s
            .revoke_session(tx, session.id, "other", at(7))
            .await
            .unwrap();
        (first, again)
    })
    .await;
    assert_eq!(results, (true, false));
    let revoked = s.get_session(session.id).await.unwrap();
    assert_eq!(
        (revoked.revoked_at, revoked.revoke_reason.as_deref()),
        (Some(at(6)), Some("logout"))
    );
    assert!(!s.mark_session_proven(session.id, at(8)).await.unwrap());
    assert!(
        !s.mark_session_proven(SessionId::new(), at(8))
            .await
            .unwrap()
    );
    assert_eq!(s.get_session(session.id).await.unwrap().proven_at, at(5));
}

/// Beyond the newest `keep` active sessions, the oldest are revoked for the
/// session limit.
pub async fn sessions_beyond_the_limit_are_revoked_oldest_first<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let sessions: Vec<_> = (0..4).map(|n| session_of(&p, at(n))).collect();
    for session in &sessions {
        stored(s, session).await;
    }
    let mut revoked = committed(s, async |tx| {
        s.revoke_sessions_beyond(tx, p.id, 2, at(10)).await.unwrap()
    })
    .await;
    revoked.sort_by_key(|id| id.0);
    assert_eq!(revoked, [sessions[0].id, sessions[1].id]);
    assert_eq!(
        s.get_session(sessions[0].id)
            .await
            .unwrap()
            .revoke_reason
            .as_deref(),
        Some("session_limit")
    );
    let again = committed(s, async |tx| {
        s.revoke_sessions_beyond(tx, p.id, 2, at(11)).await.unwrap()
    })
    .await;
    assert!(again.is_empty());
    // Revoked sessions no longer count; another principal's are not touched.
    let newest = session_of(&p, at(12));
    stored(s, &newest).await;
    let other = principal(s).await;
    let theirs = session_of(&other, at(1));
    stored(s, &theirs).await;
    let revoked = committed(s, async |tx| {
        s.revoke_sessions_beyond(tx, p.id, 2, at(13)).await.unwrap()
    })
    .await;
    assert_eq!(revoked, [sessions[2].id]);
    let mut revoked = committed(s, async |tx| {
        s.revoke_sessions_beyond(tx, p.id, 0, at(14)).await.unwrap()
    })
    .await;
    revoked.sort_by_key(|id| id.0);
    assert_eq!(revoked, [sessions[3].id, newest.id]);
    assert_eq!(s.get_session(theirs.id).await.unwrap().revoked_at, None);
}

/// Writes a backend may hold for the commit (a session, an audit row) are
/// seen by the transaction's next statement, stored by its commit, and gone
/// with its rollback.
pub async fn writes_held_for_the_commit_are_seen_in_it_and_rolled_back_with_it<S: Backend>(
    h: &Harness<S>,
) {
    let s = &*h.store;
    let p = principal(s).await;
    let older = session_of(&p, at(1));
    stored(s, &older).await;
    // Rolled back: the new session counted against the limit, then nothing kept.
    let newer = session_of(&p, at(2));
    let mut tx = s.begin().await.unwrap();
    s.insert_session(tx.as_mut(), &newer).await.unwrap();
    let revoked = s
        .revoke_sessions_beyond(tx.as_mut(), p.id, 1, at(3))
        .await
        .unwrap();
    assert_eq!(revoked, [older.id]);
    drop(tx);
    assert!(matches!(
        s.get_session(newer.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.get_session(older.id).await.unwrap().revoked_at, None);
    // Committed: held writes and the statements between them, in order.
    committed(s, async |tx| {
        s.insert_session(tx, &newer).await.unwrap();
        let revoked = s.revoke_sessions_beyond(tx, p.id, 1, at(3)).await.unwrap();
        assert_eq!(revoked, [older.id]);
        s.insert_refresh_token(tx, &token(&newer, 9, None, at(3)))
            .await
            .unwrap();
    })
    .await;
    assert_eq!(s.get_session(newer.id).await.unwrap().revoked_at, None);
    assert_eq!(
        s.get_session(older.id).await.unwrap().revoked_at,
        Some(at(3))
    );
    let found = s.find_refresh_token(&[9; 32]).await.unwrap();
    assert_eq!(found.map(|(t, _)| t.session_id), Some(newer.id));
}

/// A refresh token is found by its hash with its session; its successor
/// by its parent, with the sealed secret it was stored with.
pub async fn refresh_tokens_are_found_by_hash_and_parent<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    let session = session_of(&p, T0);
    stored(s, &session).await;
    let first = token(&session, 7, None, T0);
    committed(s, async |tx| {
        s.insert_refresh_token(tx, &first).await.unwrap()
    })
    .await;
    let (found, its_session) = s.find_refresh_token(&[7; 32]).await.unwrap().unwrap();
    assert_eq!((found, its_session), (first.clone(), session.clone()));
    assert!(s.find_refresh_token(&[8; 32]).await.unwrap().is_none());
    assert!(s.find_successor(first.id).await.unwrap().is_none());

    let mut next = token(&session, 8, Some(first.id), at(1));
    next.secret_sealed = Some(Sealed {
        key_id: "mk1".into(),
        blob: vec![1, 2, 3, 0, 255],
    });
    assert!(
        s.rotate_refresh_token(first.id, &next, at(1))
            .await
            .unwrap()
    );
    assert_eq!(
        s.find_successor(first.id).await.unwrap(),
        Some(next.clone())
    );
    let (used, _) = s.find_refresh_token(&[7; 32]).await.unwrap().unwrap();
    assert_eq!(used.used_at, Some(at(1)));
}

/// A used token rotates no more and writes nothing; of twenty rotations of
/// one token at once exactly one wins; independent chains all rotate; a
/// failed rotation leaves the store usable.
pub async fn rotating_a_used_refresh_token_writes_nothing<S: Backend>(h: &Harness<S>) {
    let store = &h.store;
    let now = T0;
    let p = principal(&**store).await;
    let session = session_of(&p, now);
    stored(&**store, &session).await;
    let first = token(&session, 1, None, now);
    committed(&**store, async |tx| {
        store.insert_refresh_token(tx, &first).await.unwrap()
    })
    .await;

    let second = token(&session, 2, Some(first.id), now);
    assert!(
        store
            .rotate_refresh_token(first.id, &second, now)
            .await
            .unwrap()
    );
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
