//! `OutboxStore` and `WebhookStore`.

use crate::{Backend, Harness, T0, at, committed};
use sesame_core::PrincipalId;
use sesame_events::{
    Actor, Delivery, DeliveryStatus, Envelope, Failure, PreviousSecret, StoredEndpoint,
};
use std::collections::HashSet;
use time::OffsetDateTime;
use uuid::Uuid;

fn event(topic: &str, subject: PrincipalId) -> Envelope {
    Envelope::new(
        "sesame://test",
        topic,
        subject,
        Actor::principal(subject),
        serde_json::json!({"n": 1}),
        T0,
    )
}

async fn enqueue_all<S: Backend>(s: &S, events: &[Envelope]) {
    committed(s, async |tx| {
        for e in events {
            s.enqueue(tx, e).await.unwrap();
        }
    })
    .await;
}

/// Every sink takes every topic.
fn to(sinks: &'static [&'static str]) -> impl Fn(&str) -> Vec<String> + Send + Sync {
    move |_| sinks.iter().map(|s| (*s).to_owned()).collect()
}

async fn claim<S: Backend>(
    s: &S,
    sink: &str,
    ordered: bool,
    limit: i64,
    now: OffsetDateTime,
) -> Vec<Delivery> {
    s.claim(
        sink,
        ordered,
        Uuid::now_v7(),
        limit,
        now,
        now + time::Duration::seconds(30),
    )
    .await
    .unwrap()
}

/// Fans every committed event out to a sink `test` and leases them all: the
/// envelopes as they would be sent.
pub async fn sent_envelopes<S: Backend>(s: &S) -> Vec<serde_json::Value> {
    s.fan_out(&to(&["test"]), 1000, at(1)).await.unwrap();
    claim(s, "test", false, 1000, at(1))
        .await
        .into_iter()
        .map(|d| d.payload)
        .collect()
}

/// Only committed events fan out, each once, to one pending delivery per
/// sink its topic goes to; each principal's events get 1, 2, 3… in the
/// envelope as in the row.
pub async fn events_fan_out_once_on_commit_with_a_gapless_sequence<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let (a, b) = (PrincipalId::new(), PrincipalId::new());
    let mut tx = s.begin().await.unwrap();
    s.enqueue(tx.as_mut(), &event("identity.user.signed_in", a))
        .await
        .unwrap();
    drop(tx);
    let mut tx = s.begin().await.unwrap();
    let events = [
        event("identity.user.signed_up", a),
        event("identity.user.signed_in", b),
        event("identity.user.signed_in", a),
        event("identity.mfa.enrolled", a),
    ];
    for e in &events {
        s.enqueue(tx.as_mut(), e).await.unwrap();
    }
    let users_only = |topic: &str| {
        let mut sinks = vec!["log".to_owned()];
        if topic.starts_with("identity.user.") {
            sinks.push("webhook:users".to_owned());
        }
        sinks
    };
    if h.is_postgres() {
        // (On SQLite the open transaction holds the one writer the relay waits for.)
        assert_eq!(s.fan_out(&users_only, 10, at(1)).await.unwrap(), 0);
    }
    s.commit(tx).await.unwrap();
    assert_eq!(s.fan_out(&users_only, 10, at(1)).await.unwrap(), 4);
    assert_eq!(s.fan_out(&users_only, 10, at(1)).await.unwrap(), 0);
    assert_eq!(h.db.count("SELECT COUNT(*) FROM deliveries").await, 7);

    let logged = claim(s, "log", false, 10, at(1)).await;
    let seq = |id: Uuid| {
        let d = logged.iter().find(|d| d.event_id == id).unwrap();
        assert_eq!(d.payload["aggseq"], d.aggseq);
        assert_eq!(d.payload["id"], id.to_string());
        assert_eq!(d.attempts, 0);
        (d.principal.clone(), d.aggseq)
    };
    assert_eq!(seq(events[0].id), (a.to_string(), 1));
    assert_eq!(seq(events[2].id), (a.to_string(), 2));
    assert_eq!(seq(events[3].id), (a.to_string(), 3));
    assert_eq!(seq(events[1].id), (b.to_string(), 1));
    let hooked = claim(s, "webhook:users", false, 10, at(1)).await;
    assert_eq!(hooked.len(), 3);
    assert!(hooked.iter().all(|d| d.topic.starts_with("identity.user.")));

    // Later events continue the sequence.
    enqueue_all(s, &[event("identity.user.signed_in", a)]).await;
    s.fan_out(&users_only, 10, at(2)).await.unwrap();
    let next = claim(s, "log", false, 10, at(2)).await;
    assert_eq!((next.len(), next[0].aggseq), (1, 4));
}

