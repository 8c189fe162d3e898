//! `VerificationCodeStore`: one-time codes, their tries and their flows.

use crate::{Backend, Harness, at, committed};
use sesame_credentials::{CodePurpose, LoginType, VerificationCode};
use uuid::Uuid;

const EMAIL: &str = "code@example.com";

/// A code for `subject`, sent at `sent`, not yet stored.
pub fn code(subject: &str, flow: &str, sent: i64) -> VerificationCode {
    VerificationCode {
        id: Uuid::now_v7(),
        purpose: CodePurpose::Register,
        login_type: LoginType::Email,
        identifier: EMAIL.into(),
        subject: subject.into(),
        code_hash: flow.as_bytes().to_vec(),
        flow_id: flow.into(),
        attempts: 0,
        anonymous_attempts: 0,
        created_at: at(sent),
        expires_at: at(sent + 600),
        consumed_at: None,
    }
}

async fn newest<S: Backend>(s: &S, subject: &str) -> Option<VerificationCode> {
    s.find_code(CodePurpose::Register, LoginType::Email, EMAIL, subject)
        .await
        .unwrap()
}

async fn claim<S: Backend>(
    s: &S,
    subject: &str,
    flow: Option<&str>,
    max: i64,
) -> Option<VerificationCode> {
    s.claim_code_try(
        CodePurpose::Register,
        LoginType::Email,
        EMAIL,
        subject,
        flow,
        max,
    )
    .await
    .unwrap()
}

/// The newest code is found; only the newest `keep` of a purpose, login and
/// subject are kept; other subjects and purposes are apart.
pub async fn codes_are_kept_newest_first_per_subject<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let first = code("", "flow-1", 1);
    let second = code("", "flow-2", 2);
    let third = code("", "flow-3", 3);
    let other_subject = code("principal-a", "flow-4", 4);
    for c in [&first, &second, &third, &other_subject] {
        s.insert_code(c, 2).await.unwrap();
    }
    assert_eq!(newest(s, "").await, Some(third.clone()));
    assert_eq!(newest(s, "principal-a").await, Some(other_subject));
    assert_eq!(newest(s, "principal-b").await, None);
    assert_eq!(
        s.find_code(CodePurpose::Reset, LoginType::Email, EMAIL, "")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        h.db.count("SELECT COUNT(*) FROM verification_codes").await,
        3
    );
    // The pruned first flow has no tries left to claim; the second does.
    assert!(claim(s, "", Some("flow-1"), 5).await.is_none());
    assert!(claim(s, "", Some("flow-2"), 5).await.is_some());
}

/// A flow's tries and the anonymous tries of the newest code are claimed
/// apart, each up to the limit; what a claim returns is counted already.
pub async fn code_tries_are_claimed_per_flow_and_anonymously<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let older = code("", "flow-old", 1);
    let newer = code("", "flow-new", 2);
    s.insert_code(&older, 3).await.unwrap();
    s.insert_code(&newer, 3).await.unwrap();
    for n in 1..=3 {
        let claimed = claim(s, "", Some("flow-old"), 3).await.unwrap();
        assert_eq!((claimed.id, claimed.attempts), (older.id, n));
    }
    assert!(claim(s, "", Some("flow-old"), 3).await.is_none());
    assert!(claim(s, "", Some("flow-unknown"), 3).await.is_none());
    // Guesses naming no flow go to the newest code, on a budget of their own.
    for n in 1..=3 {
        let claimed = claim(s, "", None, 3).await.unwrap();
        assert_eq!(
            (claimed.id, claimed.attempts, claimed.anonymous_attempts),
            (newer.id, 0, n)
        );
    }
    assert!(claim(s, "", None, 3).await.is_none());
    let flow_try = claim(s, "", Some("flow-new"), 3).await.unwrap();
    assert_eq!((flow_try.attempts, flow_try.anonymous_attempts), (1, 3));
    assert!(claim(s, "other", None, 3).await.is_none());
}

/// However many claims race, no more than the limit are granted.
pub async fn racing_code_claims_stop_at_the_limit<S: Backend>(h: &Harness<S>) {
    let c = code("", "flow-race", 1);
    h.store.insert_code(&c, 3).await.unwrap();
    let racers: Vec<_> = (0..24)
        .map(|n| {
            let s = h.store.clone();
            tokio::spawn(async move {
                let flow = (n % 2 == 0).then_some("flow-race");
                claim(&*s, "", flow, 5).await.is_some()
            })
        })
        .collect();
    let mut granted = 0;
    for racer in racers {
        granted += usize::from(racer.await.unwrap());
    }
    assert_eq!(granted, 10, "5 with the flow and 5 without");
}

/// Consuming a code ends every live code of its purpose, login and subject,
/// once; a code whose tries ran over is not consumed.
pub async fn consuming_a_code_ends_its_siblings<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let a = code("", "flow-a", 1);
    let b = code("", "flow-b", 2);
    let apart = code("principal-a", "flow-c", 3);
    for c in [&a, &b, &apart] {
        s.insert_code(c, 3).await.unwrap();
    }
    let results = committed(s, async |tx| {
        let first = s.consume_code(tx, a.id, 5, at(10)).await.unwrap();
        let again = s.consume_code(tx, a.id, 5, at(11)).await.unwrap();
        let sibling = s.consume_code(tx, b.id, 5, at(12)).await.unwrap();
        (first, again, sibling)
    })
    .await;
    assert_eq!(results, (true, false, false));
    assert_eq!(newest(s, "").await.unwrap().consumed_at, Some(at(10)));
    assert!(claim(s, "", Some("flow-b"), 5).await.is_none());
    assert!(claim(s, "", None, 5).await.is_none());
    assert_eq!(newest(s, "principal-a").await.unwrap().consumed_at, None);

    // More tries claimed than allowed: not consumed, however right the guess.
    for _ in 0..3 {
        claim(s, "principal-a", Some("flow-c"), 5).await.unwrap();
    }
    let over = committed(s, async |tx| {
        s.consume_code(tx, apart.id, 2, at(13)).await.unwrap()
    })
    .await;
    assert!(!over);
    // A consumption rolled back leaves the code live.
    let mut tx = s.begin().await.unwrap();
    assert!(
        s.consume_code(tx.as_mut(), apart.id, 5, at(14))
            .await
            .unwrap()
    );
    drop(tx);
    assert_eq!(newest(s, "principal-a").await.unwrap().consumed_at, None);
}
