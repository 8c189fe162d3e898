//! Delivery through faults: a NATS server killed in the middle of 1,000
//! sign-ups and started again, a webhook receiver down for them, and two
//! instances relaying from one PostgreSQL database. Nothing is lost, nothing
//! is sent twice at once, and each principal's events stay in order.

use crate::nats::all_published;
use futures_util::StreamExt;
use sesame::Config;
use sesame_app::events::WebhookSeed;
use sesame_tests::nats::{PrivateNats, TestStream, nats_url};
use sesame_tests::webhooks::WebhookReceiver;
use sesame_tests::{PASSWORD, TestApp, TestAppBuilder, TestBackend};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const SIGN_UPS: usize = 1000;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Retries every 100 ms for about a minute: longer than any outage here.
fn patient(c: &mut Config) {
    c.events.retry_schedule_ms = Some(std::iter::once(0).chain([100; 600]).collect());
    c.events.poll_interval_ms = 20;
}

/// Registers `n` users, 16 at a time; `done` counts the finished ones.
async fn sign_up(apps: &[&TestApp], n: usize, tag: &str, done: &AtomicUsize) {
    futures_util::stream::iter(0..n)
        .map(|i| async move {
            let app = apps[i % apps.len()];
            let resp = app
                .register_as("email", &format!("{tag}{i}@example.com"), PASSWORD)
                .await;
            assert_eq!(resp.status, 201, "{}", resp.body);
            done.fetch_add(1, Ordering::SeqCst);
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

/// Waits until `done` reaches `n`.
async fn reached(done: &AtomicUsize, n: usize) {
    while done.load(Ordering::SeqCst) < n {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_killed_during_a_thousand_sign_ups_loses_nothing() {
    let Some(mut nats) = PrivateNats::start().await else {
        return;
    };
    let Some(stream) = TestStream::on(&nats.url).await else {
        return;
    };
    let (url, name, prefix) = (nats.url.clone(), stream.name.clone(), stream.prefix.clone());
    let app = TestApp::builder()
        .config(move |c| {
            c.nats_url = Some(url);
            c.events.nats_stream = name;
            c.events.nats_subject_prefix = prefix;
            patient(c);
        })
        .spawn()
        .await;
    let done = Arc::new(AtomicUsize::new(0));
    let load = {
        let (app, done) = (&app, done.clone());
        async move { sign_up(&[app], SIGN_UPS, "nats", &done).await }
    };
    let outage = async {
        reached(&done, SIGN_UPS / 4).await;
        nats.kill();
        reached(&done, SIGN_UPS / 2).await;
        assert!(
            done.load(Ordering::SeqCst) < SIGN_UPS,
            "the outage fell inside the load"
        );
        nats.restart().await;
    };
    tokio::join!(load, outage);
    let published = all_published(&app).await;
    let read = stream.read("identity.user.signed_up").await;
    let ids: HashSet<_> = read.iter().map(|m| m.msg_id.clone()).collect();
    assert_eq!(read.len(), SIGN_UPS, "one message per sign-up");
    assert_eq!(ids.len(), SIGN_UPS);
    assert!(read.iter().all(|m| m.body["id"] == m.msg_id.as_str()));
    assert_eq!(
        stream.stored().await as i64,
        published,
        "nothing stored twice"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_receiver_down_during_a_thousand_sign_ups_gets_every_one() {
    let mut receiver = WebhookReceiver::start().await;
    let seed = WebhookSeed {
        name: "test".into(),
        url: receiver.url.clone(),
        secret: SECRET.into(),
        topics: vec!["identity.user.signed_up".into()],
    };
    let app = TestApp::builder()
        .config(move |c| {
            c.events.webhooks = vec![seed];
            c.events.allow_private_targets = true;
            patient(c);
        })
        .spawn()
        .await;
    receiver.go_down();
    let done = AtomicUsize::new(0);
    sign_up(&[&app], SIGN_UPS, "hook", &done).await;
    let delivered = app
        .count(
            "SELECT COUNT(*) FROM deliveries WHERE sink = 'webhook:test' AND status = 'delivered'",
        )
        .await;
    assert_eq!(delivered, 0, "the receiver was down");
    receiver.come_back().await;
    let got = receiver.wait_for(SIGN_UPS, Duration::from_secs(60)).await;
    let ids: HashSet<_> = got
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(ids.len(), SIGN_UPS, "every sign-up, each once");
    assert_eq!(got.len(), SIGN_UPS);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_postgres_send_each_event_once_and_in_order() {
    if TestBackend::from_env() != TestBackend::Postgres {
        eprintln!("skipping: instances share a PostgreSQL database (SESAME_TEST_BACKEND=postgres)");
        return;
    }
    let Some(stream) = TestStream::new().await else {
        return;
    };
    let receiver = WebhookReceiver::start().await;
    let configure = |builder: TestAppBuilder| {
        let seed = WebhookSeed {
            name: "test".into(),
            url: receiver.url.clone(),
            secret: SECRET.into(),
            topics: Vec::new(),
        };
        let (name, prefix) = (stream.name.clone(), stream.prefix.clone());
        builder.config(move |c| {
            c.events.webhooks = vec![seed];
            c.events.allow_private_targets = true;
            c.nats_url = Some(nats_url());
            c.events.nats_stream = name;
            c.events.nats_subject_prefix = prefix;
            patient(c);
        })
    };
    let first = configure(TestApp::builder()).spawn().await;
    let second = configure(TestApp::builder().database_of(&first))
        .spawn()
        .await;
    // 500 sign-ups and three sign-ins each, spread over both: 2,000 events.
    let users = 500;
    let done = AtomicUsize::new(0);
    sign_up(&[&first, &second], users, "pair", &done).await;
    futures_util::stream::iter(0..users * 3)
        .map(|i| {
            let app = if i % 2 == 0 { &first } else { &second };
            async move {
                let resp = app
                    .sign_in(&format!("pair{}@example.com", i % users), PASSWORD)
                    .await;
                assert_eq!(resp.status, 200, "{}", resp.body);
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let events = first.count("SELECT COUNT(*) FROM outbox").await;
    assert_eq!(events, 2000);
    let got = receiver.wait_for(2000, Duration::from_secs(60)).await;
    all_published(&first).await;
    let ids: HashSet<_> = got
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(
        (got.len(), ids.len()),
        (2000, 2000),
        "each event received once"
    );
    let read = stream.read("identity.>").await;
    assert_eq!(read.len(), 2000);
    let mut last: HashMap<String, i64> = HashMap::new();
    for m in &read {
        let seq = m.body["aggseq"].as_i64().unwrap();
        let before = last.insert(m.body["subject"].as_str().unwrap().to_owned(), seq);
        assert_eq!(
            seq,
            before.unwrap_or(0) + 1,
            "a principal's events in sequence: {m:?}"
        );
    }
    second.stop().await;
    first.stop().await;
    stream.finish().await;
}