/// A claim leases the oldest due deliveries; leased ones are nobody else's
/// until the lease ends; a failed attempt counts and comes back when due; the
/// last one leaves the delivery failed; only the lease holder can mark.
pub async fn claims_lease_deliveries_and_failures_come_back_when_due<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = PrincipalId::new();
    let events: Vec<_> = (0..4)
        .map(|_| event("identity.user.signed_in", p))
        .collect();
    enqueue_all(s, &events).await;
    s.fan_out(&to(&["log", "other"]), 10, at(1)).await.unwrap();
    assert!(
        claim(s, "log", false, 10, at(0)).await.is_empty(),
        "not due yet"
    );

    let owner = Uuid::now_v7();
    let first = s
        .claim("log", false, owner, 2, at(1), at(31))
        .await
        .unwrap();
    let ids: Vec<_> = first.iter().map(|d| d.event_id).collect();
    assert_eq!(ids, [events[0].id, events[1].id]);
    let second = claim(s, "log", false, 10, at(2)).await;
    assert_eq!(second.len(), 2, "the leased two are skipped");
    assert_eq!(
        claim(s, "other", false, 10, at(2)).await.len(),
        4,
        "each sink on its own"
    );

    // A stranger cannot mark what it does not hold.
    s.mark_delivered("log", Uuid::now_v7(), &ids, at(3))
        .await
        .unwrap();
    s.mark_delivered("log", owner, &ids[..1], at(3))
        .await
        .unwrap();
    let retry = Failure {
        error: "the endpoint answered 503".into(),
        retry_at: Some(at(60)),
    };
    s.mark_attempt_failed("log", owner, ids[1], &retry)
        .await
        .unwrap();
    // Not due before 60; the other two are leased until 32.
    assert!(claim(s, "log", false, 10, at(31)).await.is_empty());
    let again = claim(s, "log", false, 10, at(60)).await;
    assert_eq!(
        again.len(),
        3,
        "the failed one and the two whose lease ended"
    );
    let failed = again.iter().find(|d| d.event_id == ids[1]).unwrap();
    assert_eq!(failed.attempts, 1);

    let rows = s.list_deliveries(false, 100).await.unwrap();
    let row = |id: Uuid, sink: &str| {
        rows.iter()
            .find(|r| r.event_id == id && r.sink == sink)
            .unwrap()
            .clone()
    };
    assert_eq!(row(ids[0], "log").status, DeliveryStatus::Delivered);
    assert_eq!(row(ids[0], "log").attempts, 1);
    assert_eq!(row(ids[1], "log").status, DeliveryStatus::Pending);
    assert_eq!(
        row(ids[1], "log").last_error.as_deref(),
        Some("the endpoint answered 503")
    );
    assert_eq!(row(ids[1], "other").status, DeliveryStatus::Pending);
    assert_eq!(rows.len(), 8);
}

/// On an ordered sink only a principal's earliest pending delivery can be
/// leased, so its events go out one after another in sequence.
pub async fn an_ordered_sink_gets_each_principals_earliest_only<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let (a, b) = (PrincipalId::new(), PrincipalId::new());
    let events = [
        event("identity.user.signed_up", a),
        event("identity.user.signed_in", a),
        event("identity.user.signed_up", b),
        event("identity.user.signed_in", a),
    ];
    enqueue_all(s, &events).await;
    s.fan_out(&to(&["nats"]), 10, at(1)).await.unwrap();
    for expected in [vec![(a, 1), (b, 1)], vec![(a, 2)], vec![(a, 3)], vec![]] {
        let owner = Uuid::now_v7();
        let got = s
            .claim("nats", true, owner, 10, at(2), at(32))
            .await
            .unwrap();
        let mut seen: Vec<_> = got
            .iter()
            .map(|d| (d.principal.clone(), d.aggseq))
            .collect();
        seen.sort();
        let mut want: Vec<_> = expected.iter().map(|(p, n)| (p.to_string(), *n)).collect();
        want.sort();
        assert_eq!(seen, want);
        // Nothing more while those are out.
        assert!(
            s.claim("nats", true, Uuid::now_v7(), 10, at(2), at(32))
                .await
                .unwrap()
                .is_empty()
        );
        let ids: Vec<_> = got.iter().map(|d| d.event_id).collect();
        s.mark_delivered("nats", owner, &ids, at(3)).await.unwrap();
    }
}

