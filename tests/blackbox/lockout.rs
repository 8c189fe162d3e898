//! Brute-force defences: the lock after consecutive failures, its back-off, and
//! the rate limits per login and per client IP.

use serde_json::json;
use sesame_app::{LockoutPolicy, RateLimits};
use sesame_core::Rate;
use sesame_tests::{PASSWORD, TestApp};
use time::Duration;

fn verifications(app: &TestApp) -> u64 {
    app.app.hasher().verifications()
}

#[tokio::test]
async fn a_hundred_wrong_passwords_lock_the_account_without_hashing_and_without_telling() {
    let app = TestApp::builder().manual_clock().spawn().await;
    app.register("ada@example.com").await;
    let before = verifications(&app);

    let mut locked_bodies = Vec::new();
    for attempt in 1..=100 {
        let resp = app
            .sign_in("ada@example.com", "wrong password, attempt")
            .await;
        if attempt <= 5 {
            resp.assert_problem(401, "invalid_credentials");
        } else {
            resp.assert_problem(423, "account_locked");
            assert_eq!(resp.headers["retry-after"], "60");
            locked_bodies.push(resp.body.clone());
        }
    }
    // Only the five attempts before the lock ran the hasher.
    assert_eq!(verifications(&app) - before, 5);

    // The right password during the lock gets exactly the same answer.
    let right = app.sign_in("ada@example.com", PASSWORD).await;
    right.assert_problem(423, "account_locked");
    assert_eq!(right.body, locked_bodies[0]);
    assert_eq!(right.headers["retry-after"], "60");
    assert_eq!(verifications(&app) - before, 5);

    // Every attempt is on record, and the lock is audited and announced once.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM login_attempts WHERE success = FALSE")
            .await,
        101
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM login_attempts WHERE reason = 'account_locked'")
            .await,
        96
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE event = 'account.locked'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE topic = 'identity.account.locked'")
            .await,
        1
    );

    // After the lock, the right password works and the count starts over.
    app.clock.advance(Duration::seconds(60));
    let ok = app.sign_in("ada@example.com", PASSWORD).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM principals WHERE failed_attempts = 0 AND locked_until IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM login_attempts WHERE success = TRUE")
            .await,
        1
    );
}

#[tokio::test]
async fn each_failure_after_a_lock_doubles_the_next_one() {
    let app = TestApp::builder().manual_clock().spawn().await;
    app.register("ada@example.com").await;
    for _ in 0..5 {
        app.sign_in("ada@example.com", "wrong").await;
    }
    let first = app.sign_in("ada@example.com", "wrong").await;
    assert_eq!(first.headers["retry-after"], "60");
    app.clock.advance(Duration::seconds(61));
    // One more failure after the lock: locked again, twice as long.
    app.sign_in("ada@example.com", "wrong")
        .await
        .assert_problem(401, "invalid_credentials");
    let second = app.sign_in("ada@example.com", PASSWORD).await;
    second.assert_problem(423, "account_locked");
    assert_eq!(second.headers["retry-after"], "120");
}

#[tokio::test]
async fn an_identifier_that_belongs_to_nobody_locks_the_same_way() {
    let app = TestApp::builder().manual_clock().spawn().await;
    app.register("ada@example.com").await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..7 {
        known.push(app.sign_in("ada@example.com", "wrong").await);
        unknown.push(app.sign_in("nobody@example.com", "wrong").await);
    }
    for (k, u) in known.iter().zip(&unknown) {
        assert_eq!((k.status, &k.body), (u.status, &u.body));
        assert_eq!(k.headers.get("retry-after"), u.headers.get("retry-after"));
    }
    unknown[6].assert_problem(423, "account_locked");
}

#[tokio::test]
async fn sign_ins_are_limited_per_identifier_and_per_address() {
    let app = TestApp::builder()
        .manual_clock()
        .config(|c| {
            c.lockout = LockoutPolicy {
                max_failures: 0,
                ..LockoutPolicy::default()
            };
            c.rate_limits = RateLimits::uniform(Rate::new(3, 60), Rate::new(6, 60));
        })
        .spawn()
        .await;
    app.register("ada@example.com").await;
    for _ in 0..3 {
        app.sign_in("ada@example.com", "wrong")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    let limited = app.sign_in("ada@example.com", PASSWORD).await;
    limited.assert_problem(429, "rate_limited");
    assert_eq!(limited.headers["retry-after"], "20");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM login_attempts WHERE reason = 'rate_limited'")
            .await,
        1
    );
    // Other identifiers from the same address, until the address's budget is spent.
    for i in 0..2 {
        app.sign_in(&format!("other{i}@example.com"), "wrong")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    app.sign_in("other9@example.com", "wrong")
        .await
        .assert_problem(429, "rate_limited");
    // The budget refills with time.
    app.clock.advance(Duration::seconds(60));
    assert_eq!(app.sign_in("ada@example.com", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn code_requests_and_confirmations_are_limited_too() {
    let app = TestApp::builder()
        .manual_clock()
        .config(|c| {
            c.code_resend_cooldown_secs = 0;
            c.rate_limits = RateLimits::uniform(Rate::new(2, 60), Rate::new(100, 60));
        })
        .spawn()
        .await;
    for _ in 0..2 {
        assert_eq!(
            app.send_code("email", "ada@example.com", "register", None)
                .await
                .status,
            202
        );
    }
    app.send_code("email", "ada@example.com", "register", None)
        .await
        .assert_problem(429, "rate_limited");
    let body =
        json!({"login": {"type": "email", "identifier": "bob@example.com"}, "code": "000000"});
    for _ in 0..2 {
        let resp = app.post("/v1/verifications/confirm", &body).await;
        assert_eq!(resp.status, 400, "{}", resp.body);
    }
    app.post("/v1/verifications/confirm", &body)
        .await
        .assert_problem(429, "rate_limited");
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    for (trusted, expected) in [
        (vec![], "127.0.0.1"),
        (vec!["127.0.0.1".to_owned()], "203.0.113.9"),
    ] {
        let app = TestApp::builder()
            .config(|c| c.trusted_proxies = trusted.clone())
            .spawn()
            .await;
        let body = json!({"login": {"type": "email", "identifier": "ada@example.com"}, "password": "wrong"});
        let resp = app
            .send(
                app.client
                    .post(app.url("/v1/sessions"))
                    .header("x-forwarded-for", "203.0.113.9")
                    .json(&body),
            )
            .await;
        resp.assert_problem(401, "invalid_credentials");
        assert_eq!(app.db.text("SELECT ip FROM login_attempts").await, expected);
    }
}

#[tokio::test]
async fn a_login_that_belongs_to_nobody_is_remembered_as_long_as_a_real_one() {
    let app = TestApp::builder().manual_clock().spawn().await;
    app.register("ada@example.com").await;
    for email in ["ada@example.com", "nobody@example.com"] {
        for _ in 0..5 {
            app.sign_in(email, "wrong")
                .await
                .assert_problem(401, "invalid_credentials");
        }
    }
    // Hours later, one more failure locks both again, twice as long: waiting
    // does not tell who exists.
    app.clock.advance(Duration::hours(3));
    for email in ["ada@example.com", "nobody@example.com"] {
        app.sign_in(email, "wrong")
            .await
            .assert_problem(401, "invalid_credentials");
        let locked = app.sign_in(email, PASSWORD).await;
        locked.assert_problem(423, "account_locked");
        assert_eq!(locked.headers["retry-after"], "120", "{email}");
    }
}
