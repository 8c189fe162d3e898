//! Verification codes: hashed at rest, ten minutes, five tries, one use,
//! a resend cooldown, and the same answer whether or not the login exists.

use serde_json::json;
use sesame_tests::{TestApp, extract_code};
use time::Duration;

async fn confirm(app: &TestApp, email: &str, code: &str) -> sesame_tests::Resp {
    let body = json!({"login": {"type": "email", "identifier": email}, "code": code});
    app.post("/v1/verifications/confirm", &body).await
}

/// Confirms as the signed-in owner.
async fn confirm_as(app: &TestApp, token: &str, email: &str, code: &str) -> sesame_tests::Resp {
    let body = json!({"login": {"type": "email", "identifier": email}, "code": code});
    let req = app.client.post(app.url("/v1/verifications/confirm"));
    app.send(req.bearer_auth(token).json(&body)).await
}

fn wrong(code: &str) -> String {
    if code == "000000" {
        "000001".into()
    } else {
        "000000".into()
    }
}

#[tokio::test]
async fn a_verify_code_marks_the_login_verified() {
    let app = TestApp::spawn().await;
    let reg = app.register("ada@example.com").await;
    assert_eq!(
        app.send_code("email", "Ada@Example.com", "verify", None)
            .await
            .status,
        202
    );
    let mail = app.messages_to("ada@example.com").await;
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0].contains("Subject: Your Sesame code: "),
        "{}",
        mail[0]
    );
    let code = extract_code(&mail[0]).unwrap();
    let token = reg["access_token"].as_str().unwrap();
    let resp = confirm_as(&app, token, "ada@example.com", &code).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(resp.body["verified_at"].is_string());
    let me = app.get("/v1/me", reg["access_token"].as_str()).await;
    assert!(
        me.body["logins"][0]["verified_at"].is_string(),
        "{}",
        me.body
    );
    // A used code cannot be used again.
    confirm(&app, "ada@example.com", &code)
        .await
        .assert_problem(400, "invalid_code");
}

#[tokio::test]
async fn codes_are_stored_only_as_a_mac() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com").await;
    app.send_code("email", "ada@example.com", "verify", None)
        .await;
    let code = app.last_code("ada@example.com").await;
    let hashes = app
        .db
        .blobs("SELECT code_hash FROM verification_codes")
        .await;
    assert_eq!(hashes.len(), 1);
    assert_eq!(hashes[0].len(), 32);
    assert!(!hashes[0].windows(6).any(|w| w == code.as_bytes()));
    let dump = app.db.dump("verification_codes").await;
    assert!(dump.contains("ada@example.com"), "{dump}");
    assert!(!dump.contains(&code), "the code is in the table: {dump}");
}

#[tokio::test]
async fn codes_expire_after_ten_minutes() {
    let app = TestApp::builder().manual_clock().spawn().await;
    app.register("ada@example.com").await;
    app.send_code("email", "ada@example.com", "verify", None)
        .await;
    let code = app.last_code("ada@example.com").await;
    app.clock.advance(Duration::minutes(10));
    confirm(&app, "ada@example.com", &code)
        .await
        .assert_problem(400, "code_expired");
}

#[tokio::test]
async fn five_wrong_tries_kill_the_code() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com").await;
    app.send_code("email", "ada@example.com", "verify", None)
        .await;
    let code = app.last_code("ada@example.com").await;
    for _ in 0..5 {
        confirm(&app, "ada@example.com", &wrong(&code))
            .await
            .assert_problem(400, "invalid_code");
    }
    confirm(&app, "ada@example.com", &code)
        .await
        .assert_problem(400, "invalid_code");
    // Guesses that name no flow count on the newest code's own tries.
    assert_eq!(
        app.count("SELECT anonymous_attempts FROM verification_codes")
            .await,
        5
    );
}

#[tokio::test]
async fn resending_waits_for_the_cooldown_and_replaces_the_code() {
    let app = TestApp::builder().manual_clock().spawn().await;
    app.register("ada@example.com").await;
    assert_eq!(
        app.send_code("email", "ada@example.com", "verify", None)
            .await
            .status,
        202
    );
    let first = app.last_code("ada@example.com").await;
    app.clock.advance(Duration::seconds(20));
    let again = app
        .send_code("email", "ada@example.com", "verify", None)
        .await;
    again.assert_problem(429, "rate_limited");
    assert_eq!(again.headers.get("retry-after").unwrap(), "40");
    assert_eq!(app.messages_to("ada@example.com").await.len(), 1);
    app.clock.advance(Duration::seconds(40));
    assert_eq!(
        app.send_code("email", "ada@example.com", "verify", None)
            .await
            .status,
        202
    );
    let second = app.last_code("ada@example.com").await;
    assert_eq!(app.messages_to("ada@example.com").await.len(), 2);
    // Each request is a flow of its own; a confirmation without a flow id
    // names the newest.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM verification_codes").await,
        2
    );
    if first != second {
        confirm(&app, "ada@example.com", &first)
            .await
            .assert_problem(400, "invalid_code");
    }
    assert_eq!(confirm(&app, "ada@example.com", &second).await.status, 200);
}

