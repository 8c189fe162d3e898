//! The separation model: every way in is a row, added and removed while the
//! person and their data stay.

use futures_util::future::join_all;
use serde_json::{Value, json};
use sesame_tests::{PASSWORD, TestApp};

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

async fn region_app() -> TestApp {
    TestApp::builder()
        .config(|c| c.phone_default_region = Some("CN".into()))
        .spawn()
        .await
}

/// Registers a phone with a code and no password; returns the 201 body.
async fn phone_sign_up(app: &TestApp, phone: &str, e164: &str) -> Value {
    assert_eq!(
        app.send_code("phone", phone, "register", None).await.status,
        202
    );
    let code = app.last_code(e164).await;
    let body = json!({"login": {"type": "phone", "identifier": phone}, "code": code});
    let resp = app.post("/v1/registrations", &body).await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    resp.body
}

/// Binds an e-mail or phone with a bind code; returns the response.
async fn bind_with_code(
    app: &TestApp,
    token: &str,
    login_type: &str,
    identifier: &str,
    to: &str,
) -> sesame_tests::Resp {
    assert_eq!(
        app.send_code(login_type, identifier, "bind", Some(token))
            .await
            .status,
        202
    );
    let code = app.last_code(to).await;
    let body = json!({"login": {"type": login_type, "identifier": identifier}, "code": code});
    app.send(
        app.client
            .post(app.url("/v1/me/logins"))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

async fn bind_username(app: &TestApp, token: &str, name: &str) -> sesame_tests::Resp {
    let body = json!({"login": {"type": "username", "identifier": name}});
    app.send(
        app.client
            .post(app.url("/v1/me/logins"))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

async fn me(app: &TestApp, token: &str) -> Value {
    let resp = app.get("/v1/me", Some(token)).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.body
}

#[tokio::test]
async fn email_sign_up_with_password() {
    let app = TestApp::spawn().await;
    let reg = app.register("ada@example.com").await;
    let me = me(&app, s(&reg["access_token"])).await;
    assert_eq!(me["has_password"], true);
    assert_eq!(me["logins"][0]["type"], "email");
    assert_eq!(me["logins"][0]["verified_at"], Value::Null);
}

#[tokio::test]
async fn phone_sign_up_with_no_password() {
    let app = region_app().await;
    let reg = phone_sign_up(&app, "138 0013 8000", "+8613800138000").await;
    let me = me(&app, s(&reg["access_token"])).await;
    assert_eq!(me["has_password"], false);
    assert_eq!(me["logins"][0]["identifier"], "+8613800138000");
    assert!(
        me["logins"][0]["verified_at"].is_string(),
        "a code proves the number: {me}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM passwords").await, 0);
    // A code signs in again; a password cannot.
    assert_eq!(
        app.send_code("phone", "+8613800138000", "sign_in", None)
            .await
            .status,
        202
    );
    let code = app.last_code("+8613800138000").await;
    let body = json!({"login": {"type": "phone", "identifier": "13800138000"}, "code": code});
    let again = app.post("/v1/sessions", &body).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["principal"], reg["principal"]);
    let pw = json!({"login": {"type": "phone", "identifier": "13800138000"}, "password": PASSWORD});
    app.post("/v1/sessions", &pw)
        .await
        .assert_problem(401, "invalid_credentials");
}

#[tokio::test]
async fn bind_a_phone_to_an_email_account() {
    let app = region_app().await;
    let reg = app.register("ada@example.com").await;
    let token = s(&reg["access_token"]);
    let resp = bind_with_code(&app, token, "phone", "13800138000", "+8613800138000").await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    assert_eq!(resp.body["type"], "phone");
    assert_eq!(resp.body["identifier"], "+8613800138000");
    assert!(resp.body["verified_at"].is_string());
    let me = me(&app, token).await;
    assert_eq!(me["logins"].as_array().unwrap().len(), 2);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE topic = 'identity.login_method.bound'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE event = 'login_method.bound'")
            .await,
        1
    );
    // Without a code, or with a wrong one, nothing is bound.
    let no_code = json!({"login": {"type": "email", "identifier": "other@example.com"}});
    let resp = app
        .send(
            app.client
                .post(app.url("/v1/me/logins"))
                .bearer_auth(token)
                .json(&no_code),
        )
        .await;
    resp.assert_problem(400, "validation_failed");
    assert_eq!(
        resp.field_errors(),
        [("code".to_owned(), "required".to_owned())]
    );
}

#[tokio::test]
async fn bind_a_username() {
    let app = TestApp::spawn().await;
    let reg = app.register("ada@example.com").await;
    let resp = bind_username(&app, s(&reg["access_token"]), "Ada_L").await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    assert_eq!(resp.body["identifier"], "ada_l");
    assert_eq!(resp.body["verified_at"], Value::Null);
}

#[tokio::test]
async fn every_bound_method_signs_in_to_the_same_principal() {
    let app = region_app().await;
    let reg = app.register("ada@example.com").await;
    let token = s(&reg["access_token"]);
    assert_eq!(
        bind_with_code(&app, token, "phone", "13800138000", "+8613800138000")
            .await
            .status,
        201
    );
    assert_eq!(bind_username(&app, token, "ada").await.status, 201);
    let id = &reg["principal"]["id"];
    for (kind, identifier) in [
        ("email", "ADA@example.com"),
        ("phone", "+86 138 0013 8000"),
        ("username", "ADA"),
    ] {
        let body = json!({"login": {"type": kind, "identifier": identifier}, "password": PASSWORD});
        let resp = app.post("/v1/sessions", &body).await;
        assert_eq!(resp.status, 200, "{kind}: {}", resp.body);
        assert_eq!(&resp.body["principal"]["id"], id, "{kind}");
    }
}

#[tokio::test]
async fn binding_an_identifier_owned_by_another_user_changes_nothing() {
    let app = TestApp::spawn().await;
    let ada = app.register("ada@example.com").await;
    let bob = app.register("bob@example.com").await;
    assert_eq!(
        bind_username(&app, s(&bob["access_token"]), "bobby")
            .await
            .status,
        201
    );
    let before_ada = me(&app, s(&ada["access_token"])).await;
    let before_bob = me(&app, s(&bob["access_token"])).await;

    bind_username(&app, s(&ada["access_token"]), "BOBBY")
        .await
        .assert_problem(409, "identifier_taken");
    // Bob's e-mail is no code target for Ada: it is taken, so no code is sent.
    let resp = app
        .send_code(
            "email",
            "bob@example.com",
            "bind",
            Some(s(&ada["access_token"])),
        )
        .await;
    assert_eq!(resp.status, 202);
    assert!(app.messages_to("bob@example.com").await.is_empty());
    // Binding what one already has is taken too.
    bind_username(&app, s(&bob["access_token"]), "bobby")
        .await
        .assert_problem(409, "identifier_taken");

    assert_eq!(me(&app, s(&ada["access_token"])).await, before_ada);
    assert_eq!(me(&app, s(&bob["access_token"])).await, before_bob);
}

#[tokio::test]
async fn the_same_digits_as_phone_and_username_do_not_conflict() {
    let app = region_app().await;
    let phone = phone_sign_up(&app, "13800138000", "+8613800138000").await;
    let user = app.register_as("username", "13800138000", PASSWORD).await;
    assert_eq!(user.status, 201, "{}", user.body);
    assert_ne!(user.body["principal"]["id"], phone["principal"]["id"]);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM login_methods WHERE identifier LIKE '%13800138000'")
            .await,
        2
    );
}