/// Relays claiming at the same moment never get the same delivery, and
/// between them get every one.
pub async fn racing_claims_never_share_a_delivery<S: Backend>(h: &Harness<S>) {
    let s = &h.store;
    let events: Vec<_> = (0..120)
        .map(|_| event("identity.user.signed_in", PrincipalId::new()))
        .collect();
    enqueue_all(&**s, &events).await;
    s.fan_out(&to(&["log"]), 1000, at(1)).await.unwrap();
    let mut racers = Vec::new();
    for _ in 0..4 {
        let s = s.clone();
        racers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = claim(&*s, "log", false, 7, at(2)).await;
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|d| d.event_id));
            }
        }));
    }
    let mut all = Vec::new();
    for racer in racers {
        all.extend(racer.await.unwrap());
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 120, "each delivery leased once");
    assert_eq!(distinct.len(), 120);
}

/// Failed deliveries are listed and retried with the same event; the oldest
/// undelivered event is known; delivered ones go after the retention period,
/// and the event with them once every sink has it.
pub async fn delivered_events_are_pruned_and_failed_ones_retried<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let p = PrincipalId::new();
    assert_eq!(s.oldest_undelivered().await.unwrap(), None);
    let events: Vec<_> = (0..3)
        .map(|_| event("identity.user.signed_in", p))
        .collect();
    enqueue_all(s, &events).await;
    assert_eq!(
        s.oldest_undelivered().await.unwrap(),
        Some(T0),
        "not fanned out yet"
    );
    s.fan_out(&to(&["log", "hook"]), 10, at(1)).await.unwrap();
    assert_eq!(s.oldest_undelivered().await.unwrap(), Some(T0));

    let owner = Uuid::now_v7();
    let logged = s
        .claim("log", false, owner, 10, at(1), at(31))
        .await
        .unwrap();
    let ids: Vec<_> = logged.iter().map(|d| d.event_id).collect();
    s.mark_delivered("log", owner, &ids, at(2)).await.unwrap();
    let owner = Uuid::now_v7();
    let hooked = s
        .claim("hook", false, owner, 10, at(1), at(31))
        .await
        .unwrap();
    let give_up = Failure {
        error: "the endpoint answered 500".into(),
        retry_at: None,
    };
    s.mark_delivered("hook", owner, &[hooked[0].event_id], at(2))
        .await
        .unwrap();
    s.mark_attempt_failed("hook", owner, hooked[1].event_id, &give_up)
        .await
        .unwrap();
    assert_eq!(
        s.fail_sink("hook", "the endpoint was disabled")
            .await
            .unwrap(),
        1
    );
    let failed = s.list_deliveries(true, 10).await.unwrap();
    assert_eq!(failed.len(), 2);
    assert!(
        failed
            .iter()
            .all(|r| r.status == DeliveryStatus::Failed && r.sink == "hook")
    );
    assert_eq!(
        s.oldest_undelivered().await.unwrap(),
        None,
        "failed ones wait for nobody"
    );

    // Pruning keeps events a sink has not had.
    assert_eq!(s.prune_delivered(at(3)).await.unwrap(), 1);
    assert_eq!(h.db.count("SELECT COUNT(*) FROM outbox").await, 2);

    assert_eq!(
        s.retry_failed(Some(hooked[1].event_id), at(4))
            .await
            .unwrap(),
        1
    );
    let back = claim(s, "hook", false, 10, at(4)).await;
    assert_eq!(back.len(), 1);
    assert_eq!(
        (back[0].event_id, back[0].attempts),
        (hooked[1].event_id, 0)
    );
    assert_eq!(s.retry_failed(None, at(5)).await.unwrap(), 1);
    assert_eq!(s.list_deliveries(true, 10).await.unwrap().len(), 0);
}

