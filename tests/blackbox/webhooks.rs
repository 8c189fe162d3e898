//! Standard Webhooks delivery: every request verifies with an independent
//! implementation; failures are retried with the same `webhook-id`; `410`
//! disables the endpoint; the last attempt leaves a delivery failed; private
//! targets are refused unless allowed.

use crate::admin::{id_of, key_with};
use sesame::{Config, Hooks, Server};
use sesame_app::events::WebhookSeed;
use sesame_tests::webhooks::{WebhookReceiver, verified_by_standardwebhooks};
use sesame_tests::{TestApp, TestAppBuilder};
use std::time::Duration;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PATIENCE: Duration = Duration::from_secs(20);

/// A server posting `topics` to `receiver`, retrying after milliseconds.
fn posting_to(receiver: &WebhookReceiver, topics: &[&str], schedule_ms: &[u64]) -> TestAppBuilder {
    let seed = WebhookSeed {
        name: "test".into(),
        url: receiver.url.clone(),
        secret: SECRET.into(),
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
    };
    let schedule = schedule_ms.to_vec();
    TestApp::builder().config(move |c: &mut Config| {
        c.events.webhooks = vec![seed];
        c.events.allow_private_targets = true;
        c.events.retry_schedule_ms = Some(schedule);
        c.events.poll_interval_ms = 20;
    })
}