#[tokio::test]
async fn a_passwordless_user_adds_a_password_and_signs_in_with_it() {
    let app = region_app().await;
    let reg = phone_sign_up(&app, "13800138000", "+8613800138000").await;
    let token = s(&reg["access_token"]);
    let put = |body: Value| {
        app.send(
            app.client
                .put(app.url("/v1/me/password"))
                .bearer_auth(token)
                .json(&body),
        )
    };
    let resp = put(json!({"new_password": PASSWORD})).await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    assert_eq!(me(&app, token).await["has_password"], true);
    let body =
        json!({"login": {"type": "phone", "identifier": "+8613800138000"}, "password": PASSWORD});
    let signed_in = app.post("/v1/sessions", &body).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    assert_eq!(signed_in.body["principal"], reg["principal"]);
}

#[tokio::test]
async fn unbinding_a_method_keeps_profile_and_sessions() {
    let app = TestApp::spawn().await;
    let reg = app.register("ada@example.com").await;
    let token = s(&reg["access_token"]);
    app.patch("/v1/me/profile", token, &json!({"display_name": "Ada"}))
        .await;
    let name = bind_username(&app, token, "ada").await;
    // A session opened with the username.
    let body = json!({"login": {"type": "username", "identifier": "ada"}, "password": PASSWORD});
    let by_name = app.post("/v1/sessions", &body).await;
    assert_eq!(by_name.status, 200);

    let email_id = me(&app, token).await["logins"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = app
        .delete(&format!("/v1/me/logins/{email_id}"), token)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.body);

    let after = me(&app, s(&by_name.body["access_token"])).await;
    assert_eq!(after["id"], reg["principal"]["id"]);
    assert_eq!(after["profile"]["display_name"], "Ada");
    assert_eq!(after["logins"].as_array().unwrap().len(), 1);
    assert_eq!(after["logins"][0]["id"], name.body["id"]);
    // Both sessions live on, including the one opened with the e-mail.
    assert_eq!(app.get("/v1/me", Some(token)).await.status, 200);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL")
            .await,
        2
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE topic = 'identity.login_method.unbound'")
            .await,
        1
    );
    // The e-mail no longer signs in.
    app.sign_in("ada@example.com", PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    // Unknown and foreign ids are not found.
    app.delete(&format!("/v1/me/logins/{email_id}"), token)
        .await
        .assert_problem(404, "not_found");
    app.delete("/v1/me/logins/not-an-id", token)
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn unbinding_the_last_way_in_is_refused() {
    let app = region_app().await;
    // The only login method at all.
    let reg = app.register("ada@example.com").await;
    let token = s(&reg["access_token"]);
    let id = me(&app, token).await["logins"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(&format!("/v1/me/logins/{id}"), token)
        .await
        .assert_problem(409, "last_login_method");

    // No password: a username cannot sign in alone, so the phone is the last way in.
    let phone = phone_sign_up(&app, "13800138000", "+8613800138000").await;
    let token = s(&phone["access_token"]);
    assert_eq!(bind_username(&app, token, "phoneonly").await.status, 201);
    let phone_id = me(&app, token).await["logins"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(&format!("/v1/me/logins/{phone_id}"), token)
        .await
        .assert_problem(409, "last_login_method");
    assert_eq!(me(&app, token).await["logins"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn twenty_concurrent_binds_of_one_identifier_have_one_winner() {
    let app = TestApp::spawn().await;
    let mut tokens = Vec::new();
    for i in 0..20 {
        tokens
            .push(s(&app.register(&format!("u{i}@example.com")).await["access_token"]).to_owned());
    }
    // Each user holds a valid bind code for the same address at the same time.
    let mut codes = Vec::new();
    for t in &tokens {
        assert_eq!(
            app.send_code("email", "shared@example.com", "bind", Some(t))
                .await
                .status,
            202
        );
        codes.push(app.last_code("shared@example.com").await);
    }
    let binds = tokens.iter().zip(&codes).map(|(t, code)| {
        let body =
            json!({"login": {"type": "email", "identifier": "shared@example.com"}, "code": code});
        app.send(
            app.client
                .post(app.url("/v1/me/logins"))
                .bearer_auth(t)
                .json(&body),
        )
    });
    let responses = join_all(binds).await;
    let created = responses.iter().filter(|r| r.status == 201).count();
    let taken = responses
        .iter()
        .filter(|r| r.status == 409 && r.code() == "identifier_taken")
        .count();
    assert_eq!(
        (created, taken),
        (1, 19),
        "{:?}",
        responses
            .iter()
            .map(|r| (r.status, r.code()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM login_methods WHERE identifier = 'shared@example.com'")
            .await,
        1
    );
}
