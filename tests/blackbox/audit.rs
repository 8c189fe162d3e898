//! The audit log: one row per security event, written with the change, naming
//! the principal, address and user agent, and holding no secret.

use serde_json::json;
use sesame_tests::{PASSWORD, TestApp};

const AGENT: &str = "audit-test/1.0";

#[tokio::test]
async fn every_security_event_is_audited_with_who_and_where_and_no_secret() {
    let mut app = TestApp::spawn().await;
    app.client = reqwest::Client::builder()
        .user_agent(AGENT)
        .build()
        .unwrap();
    let mut secrets = vec![PASSWORD.to_owned()];

    let reg = app.register("ada@example.com").await;
    secrets.push(reg["access_token"].as_str().unwrap().to_owned());
    secrets.push(reg["refresh_token"].as_str().unwrap().to_owned());
    app.sign_in("ada@example.com", "not my password").await;
    let session = app.sign_in("ada@example.com", PASSWORD).await.body;
    let token = session["access_token"].as_str().unwrap().to_owned();
    let refreshed = app
        .refresh(session["refresh_token"].as_str().unwrap())
        .await
        .body;
    secrets.push(token.clone());
    secrets.push(refreshed["refresh_token"].as_str().unwrap().to_owned());

    app.send_code("email", "ada@example.com", "verify", None)
        .await;
    let code = app.last_code("ada@example.com").await;
    // The owner confirms while signed in, so the account keeps its password.
    let confirmed = app
        .send(
            app.client
                .post(app.url("/v1/verifications/confirm"))
                .bearer_auth(&token)
                .json(&json!({"login": {"type": "email", "identifier": "ada@example.com"}, "code": code})),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    secrets.push(code);

    let bound = app
        .send(
            app.client
                .post(app.url("/v1/me/logins"))
                .bearer_auth(&token)
                .json(&json!({"login": {"type": "username", "identifier": "ada_l"}})),
        )
        .await;
    assert_eq!(bound.status, 201, "{}", bound.body);
    let unbound = app
        .delete(
            &format!("/v1/me/logins/{}", bound.body["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(unbound.status, 204, "{}", unbound.body);

    let new_password = "a different long passphrase 42";
    let changed = app
        .send(
            app.client
                .put(app.url("/v1/me/password"))
                .bearer_auth(&token)
                .json(&json!({"current_password": PASSWORD, "new_password": new_password})),
        )
        .await;
    assert_eq!(changed.status, 204, "{}", changed.body);
    secrets.push(new_password.to_owned());
    let fresh = app.sign_in("ada@example.com", new_password).await.body;
    let fresh_token = fresh["access_token"].as_str().unwrap();
    assert_eq!(
        app.delete("/v1/sessions/current", fresh_token).await.status,
        204
    );

    for _ in 0..5 {
        app.sign_in("ada@example.com", "wrong again").await;
    }

    let events: Vec<String> = app
        .db
        .dump("audit_log")
        .await
        .lines()
        .map(str::to_owned)
        .collect();
    for expected in [
        "user.signed_up",
        "user.sign_in_failed",
        "user.signed_in",
        "login_method.verified",
        "login_method.bound",
        "login_method.unbound",
        "password.changed",
        "session.revoked",
        "account.locked",
        "signing_key.created",
    ] {
        assert!(
            events.iter().any(|row| row.contains(expected)),
            "no {expected} in {events:#?}"
        );
    }
    // Every event about the principal names where it came from.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE principal_id IS NOT NULL
             AND (ip IS NULL OR ip <> '127.0.0.1' OR user_agent IS NULL OR user_agent <> '{AGENT}')"
        ))
        .await,
        0
    );
    // And none holds a password, a code or a token.
    let all = events.join("\n");
    for secret in &secrets {
        assert!(
            !all.contains(secret.as_str()),
            "a secret is in the audit log"
        );
    }
}