/// The delivery rows of the test endpoint: (status, attempts), oldest event first.
async fn deliveries(app: &TestApp) -> Vec<(String, i64)> {
    let rows = app
        .db
        .text(
            "SELECT COALESCE(string_agg(status || ':' || CAST(attempts AS TEXT), ',' ORDER BY event_id), '')
             FROM deliveries WHERE sink = 'webhook:test'",
        )
        .await;
    rows.split(',')
        .filter(|r| !r.is_empty())
        .map(|r| {
            let (status, attempts) = r.split_once(':').unwrap();
            (status.to_owned(), attempts.parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn every_delivery_verifies_with_an_independent_library() {
    let receiver = WebhookReceiver::start().await;
    let app = posting_to(&receiver, &["identity.user.signed_up"], &[0, 10])
        .spawn()
        .await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(id_of(&app.register(&format!("hook{n}@example.com")).await));
    }
    let got = receiver.wait_for(3, PATIENCE).await;
    assert_eq!(got.len(), 3);
    for r in &got {
        let body = r.json();
        assert_eq!(r.header("content-type"), "application/cloudevents+json");
        assert_eq!(r.header("webhook-id"), body["id"].as_str().unwrap());
        assert_eq!(body["type"], "identity.user.signed_up");
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["aggseq"], 1, "a principal's first event");
        assert_eq!(body["actorkind"], "principal");
        assert_eq!(body["actorid"], body["subject"]);
        assert!(ids.contains(&body["subject"].as_str().unwrap().to_owned()));
        assert!(r.header("webhook-signature").starts_with("v1,"));
        let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
        let now = sesame_core::Clock::now(&sesame_core::SystemClock).unix_timestamp();
        assert!((ts - now).abs() < 60, "{ts} is this attempt's time");
    }
    let bodies: Vec<_> = got.iter().map(|r| r.json()).collect();
    sesame_tests::assert_valid_events(&bodies);
    if let Some(verified) = verified_by_standardwebhooks(SECRET, &got) {
        assert_eq!(verified, 3);
        // A changed byte does not verify.
        let mut forged = got[0].clone();
        forged.body[10] ^= 1;
        assert_eq!(verified_by_standardwebhooks(SECRET, &[forged]), Some(0));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_again_with_one_id() {
    let receiver = WebhookReceiver::start().await;
    receiver.answer(&[500, 500, 500], 200);
    let app = posting_to(
        &receiver,
        &["identity.user.signed_up"],
        &[0, 10, 10, 10, 10],
    )
    .spawn()
    .await;
    app.register("retried@example.com").await;
    let got = receiver.wait_for(4, PATIENCE).await;
    let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 500, 200]);
    assert!(
        got.iter()
            .all(|r| r.header("webhook-id") == got[0].header("webhook-id"))
    );
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "the same bytes each time"
    );
    if let Some(verified) = verified_by_standardwebhooks(SECRET, &got) {
        assert_eq!(verified, 4);
    }
    wait_until(&app, |rows| rows == [("delivered".to_owned(), 4)]).await;
    app.stop().await;
}

#[tokio::test]
async fn gone_disables_the_endpoint() {
    let receiver = WebhookReceiver::start().await;
    receiver.answer(&[], 410);
    let app = posting_to(&receiver, &[], &[0, 10, 10]).spawn().await;
    app.register("gone@example.com").await;
    receiver.wait_for(1, PATIENCE).await;
    wait_until(&app, |rows| rows.iter().all(|(s, _)| s == "failed")).await;
    let reason = app
        .db
        .text("SELECT disabled_reason FROM webhook_endpoints WHERE name = 'test'")
        .await;
    assert!(reason.contains("410"), "{reason}");

    // Later events reach the log and never the endpoint.
    app.register("after@example.com").await;
    let logged = "SELECT COUNT(*) FROM deliveries d JOIN outbox o ON o.id = d.event_id
                  WHERE d.sink = 'log' AND d.status = 'delivered'";
    let before = deliveries(&app).await.len();
    let events = app.count("SELECT COUNT(*) FROM outbox").await;
    wait_for_count(&app, logged, events).await;
    assert_eq!(deliveries(&app).await.len(), before);
    assert_eq!(receiver.received().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn the_last_attempt_leaves_the_delivery_failed() {
    let receiver = WebhookReceiver::start().await;
    receiver.answer(&[], 503);
    let app = posting_to(&receiver, &["identity.user.signed_up"], &[0, 10, 10])
        .spawn()
        .await;
    app.register("dead@example.com").await;
    wait_until(&app, |rows| rows == [("failed".to_owned(), 3)]).await;
    assert_eq!(receiver.received().len(), 3);
    let error = app
        .db
        .text("SELECT last_error FROM deliveries WHERE sink = 'webhook:test'")
        .await;
    assert!(error.contains("503"), "{error}");
    app.stop().await;
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let receiver = WebhookReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    config.events.webhooks = vec![WebhookSeed {
        name: "inside".into(),
        url: receiver.url.clone(),
        secret: SECRET.into(),
        topics: Vec::new(),
    }];
    let refused = Server::start(&config, Hooks::default())
        .await
        .err()
        .unwrap();
    let message = refused.to_string();
    assert!(message.contains("private or loopback"), "{message}");

    config.events.webhooks[0].secret = "not-a-secret".into();
    config.events.allow_private_targets = true;
    let refused = Server::start(&config, Hooks::default())
        .await
        .err()
        .unwrap();
    assert!(refused.to_string().contains("whsec_"), "{refused}");
}

/// Waits until the test endpoint's delivery rows satisfy `done`.
async fn wait_until(app: &TestApp, done: impl Fn(Vec<(String, i64)>) -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let rows = deliveries(app).await;
        if !rows.is_empty() && done(rows.clone()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries stayed {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `sql` counts `n`.
async fn wait_for_count(app: &TestApp, sql: &str, n: i64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while app.count(sql).await < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sql} stayed below {n}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn endpoints_are_managed_through_the_admin_api_and_secrets_rotate() {
    let receiver = WebhookReceiver::start().await;
    let app = posting_to(&receiver, &["identity.user.signed_up"], &[0, 10])
        .spawn()
        .await;
    let (key, _) = key_with(&app, &["webhooks:manage"]).await;
    let put = |name: &str, body: serde_json::Value| {
        let req = app
            .client
            .put(app.url(&format!("/v1/admin/webhooks/{name}")))
            .bearer_auth(&key)
            .json(&body);
        app.send(req)
    };
    // Bad input, each with its field.
    let bad = put("crm", serde_json::json!({"url": "ftp://crm.example/x"})).await;
    bad.assert_problem(400, "validation_failed");
    assert_eq!(
        bad.field_errors(),
        [("url".to_owned(), "invalid".to_owned())]
    );
    let bad = put(
        "crm",
        serde_json::json!({"url": receiver.url, "topics": ["identity.nothing"]}),
    )
    .await;
    assert_eq!(
        bad.field_errors(),
        [("topics".to_owned(), "unknown_topic".to_owned())]
    );
    let bad = put(
        "crm",
        serde_json::json!({"url": receiver.url, "secret": "hunter2"}),
    )
    .await;
    assert_eq!(
        bad.field_errors(),
        [("secret".to_owned(), "invalid_format".to_owned())]
    );
    let bad = put("Not A Name", serde_json::json!({"url": receiver.url})).await;
    assert_eq!(
        bad.field_errors(),
        [("name".to_owned(), "invalid_format".to_owned())]
    );
    // The configured endpoint is the configuration's.
    put("test", serde_json::json!({"url": receiver.url}))
        .await
        .assert_problem(403, "forbidden");

    // Made: the secret is shown once, and listed never.
    let made = put(
        "crm",
        serde_json::json!({"url": receiver.url, "topics": ["identity.user.*"]}),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let first = made.body["secret"].as_str().unwrap().to_owned();
    assert!(first.starts_with("whsec_"));
    let listed = app
        .send(
            app.client
                .get(app.url("/v1/admin/webhooks"))
                .bearer_auth(&key),
        )
        .await;
    assert_eq!(listed.status, 200);
    assert!(!listed.body.to_string().contains(&first));
    let names: Vec<&str> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["crm", "test"]);
    // Replaced: the secret stays, nothing is shown.
    let again = put(
        "crm",
        serde_json::json!({"url": receiver.url, "topics": ["identity.user.*"]}),
    )
    .await;
    assert_eq!(again.status, 200);
    assert!(again.body.get("secret").is_none());

    app.register("first@example.com").await;
    // One delivery to each endpoint, each signed with its own secret.
    let got = receiver.wait_for(2, PATIENCE).await;
    for secret in [first.as_str(), SECRET] {
        if let Some(n) = verified_by_standardwebhooks(secret, &got) {
            assert_eq!(n, 1);
        }
    }

    // Rotated: both secrets sign for a while; each verifies alone.
    let rotated = app
        .send(
            app.client
                .post(app.url("/v1/admin/webhooks/crm/secret"))
                .bearer_auth(&key),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let second = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert!(rotated.body["previous_secret_until"].is_string());
    app.register("second@example.com").await;
    let got = receiver.wait_for(4, PATIENCE).await;
    let signed_twice: Vec<_> = got
        .iter()
        .filter(|r| r.header("webhook-signature").split(' ').count() == 2)
        .cloned()
        .collect();
    assert_eq!(
        signed_twice.len(),
        1,
        "crm's delivery carries two signatures"
    );
    for secret in [&first, &second] {
        if let Some(n) = verified_by_standardwebhooks(secret, &signed_twice) {
            assert_eq!(n, 1);
        }
    }

    // Deleted: gone from the list, and a second delete finds nothing.
    let gone = app
        .send(
            app.client
                .delete(app.url("/v1/admin/webhooks/crm"))
                .bearer_auth(&key),
        )
        .await;
    assert_eq!(gone.status, 204);
    app.send(
        app.client
            .delete(app.url("/v1/admin/webhooks/crm"))
            .bearer_auth(&key),
    )
    .await
    .assert_problem(404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let elsewhere = WebhookReceiver::start().await;
    let receiver = WebhookReceiver::start().await;
    receiver.answer(&[], 307);
    receiver.answer_header("location", &elsewhere.url);
    let app = posting_to(&receiver, &["identity.user.signed_up"], &[0, 10])
        .spawn()
        .await;
    app.register("moved@example.com").await;
    wait_until(&app, |rows| rows == [("failed".to_owned(), 2)]).await;
    assert_eq!(receiver.received().len(), 2);
    assert!(elsewhere.received().is_empty(), "the redirect was followed");
    let error = app
        .db
        .text("SELECT last_error FROM deliveries WHERE sink = 'webhook:test'")
        .await;
    assert!(error.contains("307"), "{error}");
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_slower_than_the_timeout_is_tried_again() {
    let receiver = WebhookReceiver::start().await;
    receiver.answer_after(Duration::from_secs(3));
    let app = posting_to(&receiver, &["identity.user.signed_up"], &[0, 10])
        .config(|c| c.events.attempt_timeout_secs = 1)
        .spawn()
        .await;
    app.register("slow@example.com").await;
    wait_until(&app, |rows| rows == [("failed".to_owned(), 2)]).await;
    let got = receiver.received();
    assert_eq!(got.len(), 2, "two attempts, each cut off");
    let error = app
        .db
        .text("SELECT last_error FROM deliveries WHERE sink = 'webhook:test'")
        .await;
    assert!(
        error.contains("timed out") || error.contains("timeout"),
        "{error}"
    );
    app.stop().await;
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let receiver = WebhookReceiver::start().await;
    receiver.answer(&[429], 200);
    receiver.answer_header("retry-after", "1");
    let app = posting_to(&receiver, &["identity.user.signed_up"], &[0, 10, 10])
        .spawn()
        .await;
    app.register("throttled@example.com").await;
    let got = receiver.wait_for(2, PATIENCE).await;
    assert_eq!((got[0].status, got[1].status), (429, 200));
    let waited = got[1].at - got[0].at;
    assert!(
        waited >= Duration::from_secs(1),
        "retried after {waited:?}, not after Retry-After"
    );
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    wait_until(&app, |rows| rows == [("delivered".to_owned(), 2)]).await;
    app.stop().await;
}
