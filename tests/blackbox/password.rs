//! Password changes and resets.

use serde_json::{Value, json};
use sesame_tests::{PASSWORD, TestApp};

const NEW: &str = "a brand new passphrase 42";

async fn put_password(app: &TestApp, token: &str, body: Value) -> sesame_tests::Resp {
    app.send(
        app.client
            .put(app.url("/v1/me/password"))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_revokes_other_sessions() {
    let app = TestApp::spawn().await;
    let reg = app.register("ada@example.com").await;
    let token = reg["access_token"].as_str().unwrap();
    let other = app.sign_in("ada@example.com", PASSWORD).await.body;

    let resp = put_password(&app, token, json!({"new_password": NEW})).await;
    resp.assert_problem(400, "validation_failed");
    assert_eq!(
        resp.field_errors(),
        [("current_password".to_owned(), "required".to_owned())]
    );
    put_password(
        &app,
        token,
        json!({"current_password": "not it at all", "new_password": NEW}),
    )
    .await
    .assert_problem(403, "invalid_current_password");
    let weak = put_password(
        &app,
        token,
        json!({"current_password": PASSWORD, "new_password": "password1"}),
    )
    .await;
    weak.assert_problem(422, "weak_password");

    let ok = put_password(
        &app,
        token,
        json!({"current_password": PASSWORD, "new_password": NEW}),
    )
    .await;
    assert_eq!(ok.status, 204, "{}", ok.body);
    assert_eq!(
        app.get("/v1/me", Some(token)).await.status,
        200,
        "the caller's own session stays"
    );
    app.get("/v1/me", other["access_token"].as_str())
        .await
        .assert_problem(401, "invalid_token");
    app.refresh(other["refresh_token"].as_str().unwrap())
        .await
        .assert_problem(401, "invalid_token");
    app.sign_in("ada@example.com", PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    assert_eq!(app.sign_in("ada@example.com", NEW).await.status, 200);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE topic = 'identity.password.changed'")
            .await,
        1
    );
}

#[tokio::test]
async fn the_last_five_passwords_cannot_come_back() {
    let app = TestApp::spawn().await;
    let reg = app.register("ada@example.com").await;
    let token = reg["access_token"].as_str().unwrap();
    let mut current = PASSWORD.to_owned();
    for i in 1..=5 {
        let next = format!("rotating passphrase number {i}");
        let resp = put_password(
            &app,
            token,
            json!({"current_password": current, "new_password": next}),
        )
        .await;
        if i < 5 {
            assert_eq!(resp.status, 204, "{}", resp.body);
            current = next;
        } else {
            assert_eq!(resp.status, 204);
            current = next;
        }
    }
    // The original is now six passwords back: allowed again. One of the last five is not.
    let reused = put_password(
        &app,
        token,
        json!({"current_password": current, "new_password": "rotating passphrase number 3"}),
    )
    .await;
    reused.assert_problem(422, "password_reused");
    let same = put_password(
        &app,
        token,
        json!({"current_password": current, "new_password": current}),
    )
    .await;
    same.assert_problem(422, "password_reused");
    // Only what the rule needs is kept.
    assert_eq!(app.count("SELECT COUNT(*) FROM password_history").await, 5);
    let back = put_password(
        &app,
        token,
        json!({"current_password": current, "new_password": PASSWORD}),
    )
    .await;
    assert_eq!(back.status, 204, "{}", back.body);
}

#[tokio::test]
async fn a_password_reset_revokes_every_session() {
    let app = TestApp::spawn().await;
    let reg = app.register("ada@example.com").await;
    let other = app.sign_in("ada@example.com", PASSWORD).await.body;
    // Resets go only to verified addresses: verify first.
    app.send_code("email", "ada@example.com", "verify", None)
        .await;
    let code = app.last_code("ada@example.com").await;
    let body = json!({"login": {"type": "email", "identifier": "ada@example.com"}, "code": code});
    assert_eq!(
        app.post("/v1/verifications/confirm", &body).await.status,
        200
    );

    let resp = app
        .post(
            "/v1/password-resets",
            &json!({"login": {"type": "email", "identifier": "ada@example.com"}}),
        )
        .await;
    assert_eq!(resp.status, 202);
    let code = app.last_code("ada@example.com").await;
    let confirm = |pw: &str, code: &str| {
        let body = json!({"login": {"type": "email", "identifier": "ada@example.com"}, "code": code, "new_password": pw});
        let req = app
            .client
            .post(app.url("/v1/password-resets/confirm"))
            .json(&body);
        app.send(req)
    };
    confirm("short", &code)
        .await
        .assert_problem(422, "weak_password");
    assert_eq!(confirm(NEW, &code).await.status, 204);
    for session in [&reg, &other] {
        app.get("/v1/me", session["access_token"].as_str())
            .await
            .assert_problem(401, "invalid_token");
        app.refresh(session["refresh_token"].as_str().unwrap())
            .await
            .assert_problem(401, "invalid_token");
    }
    assert_eq!(app.sign_in("ada@example.com", NEW).await.status, 200);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE topic = 'identity.password.reset'")
            .await,
        1
    );
    confirm("yet another passphrase", &code)
        .await
        .assert_problem(400, "invalid_code");
}

#[tokio::test]
async fn an_unverified_address_gets_no_reset_code() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com").await;
    let resp = app
        .post(
            "/v1/password-resets",
            &json!({"login": {"type": "email", "identifier": "ada@example.com"}}),
        )
        .await;
    assert_eq!(resp.status, 202);
    assert!(app.messages_to("ada@example.com").await.is_empty());
}
