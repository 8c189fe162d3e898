//! `CounterStore` and `RetentionStore`.

use crate::codes::code;
use crate::{Backend, Harness, T0, at, committed, principal, session_of, token};
use sesame_core::StoreError;
use sesame_credentials::{LoginAttempt, LoginType, SweepBefore, Swept};
use uuid::Uuid;

/// A cooldown runs until its end and starts again only after it; a counter
/// counts until its end and starts over after it; forgetting and sweeping
/// remove entries.
pub async fn cooldowns_and_counters_end_when_they_say<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    assert_eq!(s.start_cooldown_at("c", 1000, 2000).await.unwrap(), None);
    assert_eq!(
        s.start_cooldown_at("c", 1500, 9000).await.unwrap(),
        Some(2000)
    );
    assert_eq!(s.cooldown_until("c", 1999).await.unwrap(), Some(2000));
    assert_eq!(s.cooldown_until("c", 2000).await.unwrap(), None);
    assert_eq!(s.start_cooldown_at("c", 2000, 3000).await.unwrap(), None);
    assert_eq!(s.cooldown_until("c", 2500).await.unwrap(), Some(3000));
    assert_eq!(s.cooldown_until("other", 0).await.unwrap(), None);

    for n in 1..=3 {
        assert_eq!(s.count_at("n", 1000 + n, 5000).await.unwrap(), n as u64);
    }
    assert_eq!(s.count_at("n", 5000, 8000).await.unwrap(), 1);
    assert_eq!(s.count_at("n", 5001, 8000).await.unwrap(), 2);
    s.forget("n").await.unwrap();
    assert_eq!(s.count_at("n", 5002, 8000).await.unwrap(), 1);
    s.forget("never-there").await.unwrap();

    // At 3000 the cooldown has ended; the counter (until 8000) has not.
    assert_eq!(s.sweep_counters(3000).await.unwrap(), 1);
    assert_eq!(s.sweep_counters(3000).await.unwrap(), 0);
    assert_eq!(s.count_at("n", 5003, 8000).await.unwrap(), 2);
    assert_eq!(s.sweep_counters(8000).await.unwrap(), 1);
}

/// Racing counts of one key are each counted.
pub async fn racing_counts_are_all_counted<S: Backend>(h: &Harness<S>) {
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let s = h.store.clone();
            tokio::spawn(async move { s.count_at("race", 1, 10_000).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for racer in racers {
        seen.push(racer.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=16).collect::<Vec<_>>());
}

/// A sweep removes what ended before each horizon and nothing else.
pub async fn a_sweep_removes_only_what_ended<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = principal(s).await;
    // Codes: one expired at 600 s, one live until 1200 s.
    s.insert_code(&code("", "flow-old", 0), 5).await.unwrap();
    s.insert_code(&code("", "flow-new", 600), 5).await.unwrap();
    // Sessions: one revoked at 100 s, one expired at 200 s, one live.
    let revoked = session_of(&p, T0);
    let mut expired = session_of(&p, T0);
    expired.expires_at = at(200);
    let live = session_of(&p, T0);
    let live_first = token(&live, 1, None, T0);
    let live_next = token(&live, 2, Some(live_first.id), at(50));
    let revoked_token = token(&revoked, 3, None, T0);
    let attempt = |when| LoginAttempt {
        id: Uuid::now_v7(),
        login_type: LoginType::Email,
        identifier: "a@example.com".into(),
        principal_id: None,
        ip: None,
        success: false,
        reason: None,
        at: when,
    };
    committed(s, async |tx| {
        for session in [&revoked, &expired, &live] {
            s.insert_session(tx, session).await.unwrap();
        }
        s.insert_refresh_token(tx, &live_first).await.unwrap();
        s.insert_refresh_token(tx, &revoked_token).await.unwrap();
        s.revoke_session(tx, revoked.id, "logout", at(100))
            .await
            .unwrap();
        s.record_attempt(tx, &attempt(at(10))).await.unwrap();
        s.record_attempt(tx, &attempt(at(1000))).await.unwrap();
    })
    .await;
    assert!(
        s.rotate_refresh_token(live_first.id, &live_next, at(50))
            .await
            .unwrap()
    );

    let swept = s
        .sweep(SweepBefore {
            expired_codes: at(700),
            used_refresh_tokens: at(60),
            ended_sessions: at(300),
            login_attempts: at(500),
        })
        .await
        .unwrap();
    assert_eq!(
        swept,
        Swept {
            codes: 1,
            refresh_tokens: 1,
            sessions: 2,
            login_attempts: 1,
            counters: 0,
            mfa_challenges: 0,
            events: 0,
            federation_flows: 0,
        }
    );
    assert_eq!(s.get_session(live.id).await.unwrap(), live);
    assert!(s.get_session(revoked.id).await.is_err());
    assert!(s.find_refresh_token(&[3; 32]).await.unwrap().is_none());
    assert!(s.find_refresh_token(&[1; 32]).await.unwrap().is_none());
    assert!(s.find_refresh_token(&[2; 32]).await.unwrap().is_some());
    assert_eq!(
        h.db.count("SELECT COUNT(*) FROM verification_codes").await,
        1
    );
    assert_eq!(h.db.count("SELECT COUNT(*) FROM login_attempts").await, 1);
    let again = s
        .sweep(SweepBefore {
            expired_codes: at(700),
            used_refresh_tokens: at(60),
            ended_sessions: at(300),
            login_attempts: at(500),
        })
        .await
        .unwrap();
    assert_eq!(
        (
            again.codes,
            again.refresh_tokens,
            again.sessions,
            again.login_attempts
        ),
        (0, 0, 0, 0)
    );
}

/// A store answers `ping` while its database does, and reports itself
/// unavailable once it does not (here: its pools closed).
pub async fn ping_tells_whether_the_database_answers<S: Backend>(h: &Harness<S>) {
    h.store.ping().await.unwrap();
    h.db.close().await;
    let err = h.store.ping().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}