#[tokio::test]
async fn unknown_identifiers_get_202_and_no_message() {
    let app = TestApp::spawn().await;
    for purpose in ["sign_in", "verify", "reset"] {
        let resp = app
            .send_code("email", "nobody@example.com", purpose, None)
            .await;
        assert_eq!(resp.status, 202, "{purpose}: {}", resp.body);
    }
    let resp = app
        .post(
            "/v1/password-resets",
            &json!({"login": {"type": "email", "identifier": "nobody-else@example.com"}}),
        )
        .await;
    assert_eq!(resp.status, 202);
    assert!(app.messages_to("nobody@example.com").await.is_empty());
    assert!(app.messages_to("nobody-else@example.com").await.is_empty());
    assert!(
        !app.data_dir.join("outbox").join("mail").exists()
            || std::fs::read_dir(app.data_dir.join("outbox/mail"))
                .unwrap()
                .next()
                .is_none()
    );
    // The cooldown answers alike for a login that does not exist.
    app.send_code("email", "nobody@example.com", "sign_in", None)
        .await
        .assert_problem(429, "rate_limited");
}

#[tokio::test]
async fn code_requests_are_validated() {
    let app = TestApp::spawn().await;
    let resp = app.send_code("username", "ada", "sign_in", None).await;
    resp.assert_problem(400, "validation_failed");
    assert_eq!(
        resp.field_errors(),
        [("login.type".to_owned(), "codes_not_supported".to_owned())]
    );
    let resp = app
        .send_code("email", "ada@example.com", "launch_rockets", None)
        .await;
    resp.assert_problem(400, "validation_failed");
    assert_eq!(
        resp.field_errors(),
        [("purpose".to_owned(), "invalid_value".to_owned())]
    );
    app.send_code("email", "new@example.com", "bind", None)
        .await
        .assert_problem(401, "invalid_token");
}

#[tokio::test]
async fn a_strangers_wrong_codes_and_requests_do_not_stop_the_owners_code() {
    let app = TestApp::spawn().await;
    let reg = app.register("ada@example.com").await;
    let token = reg["access_token"].as_str().unwrap();
    let sent = app
        .send_code("email", "ada@example.com", "verify", None)
        .await;
    assert_eq!(sent.status, 202);
    let flow = sent.body["verification_id"].as_str().unwrap().to_owned();
    let code = app.last_code("ada@example.com").await;

    // A stranger, on another address, who knows only the address: five wrong
    // guesses, then a code request of its own.
    let stranger = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 3]))
        .build()
        .unwrap();
    for _ in 0..5 {
        let body = json!({"login": {"type": "email", "identifier": "ada@example.com"}, "code": wrong(&code)});
        let req = stranger
            .post(app.url("/v1/verifications/confirm"))
            .json(&body);
        app.send(req).await.assert_problem(400, "invalid_code");
    }
    let body =
        json!({"login": {"type": "email", "identifier": "ada@example.com"}, "purpose": "verify"});
    let theirs = app
        .send(stranger.post(app.url("/v1/verifications")).json(&body))
        .await;
    assert_eq!(theirs.status, 202, "{}", theirs.body);
    assert_ne!(theirs.body["verification_id"], flow.as_str());
    // The owner's cooldown is the owner's own.
    app.send_code("email", "ada@example.com", "verify", None)
        .await
        .assert_problem(429, "rate_limited");

    // The owner's code, named by its flow, still works.
    let body = json!({
        "login": {"type": "email", "identifier": "ada@example.com"},
        "code": code,
        "verification_id": flow,
    });
    let req = app.client.post(app.url("/v1/verifications/confirm"));
    let confirmed = app.send(req.bearer_auth(token).json(&body)).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    // Using one ends every other live code of the login.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM verification_codes WHERE consumed_at IS NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn unknown_logins_get_a_flow_id_and_store_no_code() {
    let app = TestApp::spawn().await;
    let known = app.register("ada@example.com").await;
    assert!(known["access_token"].is_string());
    let a = app
        .send_code("email", "nobody@example.com", "sign_in", None)
        .await;
    let b = app
        .send_code("email", "ada@example.com", "sign_in", None)
        .await;
    for r in [&a, &b] {
        assert_eq!(r.status, 202);
        let id = r.body["verification_id"].as_str().unwrap();
        assert_eq!(id.len(), 36, "{id}");
    }
    app.app.flush_deliveries().await;
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM verification_codes WHERE identifier = 'nobody@example.com'"
        )
        .await,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM verification_codes").await,
        1
    );
}
