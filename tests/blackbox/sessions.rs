use serde_json::json;
use sesame_tests::{PASSWORD, TestApp};
use time::Duration;

fn s(v: &serde_json::Value) -> &str {
    v.as_str().unwrap()
}

#[tokio::test]
async fn sign_in_opens_a_new_session_for_the_same_principal() {
    let app = TestApp::spawn().await;
    let reg = app.register("ada@example.com").await;
    let resp = app.sign_in("  ADA@example.com", PASSWORD).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body["principal"], reg["principal"]);
    assert_ne!(resp.body["session_id"], reg["session_id"]);
    assert_eq!(resp.body["token_type"], "Bearer");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE topic = 'identity.user.signed_in'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM principals WHERE last_login_at IS NOT NULL")
            .await,
        1
    );
    let me = app.get("/v1/me", Some(s(&resp.body["access_token"]))).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["id"], reg["principal"]["id"]);
}

#[tokio::test]
async fn unknown_identifier_and_wrong_password_answer_alike() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com").await;
    let wrong = app
        .sign_in("ada@example.com", "not the password at all")
        .await;
    let unknown = app.sign_in("nobody@example.com", PASSWORD).await;
    wrong.assert_problem(401, "invalid_credentials");
    unknown.assert_problem(401, "invalid_credentials");
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 1);
}

#[tokio::test]
async fn sign_in_input_errors() {
    let app = TestApp::spawn().await;
    let missing = app
        .post(
            "/v1/sessions",
            &json!({"login": {"type": "email", "identifier": "a@example.com"}}),
        )
        .await;
    missing.assert_problem(400, "validation_failed");
    assert_eq!(
        missing.field_errors(),
        [("password".to_owned(), "required".to_owned())]
    );
    let bad = app.sign_in("not-an-email", PASSWORD).await;
    bad.assert_problem(400, "validation_failed");
    assert_eq!(
        bad.field_errors(),
        [("login.identifier".to_owned(), "invalid_email".to_owned())]
    );
}

#[tokio::test]
async fn session_endpoints_need_a_bearer_token() {
    let app = TestApp::spawn().await;
    app.get("/v1/me/sessions", None)
        .await
        .assert_problem(401, "invalid_token");
    let resp = app
        .send(app.client.delete(app.url("/v1/sessions/current")))
        .await;
    resp.assert_problem(401, "invalid_token");
    let resp = app
        .send(
            app.client
                .delete(app.url("/v1/me/sessions/01890000-0000-7000-8000-000000000000")),
        )
        .await;
    resp.assert_problem(401, "invalid_token");
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_stops_working() {
    let app = TestApp::spawn().await;
    let reg = app.register("ada@example.com").await;
    let first = s(&reg["refresh_token"]).to_owned();

    let r1 = app.refresh(&first).await;
    assert_eq!(r1.status, 200, "{}", r1.body);
    assert_eq!(r1.body["session_id"], reg["session_id"]);
    let second = s(&r1.body["refresh_token"]).to_owned();
    assert_ne!(second, first);
    assert_eq!(
        app.get("/v1/me", Some(s(&r1.body["access_token"])))
            .await
            .status,
        200
    );

    let r2 = app.refresh(&second).await;
    assert_eq!(r2.status, 200, "{}", r2.body);
    let third = s(&r2.body["refresh_token"]).to_owned();
    let access = s(&r2.body["access_token"]).to_owned();

    // Presenting the first (used) token again is a reuse: the session dies.
    app.refresh(&first)
        .await
        .assert_problem(401, "token_reused");
    app.get("/v1/me", Some(&access))
        .await
        .assert_problem(401, "invalid_token");
    app.refresh(&third)
        .await
        .assert_problem(401, "invalid_token");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions WHERE revoke_reason = 'refresh_token_reused'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE topic = 'identity.session.revoked'")
            .await,
        1
    );
    // Refresh tokens are stored only as hashes.
    let stored = app.db.blobs("SELECT token_hash FROM refresh_tokens").await;
    assert_eq!(stored.len(), 3);
    for h in stored {
        assert_eq!(h.len(), 32);
        assert_ne!(h, third.as_bytes());
    }
}

#[tokio::test]
async fn two_refreshes_of_one_token_within_the_grace_get_the_same_successor() {
    let app = TestApp::builder().manual_clock().spawn().await;
    let reg = app.register("ada@example.com").await;
    let token = s(&reg["refresh_token"]).to_owned();
    // Raced: each written but for its last byte, then released together.
    let body = json!({"refresh_token": token});
    let raced = app
        .race(&[
            sesame_tests::Raw::post("/v1/sessions/refresh", body.clone()),
            sesame_tests::Raw::post("/v1/sessions/refresh", body),
        ])
        .await;
    for r in &raced {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.headers["cache-control"], "no-store");
    }
    let successor = s(&raced[0].body["refresh_token"]).to_owned();
    assert_eq!(raced[1].body["refresh_token"], successor.as_str());
    assert_ne!(successor, token);
    // The session is alive, and one successor exists.
    let access = s(&raced[1].body["access_token"]).to_owned();
    assert_eq!(app.get("/v1/me", Some(&access)).await.status, 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM refresh_tokens").await, 2);
    // The successor is stored sealed, never in clear.
    let dump = app.db.dump("refresh_tokens").await;
    assert!(!dump.contains(&successor), "{dump}");

    // Within the grace a retry still gets it; after the grace, a reuse
    // revokes the session.
    app.clock.advance(Duration::seconds(9));
    let retry = app.refresh(&token).await;
    assert_eq!(retry.body["refresh_token"], successor.as_str());
    app.clock.advance(Duration::seconds(2));
    app.refresh(&token)
        .await
        .assert_problem(401, "token_reused");
    app.get("/v1/me", Some(&access))
        .await
        .assert_problem(401, "invalid_token");
    app.refresh(&successor)
        .await
        .assert_problem(401, "invalid_token");
}