/// Endpoints are created, replaced (a new URL enables a disabled one),
/// disabled, resealed and deleted.
pub async fn webhook_endpoints_are_stored_disabled_and_resealed<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let endpoint = StoredEndpoint {
        name: "billing".into(),
        url: "https://billing.example/hooks".into(),
        topics: vec!["identity.user.*".into()],
        secret_sealed: vec![1, 2, 3],
        secret_key_id: "k1".into(),
        previous: None,
        from_config: true,
        disabled_at: None,
        disabled_reason: None,
        created_at: at(1),
        updated_at: at(1),
    };
    assert_eq!(s.put_webhook(&endpoint).await.unwrap(), endpoint);
    assert!(
        s.disable_webhook("billing", "the endpoint answered 410 Gone", at(2))
            .await
            .unwrap()
    );
    assert!(!s.disable_webhook("nobody", "x", at(2)).await.unwrap());
    let listed = s.list_webhooks().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].disabled_at, Some(at(2)));
    assert_eq!(
        listed[0].disabled_reason.as_deref(),
        Some("the endpoint answered 410 Gone")
    );

    // Same URL: still disabled. New URL: enabled again.
    let same = StoredEndpoint {
        updated_at: at(3),
        ..endpoint.clone()
    };
    assert_eq!(s.put_webhook(&same).await.unwrap().disabled_at, Some(at(2)));
    let moved = StoredEndpoint {
        url: "https://billing.example/v2".into(),
        updated_at: at(4),
        ..endpoint.clone()
    };
    let stored = s.put_webhook(&moved).await.unwrap();
    assert_eq!((stored.disabled_at, stored.created_at), (None, at(1)));

    // A rotation keeps the previous secret for a while; a reseal covers both.
    let rotated = StoredEndpoint {
        secret_sealed: vec![4, 5, 6],
        previous: Some(PreviousSecret {
            sealed: vec![1, 2, 3],
            key_id: "k1".into(),
            until: at(100),
        }),
        updated_at: at(5),
        ..stored.clone()
    };
    assert_eq!(
        s.put_webhook(&rotated).await.unwrap().previous,
        rotated.previous
    );
    committed(s, async |tx| {
        s.reseal_webhook(tx, "billing", (&[9, 9], "k2"), Some((&[8, 8], "k2")))
            .await
            .unwrap()
    })
    .await;
    let resealed = &s.list_webhooks().await.unwrap()[0];
    assert_eq!(
        (
            resealed.secret_sealed.as_slice(),
            resealed.secret_key_id.as_str()
        ),
        (&[9u8, 9][..], "k2")
    );
    let previous = resealed.previous.as_ref().unwrap();
    assert_eq!(
        (
            previous.sealed.as_slice(),
            previous.key_id.as_str(),
            previous.until
        ),
        (&[8u8, 8][..], "k2", at(100))
    );

    // An endpoint of the API is enabled again by a put, whatever its URL.
    let api = StoredEndpoint {
        from_config: false,
        ..resealed.clone()
    };
    s.put_webhook(&api).await.unwrap();
    s.disable_webhook("billing", "410", at(6)).await.unwrap();
    assert_eq!(s.put_webhook(&api).await.unwrap().disabled_at, None);
    assert!(s.delete_webhook("billing").await.unwrap());
    assert!(!s.delete_webhook("billing").await.unwrap());
    assert!(s.list_webhooks().await.unwrap().is_empty());
}

/// A consumed message's id is recorded once, with its transaction: a
/// rolled-back record leaves the id free, a committed one refuses it again.
pub async fn consumed_message_ids_are_recorded_once<S: Backend>(h: &Harness<S>) {
    let s = &*h.store;
    let mut tx = s.begin().await.unwrap();
    assert!(s.note_message(tx.as_mut(), "m1", at(1)).await.unwrap());
    drop(tx);
    let first = committed(s, async |tx| s.note_message(tx, "m1", at(2)).await.unwrap()).await;
    assert!(first, "the rolled-back record left it free");
    let again = committed(s, async |tx| s.note_message(tx, "m1", at(3)).await.unwrap()).await;
    assert!(!again);
    let other = committed(s, async |tx| s.note_message(tx, "m2", at(3)).await.unwrap()).await;
    assert!(other);
    assert_eq!(
        h.db.count("SELECT COUNT(*) FROM processed_messages").await,
        2
    );
}

/// An event whose transaction commits after a later event's is fanned out
/// all the same: the relay keeps no "last id seen" that a late committer
/// could fall behind. (On SQLite the one writer commits in order.)
pub async fn a_late_committer_is_not_skipped<S: Backend>(h: &Harness<S>) {
    if !h.is_postgres() {
        return;
    }
    let s = &*h.store;
    let (early, late) = (
        event("identity.user.signed_up", PrincipalId::new()),
        event("identity.user.signed_up", PrincipalId::new()),
    );
    assert!(early.id < late.id);
    let mut slow = s.begin().await.unwrap();
    s.enqueue(slow.as_mut(), &early).await.unwrap();
    enqueue_all(s, std::slice::from_ref(&late)).await;
    assert_eq!(s.fan_out(&to(&["log"]), 10, at(1)).await.unwrap(), 1);
    s.commit(slow).await.unwrap();
    assert_eq!(s.fan_out(&to(&["log"]), 10, at(2)).await.unwrap(), 1);
    let ids: HashSet<_> = claim(s, "log", false, 10, at(2))
        .await
        .into_iter()
        .map(|d| d.event_id)
        .collect();
    assert_eq!(ids, HashSet::from([early.id, late.id]));
}
