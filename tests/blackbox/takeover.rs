//! Account takeover paths: a stolen token of a passwordless account cannot set
//! a password or change login methods without a recent proof, and an address
//! registered by someone else is reclaimed by its owner's first code.

use serde_json::{Value, json};
use sesame_tests::{PASSWORD, Resp, TestApp};
use time::Duration;

fn email(identifier: &str) -> Value {
    json!({"type": "email", "identifier": identifier})
}

async fn put_password(app: &TestApp, token: &str, body: Value) -> Resp {
    let req = app
        .client
        .put(app.url("/v1/me/password"))
        .bearer_auth(token);
    app.send(req.json(&body)).await
}

async fn reauthenticate(app: &TestApp, token: &str, body: Value) -> Resp {
    let req = app
        .client
        .post(app.url("/v1/sessions/reauthenticate"))
        .bearer_auth(token);
    app.send(req.json(&body)).await
}

/// Signs `address` up without a password; returns the access token.
async fn passwordless(app: &TestApp, address: &str) -> String {
    app.send_code("email", address, "register", None).await;
    let code = app.last_code(address).await;
    let reg = app
        .post(
            "/v1/registrations",
            &json!({"login": email(address), "code": code}),
        )
        .await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    reg.body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_old_session_must_prove_itself_again_before_sensitive_changes() {
    let app = TestApp::builder()
        .manual_clock()
        .config(|c| c.code_resend_cooldown_secs = 0)
        .spawn()
        .await;
    let token = passwordless(&app, "grace@example.com").await;
    // A token stolen later: the session proved itself over five minutes ago.
    app.clock.advance(Duration::seconds(301));
    put_password(
        &app,
        &token,
        json!({"new_password": "the thief's own passphrase"}),
    )
    .await
    .assert_problem(403, "reauthentication_required");
    let bind = json!({"login": {"type": "username", "identifier": "thief"}});
    let req = app
        .client
        .post(app.url("/v1/me/logins"))
        .bearer_auth(&token);
    app.send(req.json(&bind))
        .await
        .assert_problem(403, "reauthentication_required");
    let me = app.get("/v1/me", Some(&token)).await;
    let login_id = me.body["logins"][0]["id"].as_str().unwrap();
    app.delete(&format!("/v1/me/logins/{login_id}"), &token)
        .await
        .assert_problem(403, "reauthentication_required");
    assert_eq!(app.count("SELECT COUNT(*) FROM passwords").await, 0);

    // Bad re-authentication bodies.
    reauthenticate(&app, &token, json!({"code": "123456"}))
        .await
        .assert_problem(400, "validation_failed");
    reauthenticate(&app, &token, json!({"password": PASSWORD}))
        .await
        .assert_problem(400, "validation_failed");
    let not_mine = json!({"code": "123456", "login": email("someone@example.com")});
    reauthenticate(&app, &token, not_mine)
        .await
        .assert_problem(400, "validation_failed");
    let wrong = json!({"code": "000000", "login": email("grace@example.com")});
    app.send_code("email", "grace@example.com", "sign_in", None)
        .await;
    let right = app.last_code("grace@example.com").await;
    if right != "000000" {
        reauthenticate(&app, &token, wrong)
            .await
            .assert_problem(400, "invalid_code");
    }

    // The owner proves it with a code sent to the address; then it works.
    let ok = reauthenticate(
        &app,
        &token,
        json!({"code": right, "login": email("grace@example.com")}),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body["proven_at"].is_string());
    let set = put_password(&app, &token, json!({"new_password": PASSWORD})).await;
    assert_eq!(set.status, 204, "{}", set.body);

    // Later again: a password re-authenticates too; a wrong one is not a bad token.
    app.clock.advance(Duration::seconds(301));
    let req = app
        .client
        .post(app.url("/v1/me/logins"))
        .bearer_auth(&token);
    app.send(req.json(&bind))
        .await
        .assert_problem(403, "reauthentication_required");
    reauthenticate(&app, &token, json!({"password": "not it"}))
        .await
        .assert_problem(403, "invalid_current_password");
    let ok = reauthenticate(&app, &token, json!({"password": PASSWORD})).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let req = app
        .client
        .post(app.url("/v1/me/logins"))
        .bearer_auth(&token);
    assert_eq!(app.send(req.json(&bind)).await.status, 201);
}

#[tokio::test]
async fn an_address_registered_by_someone_else_is_reclaimed_by_its_owners_first_code() {
    let app = TestApp::spawn().await;
    // The attacker registers the victim's address with a password.
    let attacker = app.register("victim@example.com").await;
    let access = attacker["access_token"].as_str().unwrap();
    let refresh = attacker["refresh_token"].as_str().unwrap();
    assert_eq!(app.get("/v1/me", Some(access)).await.status, 200);

    // The owner signs in with a code sent to the address.
    app.send_code("email", "victim@example.com", "sign_in", None)
        .await;
    let mail = app.messages_to("victim@example.com").await;
    assert!(
        mail.last()
            .unwrap()
            .contains("any password set before is removed"),
        "{}",
        mail.last().unwrap()
    );
    let code = app.last_code("victim@example.com").await;
    let owner = app
        .post(
            "/v1/sessions",
            &json!({"login": email("victim@example.com"), "code": code}),
        )
        .await;
    assert_eq!(owner.status, 200, "{}", owner.body);

    // Everything the attacker holds is refused.
    app.sign_in("victim@example.com", PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    app.get("/v1/me", Some(access))
        .await
        .assert_problem(401, "invalid_token");
    app.refresh(refresh)
        .await
        .assert_problem(401, "invalid_token");

    // The owner's session works, and the owner is told.
    let me = app.get("/v1/me", owner.body["access_token"].as_str()).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["has_password"], false);
    assert!(me.body["password_removed_at"].is_string(), "{}", me.body);
    assert!(me.body["logins"][0]["verified_at"].is_string());
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE topic = 'identity.account.reclaimed'")
            .await,
        1
    );
    // A later code sign-in changes nothing more: the address is proven.
    let again = app.sign_in("victim@example.com", PASSWORD).await;
    again.assert_problem(401, "invalid_credentials");
}

#[tokio::test]
async fn a_verify_code_confirmed_without_a_session_reclaims_the_account_too() {
    let app = TestApp::spawn().await;
    let attacker = app.register("victim@example.com").await;
    let access = attacker["access_token"].as_str().unwrap();
    app.send_code("email", "victim@example.com", "verify", None)
        .await;
    let code = app.last_code("victim@example.com").await;
    let body = json!({"login": email("victim@example.com"), "code": code});
    assert_eq!(
        app.post("/v1/verifications/confirm", &body).await.status,
        200
    );
    app.get("/v1/me", Some(access))
        .await
        .assert_problem(401, "invalid_token");
    app.sign_in("victim@example.com", PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
}
