use serde_json::json;
use sesame_tests::TestApp;

#[tokio::test]
async fn me_needs_a_valid_bearer_token() {
    let app = TestApp::spawn().await;
    let none = app.get("/v1/me", None).await;
    none.assert_problem(401, "invalid_token");
    assert_eq!(none.headers.get("www-authenticate").unwrap(), "Bearer");
    app.get("/v1/me", Some("garbage"))
        .await
        .assert_problem(401, "invalid_token");
    app.get("/v1/me", Some("a.b.c"))
        .await
        .assert_problem(401, "invalid_token");
    let basic = app
        .send(
            app.client
                .get(app.url("/v1/me"))
                .basic_auth("ada", Some("pw")),
        )
        .await;
    basic.assert_problem(401, "invalid_token");
}

#[tokio::test]
async fn a_token_from_another_deployment_is_refused() {
    let a = TestApp::spawn().await;
    let b = TestApp::spawn().await;
    let reg = a.register("ada@example.com").await;
    b.get("/v1/me", reg["access_token"].as_str())
        .await
        .assert_problem(401, "invalid_token");
}

#[tokio::test]
async fn profile_updates_apply_clear_and_validate() {
    let app = TestApp::spawn().await;
    let reg = app.register("ada@example.com").await;
    let token = reg["access_token"].as_str().unwrap();

    let resp = app
        .patch(
            "/v1/me/profile",
            token,
            &json!({"display_name": " Ada L. ", "bio": "Analyst", "locale": "en-GB"}),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body["display_name"], "Ada L.");
    assert_eq!(resp.body["bio"], "Analyst");
    assert_eq!(resp.body["locale"], "en-GB");

    // Absent fields stay; null clears.
    let resp = app
        .patch("/v1/me/profile", token, &json!({"bio": null}))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body["bio"], serde_json::Value::Null);
    assert_eq!(resp.body["display_name"], "Ada L.");
    let me = app.get("/v1/me", Some(token)).await;
    assert_eq!(me.body["profile"]["display_name"], "Ada L.");
    assert_eq!(me.body["has_password"], true);
    assert_eq!(me.body["logins"].as_array().unwrap().len(), 1);

    let bad = app
        .patch(
            "/v1/me/profile",
            token,
            &json!({"locale": "not a locale", "display_name": "x".repeat(101)}),
        )
        .await;
    bad.assert_problem(400, "validation_failed");
    let mut fields = bad.field_errors();
    fields.sort();
    assert_eq!(
        fields,
        [
            ("display_name".into(), "too_long".into()),
            ("locale".into(), "invalid_locale".into())
        ]
    );

    let unknown = app
        .patch("/v1/me/profile", token, &json!({"email": "x@example.com"}))
        .await;
    unknown.assert_problem(400, "validation_failed");
    assert_eq!(
        unknown.field_errors(),
        [("email".to_owned(), "unknown_field".to_owned())]
    );

    let no_auth = app
        .send(app.client.patch(app.url("/v1/me/profile")).json(&json!({})))
        .await;
    no_auth.assert_problem(401, "invalid_token");
}
