//! NATS JetStream delivery against the shared server: one message per event
//! with `Nats-Msg-Id` = the event id, a principal's events in `aggseq` order,
//! and a publish whose mark was lost acknowledged as a duplicate, not stored
//! twice.

use crate::admin::id_of;
use serde_json::json;
use sesame::Config;
use sesame_app::access::RoleSeed;
use sesame_core::FailPoints;
use sesame_tests::nats::{TestStream, nats_url};
use sesame_tests::{PASSWORD, TestApp};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

async fn publishing_to(stream: &TestStream) -> TestApp {
    publishing_every(stream, 20).await
}

/// A server publishing to `stream`, whose relay waits at most
/// `poll_interval_ms` when nothing wakes it.
async fn publishing_every(stream: &TestStream, poll_interval_ms: u64) -> TestApp {
    let (name, prefix, inbox) = (stream.name.clone(), stream.prefix.clone(), stream.inbox());
    TestApp::builder()
        .config(move |c: &mut Config| {
            c.nats_url = Some(nats_url());
            c.events.nats_stream = name;
            c.events.nats_subject_prefix = prefix;
            c.events.nats_inbox_stream = inbox;
            c.events.poll_interval_ms = poll_interval_ms;
            c.roles = vec![RoleSeed {
                name: "billing".into(),
                permissions: vec!["users:read".into()],
            }];
        })
        .spawn()
        .await
}