#[tokio::test]
async fn a_retry_after_the_successor_was_used_is_a_reuse() {
    let app = TestApp::spawn().await;
    let reg = app.register("ada@example.com").await;
    let first = s(&reg["refresh_token"]).to_owned();
    let next = app.refresh(&first).await;
    assert_eq!(next.status, 200);
    let after = app.refresh(s(&next.body["refresh_token"])).await;
    assert_eq!(after.status, 200);
    // The client moved on, so the first token coming back is not a retry.
    app.refresh(&first)
        .await
        .assert_problem(401, "token_reused");
    app.get("/v1/me", after.body["access_token"].as_str())
        .await
        .assert_problem(401, "invalid_token");
}

#[tokio::test]
async fn garbage_refresh_tokens_are_invalid() {
    let app = TestApp::spawn().await;
    app.refresh("definitely-not-a-token")
        .await
        .assert_problem(401, "invalid_token");
    app.refresh("").await.assert_problem(401, "invalid_token");
    let resp = app.post("/v1/sessions/refresh", &json!({})).await;
    resp.assert_problem(400, "validation_failed");
    assert_eq!(
        resp.field_errors(),
        [("refresh_token".to_owned(), "required".to_owned())]
    );
}

#[tokio::test]
async fn sign_out_revokes_the_session_at_once() {
    let app = TestApp::spawn().await;
    let reg = app.register("ada@example.com").await;
    let access = s(&reg["access_token"]);
    let resp = app.delete("/v1/sessions/current", access).await;
    assert_eq!(resp.status, 204);
    app.get("/v1/me", Some(access))
        .await
        .assert_problem(401, "invalid_token");
    app.refresh(s(&reg["refresh_token"]))
        .await
        .assert_problem(401, "invalid_token");
    app.delete("/v1/sessions/current", access)
        .await
        .assert_problem(401, "invalid_token");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sessions WHERE revoke_reason = 'signed_out'")
            .await,
        1
    );
}

#[tokio::test]
async fn sessions_are_listed_and_revoked_one_by_one() {
    let app = TestApp::spawn().await;
    let reg = app.register("ada@example.com").await;
    let laptop = app
        .send(
            app.client
                .post(app.url("/v1/sessions"))
                .header("user-agent", "Laptop/1.0")
                .json(&json!({"login": {"type": "email", "identifier": "ada@example.com"}, "password": PASSWORD})),
        )
        .await;
    assert_eq!(laptop.status, 200);

    let list = app
        .get("/v1/me/sessions", Some(s(&reg["access_token"])))
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    let items = list.body.as_array().unwrap();
    assert_eq!(items.len(), 2);
    let current: Vec<_> = items.iter().filter(|i| i["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], reg["session_id"]);
    let other = items.iter().find(|i| i["current"] == false).unwrap();
    assert_eq!(other["user_agent"], "Laptop/1.0");
    assert_eq!(other["ip"], "127.0.0.1");
    assert_eq!(other["aal"], "aal1");
    assert!(other["created_at"].is_string() && other["last_seen_at"].is_string());

    let path = format!("/v1/me/sessions/{}", s(&laptop.body["session_id"]));
    assert_eq!(app.delete(&path, s(&reg["access_token"])).await.status, 204);
    app.get("/v1/me", Some(s(&laptop.body["access_token"])))
        .await
        .assert_problem(401, "invalid_token");
    assert_eq!(
        app.get("/v1/me", Some(s(&reg["access_token"])))
            .await
            .status,
        200
    );
    // Already revoked, unknown, malformed: all not found.
    app.delete(&path, s(&reg["access_token"]))
        .await
        .assert_problem(404, "not_found");
    app.delete(
        "/v1/me/sessions/01890000-0000-7000-8000-000000000000",
        s(&reg["access_token"]),
    )
    .await
    .assert_problem(404, "not_found");
    app.delete("/v1/me/sessions/not-a-uuid", s(&reg["access_token"]))
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn another_users_session_cannot_be_revoked() {
    let app = TestApp::spawn().await;
    let ada = app.register("ada@example.com").await;
    let bob = app.register("bob@example.com").await;
    let path = format!("/v1/me/sessions/{}", s(&bob["session_id"]));
    app.delete(&path, s(&ada["access_token"]))
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        app.get("/v1/me", Some(s(&bob["access_token"])))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn access_tokens_expire_and_refresh_tokens_outlive_them() {
    let app = TestApp::builder().manual_clock().spawn().await;
    let reg = app.register("ada@example.com").await;
    app.clock.advance(Duration::minutes(16));
    app.get("/v1/me", Some(s(&reg["access_token"])))
        .await
        .assert_problem(401, "invalid_token");
    let r = app.refresh(s(&reg["refresh_token"])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        app.get("/v1/me", Some(s(&r.body["access_token"])))
            .await
            .status,
        200
    );
    // Past the session's end the refresh token is dead too.
    app.clock.advance(Duration::days(31));
    app.refresh(s(&r.body["refresh_token"]))
        .await
        .assert_problem(401, "invalid_token");
}
