//! Bounded state: the sweeper deletes what has ended and nothing live, and a
//! principal's sessions are capped.

use serde_json::json;
use sesame_app::RetentionPolicy;
use sesame_tests::{PASSWORD, TestApp};
use time::Duration;

fn s(v: &serde_json::Value) -> &str {
    v.as_str().unwrap()
}

#[tokio::test]
async fn the_sweeper_removes_ended_rows_and_nothing_live() {
    let app = TestApp::builder()
        .manual_clock()
        .config(|c| {
            c.code_resend_cooldown_secs = 0;
            c.retention = RetentionPolicy {
                expired_codes_secs: 60,
                used_refresh_tokens_secs: 3600,
                ended_sessions_secs: 3600,
                login_attempts_secs: 7200,
                ..RetentionPolicy::default()
            };
        })
        .spawn()
        .await;
    // Long ago: a revoked session, a rotated token, a code, two attempts.
    let first = app.register("ada@example.com").await;
    let old = app.sign_in("ada@example.com", PASSWORD).await.body;
    let old_next = app.refresh(s(&old["refresh_token"])).await.body;
    assert_eq!(
        app.delete("/v1/sessions/current", s(&first["access_token"]))
            .await
            .status,
        204
    );
    app.send_code("email", "ada@example.com", "verify", None)
        .await;
    app.sign_in("nobody@example.com", "wrong")
        .await
        .assert_problem(401, "invalid_credentials");
    app.clock.advance(Duration::seconds(7201));

    // Now: a live session with a rotated token, a live code, an attempt.
    let now = app.sign_in("ada@example.com", PASSWORD).await.body;
    let now_next = app.refresh(s(&now["refresh_token"])).await.body;
    app.send_code("email", "ada@example.com", "verify", None)
        .await;
    app.sign_in("nobody@example.com", "wrong")
        .await
        .assert_problem(401, "invalid_credentials");
    app.app.flush_deliveries().await;

    let swept = app.app.sweep().await.unwrap();
    assert_eq!(swept.codes, 1, "{swept:?}");
    assert_eq!(swept.sessions, 1, "{swept:?}");
    assert_eq!(swept.refresh_tokens, 1, "{swept:?}");
    assert_eq!(swept.login_attempts, 2, "{swept:?}");
    let remaining = [
        ("SELECT COUNT(*) FROM sessions", 2),
        ("SELECT COUNT(*) FROM refresh_tokens", 3),
        ("SELECT COUNT(*) FROM verification_codes", 1),
        ("SELECT COUNT(*) FROM login_attempts", 2),
    ];
    for (sql, n) in remaining {
        assert_eq!(app.count(sql).await, n, "{sql}");
    }
    // Re-running it is harmless.
    assert_eq!(app.app.sweep().await.unwrap(), Default::default());
    for (sql, n) in remaining {
        assert_eq!(app.count(sql).await, n, "{sql}");
    }
    // What is live still works.
    assert_eq!(app.refresh(s(&old_next["refresh_token"])).await.status, 200);
    assert_eq!(
        app.get("/v1/me", now_next["access_token"].as_str())
            .await
            .status,
        200
    );
    // An identifier that belongs to nobody is kept only as a keyed hash.
    let kept = app
        .db
        .text("SELECT identifier FROM login_attempts WHERE principal_id IS NULL")
        .await;
    assert!(
        kept.starts_with("hmac:") && !kept.contains("nobody"),
        "{kept}"
    );
}

#[tokio::test]
async fn a_new_session_beyond_the_cap_revokes_the_oldest() {
    let app = TestApp::builder()
        .config(|c| c.max_sessions_per_principal = 3)
        .spawn()
        .await;
    let first = app.register("ada@example.com").await;
    let mut later = Vec::new();
    for _ in 0..3 {
        later.push(app.sign_in("ada@example.com", PASSWORD).await.body);
    }
    app.get("/v1/me", first["access_token"].as_str())
        .await
        .assert_problem(401, "invalid_token");
    for grant in &later {
        assert_eq!(
            app.get("/v1/me", grant["access_token"].as_str())
                .await
                .status,
            200
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions WHERE revoke_reason = 'session_limit'")
            .await,
        1
    );
    let listed = app
        .get("/v1/me/sessions", later[2]["access_token"].as_str())
        .await;
    assert_eq!(
        listed.body.as_array().unwrap().len(),
        3,
        "{}",
        json!(listed.body)
    );
}

#[tokio::test]
async fn events_every_sink_had_go_after_the_retention_period_and_the_others_stay() {
    let receiver = sesame_tests::webhooks::WebhookReceiver::start().await;
    let url = receiver.url.clone();
    let app = TestApp::builder()
        .manual_clock()
        .config(move |c| {
            c.retention = RetentionPolicy {
                delivered_events_secs: 3600,
                ..RetentionPolicy::default()
            };
            c.events.webhooks = vec![sesame_app::events::WebhookSeed {
                name: "down".into(),
                url,
                secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
                topics: vec!["identity.user.signed_in".into()],
            }];
            c.events.allow_private_targets = true;
            c.events.retry_schedule_ms = Some(vec![0, 7_200_000]);
            c.events.poll_interval_ms = 20;
        })
        .spawn()
        .await;
    // The endpoint answers 503: the sign-in's event waits for it.
    receiver.answer(&[], 503);
    app.register("kept@example.com").await;
    app.sign_in("kept@example.com", PASSWORD).await;
    let delivered = "SELECT COUNT(*) FROM deliveries WHERE sink = 'log' AND status = 'delivered'";
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.count(delivered).await < 2 || receiver.received().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay did not run"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(app.app.sweep().await.unwrap().events, 0, "too recent");
    app.clock.advance(Duration::seconds(3601));
    let swept = app.app.sweep().await.unwrap();
    assert_eq!(swept.events, 1, "{swept:?}");
    let left = app.db.texts("SELECT topic FROM outbox").await;
    assert_eq!(
        left,
        ["identity.user.signed_in"],
        "the webhook has not had it"
    );
    app.stop().await;
}