/// Waits until every NATS delivery is marked delivered, and returns how many there are.
pub(crate) async fn all_published(app: &TestApp) -> i64 {
    // One statement, one snapshot: counted apart, an event fanned out
    // between the two counts would slip through both.
    let waiting = "SELECT (SELECT COUNT(*) FROM outbox WHERE fanned_out_at IS NULL)
                        + (SELECT COUNT(*) FROM deliveries WHERE sink = 'nats' AND status <> 'delivered')";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = app.count(waiting).await;
        if left == 0 {
            return app
                .count("SELECT COUNT(*) FROM deliveries WHERE sink = 'nats'")
                .await;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} events still wait for NATS"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_sign_up_is_published_once_as_a_cloudevent_with_its_id() {
    let Some(stream) = TestStream::new().await else {
        return;
    };
    let app = publishing_to(&stream).await;
    let user = app.register("nats@example.com").await;
    let id = id_of(&user);
    assert!(all_published(&app).await >= 1);
    let read = stream.read("identity.user.signed_up").await;
    assert_eq!(read.len(), 1, "{read:?}");
    let message = &read[0];
    assert_eq!(
        message.subject,
        format!("{}identity.user.signed_up", stream.prefix)
    );
    let body = &message.body;
    assert_eq!(message.msg_id, body["id"].as_str().unwrap());
    // The CloudEvents 1.0 envelope: required attributes and their forms.
    assert_eq!(body["specversion"], "1.0");
    assert_eq!(body["type"], "identity.user.signed_up");
    assert!(body["source"].as_str().unwrap().starts_with("sesame://"));
    assert_eq!(
        uuid::Uuid::parse_str(body["id"].as_str().unwrap())
            .unwrap()
            .get_version_num(),
        7
    );
    time::OffsetDateTime::parse(
        body["time"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(body["datacontenttype"], "application/json");
    assert_eq!(body["subject"], id.as_str());
    assert_eq!(
        (body["actorkind"].as_str(), body["actorid"].as_str()),
        (Some("principal"), Some(id.as_str()))
    );
    assert_eq!(body["aggseq"], 1);
    assert_eq!(body["data"]["login_type"], "email");
    // And against the envelope's and the topic's JSON Schemas.
    sesame_tests::assert_valid_events(std::slice::from_ref(body));
    app.stop().await;
    stream.finish().await;
}

#[tokio::test]
async fn a_principals_events_arrive_in_sequence() {
    let Some(stream) = TestStream::new().await else {
        return;
    };
    let app = publishing_to(&stream).await;
    let user = app.register("order@example.com").await;
    for _ in 0..5 {
        let resp = app.sign_in("order@example.com", PASSWORD).await;
        assert_eq!(resp.status, 200, "{}", resp.body);
    }
    let published = all_published(&app).await;
    let read = stream.read("identity.>").await;
    assert_eq!(read.len() as i64, published);
    let mine: Vec<i64> = read
        .iter()
        .filter(|m| m.body["subject"] == user["principal"]["id"])
        .map(|m| m.body["aggseq"].as_i64().unwrap())
        .collect();
    assert!(mine.len() >= 6, "{mine:?}");
    assert_eq!(mine, (1..=mine.len() as i64).collect::<Vec<_>>());
    app.stop().await;
    stream.finish().await;
}

/// An ordered sink takes a principal's next event only once the one before
/// is delivered: a burst of one principal's events goes out round after
/// round, without waiting for the poll interval (ten minutes here) or for
/// more commits to wake the relay.
#[tokio::test]
async fn a_burst_of_one_principals_events_goes_out_without_waiting_for_the_interval() {
    let Some(stream) = TestStream::new().await else {
        return;
    };
    let app = publishing_every(&stream, 600_000).await;
    app.register("burst@example.com").await;
    for _ in 0..5 {
        let resp = app.sign_in("burst@example.com", PASSWORD).await;
        assert_eq!(resp.status, 200, "{}", resp.body);
    }
    let published = all_published(&app).await;
    assert!(published >= 6, "{published}");
    assert_eq!(stream.read("identity.>").await.len() as i64, published);
    app.stop().await;
    stream.finish().await;
}

#[tokio::test]
async fn a_publish_whose_mark_was_lost_is_acknowledged_as_a_duplicate() {
    let Some(stream) = TestStream::new().await else {
        return;
    };
    let app = publishing_to(&stream).await;
    app.register("twice@example.com").await;
    let published = all_published(&app).await;
    let stored = stream.stored().await as i64;
    if stored != published {
        let rows = app.db.dump("deliveries").await;
        panic!("the stream holds {stored}, {published} marked published: {rows}");
    }
    // As if the relay died after the acks and before marking them.
    app.db
        .execute("UPDATE deliveries SET status = 'pending', attempts = 0 WHERE sink = 'nats'")
        .await;
    assert_eq!(all_published(&app).await, published);
    let again = "SELECT COUNT(*) FROM deliveries WHERE sink = 'nats' AND attempts = 1";
    assert_eq!(
        app.count(again).await,
        published,
        "each was published again"
    );
    assert_eq!(
        stream.stored().await as i64,
        published,
        "the stream dropped the duplicates"
    );
    let read = stream.read("identity.>").await;
    let ids: std::collections::HashSet<_> = read.iter().map(|m| m.msg_id.clone()).collect();
    assert_eq!(ids.len() as i64, published);
    app.stop().await;
    stream.finish().await;
}

#[tokio::test]
async fn role_requests_grant_once_and_a_malformed_one_does_not_block_the_next() {
    let Some(stream) = TestStream::new().await else {
        return;
    };
    let app = publishing_to(&stream).await;
    let (a, b) = (
        id_of(&app.register("asked@example.com").await),
        id_of(&app.register("next@example.com").await),
    );
    let request = |id: &str, who: &str| {
        json!({
            "specversion": "1.0", "id": id, "type": "accounts.user.role_required",
            "source": "/accounts", "data": {"principal_id": who, "role": "billing"}
        })
        .to_string()
        .into_bytes()
    };
    let subject = "accounts.user.role_required";
    // Twice with one Nats-Msg-Id: the stream keeps one.
    assert!(
        !stream
            .publish(subject, Some("m1"), &request("m1", &a))
            .await
    );
    assert!(
        stream
            .publish(subject, Some("m1"), &request("m1", &a))
            .await
    );
    // The same id again, in the body only: stored, delivered, and recognised.
    stream.publish(subject, None, &request("m1", &a)).await;
    // Another message asking the same: the role is held already.
    stream
        .publish(subject, Some("m2"), &request("m2", &a))
        .await;
    // Malformed: terminated, and the next one still goes through.
    stream.publish(subject, Some("m3"), b"not json").await;
    stream
        .publish(subject, Some("m4"), &request("m4", &b))
        .await;

    let held = |who: &str| {
        format!(
            "SELECT COUNT(*) FROM role_assignments WHERE role = 'billing' AND principal_id = {}",
            app.db.uuid_literal(who.parse().unwrap())
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while app.count(&held(&b)).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the role was never granted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(app.count(&held(&a)).await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE topic = 'identity.role.assigned'")
            .await,
        2,
        "one assignment each"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM processed_messages").await,
        3,
        "m1, m2 and m4"
    );
    let event = app
        .db
        .text("SELECT CAST(payload AS TEXT) FROM outbox WHERE topic = 'identity.role.assigned' ORDER BY id LIMIT 1")
        .await;
    let event: serde_json::Value = serde_json::from_str(&event).unwrap();
    assert_eq!(
        (event["actorkind"].as_str(), event["subject"].as_str()),
        (Some("service"), Some(a.as_str()))
    );
    // The token of a fresh sign-in carries the role.
    let signed_in = app.sign_in("asked@example.com", PASSWORD).await;
    let me = app
        .get("/v1/me", signed_in.body["access_token"].as_str())
        .await;
    assert_eq!(me.status, 200, "{}", me.body);
    app.stop().await;
    stream.finish().await;
}

#[tokio::test]
async fn a_relay_stopped_between_the_ack_and_the_mark_publishes_again_as_a_duplicate() {
    let Some(stream) = TestStream::new().await else {
        return;
    };
    let fired = Arc::new(AtomicBool::new(false));
    let once = fired.clone();
    let failpoints = FailPoints::new(move |name| {
        name == "relay.before_mark:nats" && !once.swap(true, Ordering::SeqCst)
    });
    let (name, prefix, inbox) = (stream.name.clone(), stream.prefix.clone(), stream.inbox());
    let app = TestApp::builder()
        .failpoints(failpoints)
        .config(move |c: &mut Config| {
            c.nats_url = Some(nats_url());
            c.events.nats_stream = name;
            c.events.nats_subject_prefix = prefix;
            c.events.nats_inbox_stream = inbox;
            c.events.poll_interval_ms = 20;
            // Leases of 3 s: the unmarked delivery comes back soon.
            c.events.attempt_timeout_secs = 1;
        })
        .spawn()
        .await;
    app.register("crashed@example.com").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !fired.load(Ordering::SeqCst) || stream.stored().await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing was published"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Published, acked, not marked: still pending, under its lease.
    let pending = "SELECT COUNT(*) FROM deliveries WHERE sink = 'nats' AND status = 'pending'";
    assert_eq!(app.count(pending).await, 1);
    // Once the lease ends it is published again; the stream keeps one copy.
    assert_eq!(all_published(&app).await, 1);
    assert_eq!(
        stream.stored().await,
        1,
        "the second publish was a duplicate"
    );
    let read = stream.read("identity.>").await;
    assert_eq!(read.len(), 1);
    app.stop().await;
    stream.finish().await;
}
