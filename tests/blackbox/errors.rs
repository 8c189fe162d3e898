use serde_json::json;
use sesame_tests::TestApp;

#[tokio::test]
async fn unknown_routes_are_problem_documents() {
    let app = TestApp::spawn().await;
    let resp = app.get("/v1/nothing-here", None).await;
    resp.assert_problem(404, "not_found");
    assert_eq!(resp.body["type"], "urn:sesame:problem:not_found");
    assert!(resp.body["title"].is_string() && resp.body["detail"].is_string());
    app.get("/v1/registrations", None)
        .await
        .assert_problem(405, "method_not_allowed");
}

#[tokio::test]
async fn unknown_json_fields_are_refused() {
    let app = TestApp::spawn().await;
    let body = json!({"login": {"type": "email", "identifier": "a@example.com"}, "password": "pw-long-enough-1", "admin": true});
    let resp = app.post("/v1/registrations", &body).await;
    resp.assert_problem(400, "validation_failed");
    assert_eq!(
        resp.field_errors(),
        [("admin".to_owned(), "unknown_field".to_owned())]
    );
    let nested = json!({"login": {"type": "email", "identifier": "a@example.com", "extra": 1}, "password": "pw-long-enough-1"});
    let resp = app.post("/v1/registrations", &nested).await;
    assert_eq!(
        resp.field_errors(),
        [("login.extra".to_owned(), "unknown_field".to_owned())]
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM principals").await, 0);
}

#[tokio::test]
async fn malformed_and_mistyped_json_is_a_validation_error() {
    let app = TestApp::spawn().await;
    let raw = |body: &'static str| {
        app.client
            .post(app.url("/v1/registrations"))
            .header("content-type", "application/json")
            .body(body)
    };
    let resp = app.send(raw("{\"login\": ")).await;
    resp.assert_problem(400, "validation_failed");
    assert_eq!(
        resp.field_errors(),
        [("".to_owned(), "malformed_json".to_owned())]
    );
    let resp = app.send(raw("")).await;
    resp.assert_problem(400, "validation_failed");
    let resp = app
        .send(raw(
            "{\"login\": {\"type\": \"email\", \"identifier\": 42}, \"password\": \"x\"}",
        ))
        .await;
    resp.assert_problem(400, "validation_failed");
    assert_eq!(
        resp.field_errors(),
        [("login.identifier".to_owned(), "invalid_type".to_owned())]
    );
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let registered = app.register("ada@example.com").await;
    let token = registered["access_token"].as_str().unwrap().to_owned();
    let before = app.get("/v1/me", Some(&token)).await;
    // An array is what serde would read as the fields in order.
    for body in ["[]", " [\"Ada\"]", "\"Ada\"", "42", "null"] {
        let resp = app
            .send(
                app.client
                    .patch(app.url("/v1/me/profile"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        resp.assert_problem(400, "validation_failed");
        assert_eq!(
            resp.field_errors(),
            [("".to_owned(), "invalid_type".to_owned())],
            "{body}"
        );
    }
    let after = app.get("/v1/me", Some(&token)).await;
    assert_eq!(after.body["profile"], before.body["profile"]);
}

#[tokio::test]
async fn bodies_over_64_kib_are_refused() {
    let app = TestApp::spawn().await;
    let body = json!({"login": {"type": "email", "identifier": "a@example.com"}, "password": "x".repeat(70 * 1024)});
    let resp = app.post("/v1/registrations", &body).await;
    resp.assert_problem(413, "payload_too_large");
    // Just under the limit is parsed (and refused for its content, not its size).
    let body = json!({"login": {"type": "email", "identifier": "a@example.com"}, "password": "x".repeat(60 * 1024)});
    app.post("/v1/registrations", &body)
        .await
        .assert_problem(400, "validation_failed");
}

#[tokio::test]
async fn wrong_content_type_is_refused() {
    let app = TestApp::spawn().await;
    let form = app
        .client
        .post(app.url("/v1/sessions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("login=ada&password=x");
    app.send(form)
        .await
        .assert_problem(415, "unsupported_media_type");
    let none = app.client.post(app.url("/v1/sessions")).body("{}");
    app.send(none)
        .await
        .assert_problem(415, "unsupported_media_type");
}

#[tokio::test]
async fn health_endpoints_answer() {
    let app = TestApp::spawn().await;
    let live = app.send(app.client.get(app.url("/health/live"))).await;
    assert_eq!(live.status, 200);
    let ready = app.send(app.client.get(app.url("/health/ready"))).await;
    assert_eq!(ready.status, 200);
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = TestApp::spawn().await;
    app.db.close().await;
    app.get("/health/ready", None)
        .await
        .assert_problem(503, "unavailable");
    assert_eq!(
        app.send(app.client.get(app.url("/health/live")))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_openapi_document_is_served_and_names_every_route() {
    // With a relying party, so that the passkey routes answer too.
    let app = TestApp::builder()
        .config(|c| {
            c.webauthn = sesame::WebauthnConfig {
                rp_id: Some("sesame.test".into()),
                rp_name: None,
                origins: vec!["https://sesame.test".into()],
            }
        })
        .spawn()
        .await;
    let resp = app.send(app.client.get(app.url("/openapi.yaml"))).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.content_type(), "application/yaml");
    let doc = sesame_http::OPENAPI;
    let documented: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("  /") && l.ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':'))
        .collect();
    let routes = [
        "/v1/registrations",
        "/v1/registrations/passkey/begin",
        "/v1/registrations/passkey/finish",
        "/v1/sessions",
        "/v1/sessions/refresh",
        "/v1/sessions/mfa",
        "/v1/sessions/mfa/webauthn",
        "/v1/sessions/passkey/begin",
        "/v1/sessions/passkey/finish",
        "/v1/sessions/current",
        "/v1/sessions/reauthenticate",
        "/v1/me",
        "/v1/me/profile",
        "/v1/me/sessions",
        "/v1/me/sessions/{id}",
        "/v1/me/logins",
        "/v1/me/logins/{id}",
        "/v1/me/password",
        "/v1/me/mfa/totp",
        "/v1/me/mfa/totp/confirm",
        "/v1/me/passkeys",
        "/v1/me/passkeys/begin",
        "/v1/me/passkeys/finish",
        "/v1/me/passkeys/{id}",
        "/v1/me/security-keys",
        "/v1/me/security-keys/begin",
        "/v1/me/security-keys/finish",
        "/v1/me/security-keys/{id}",
        "/v1/me/mfa/backup-codes",
        "/v1/verifications",
        "/v1/verifications/confirm",
        "/v1/password-resets",
        "/v1/password-resets/confirm",
        "/v1/federation/{connection}/begin",
        "/v1/federation/{connection}/callback",
        "/v1/federation/exchange",
        "/v1/introspect",
        "/v1/admin/api-keys",
        "/v1/admin/api-keys/{id}",
        "/v1/admin/roles",
        "/v1/admin/roles/{name}",
        "/v1/admin/users",
        "/v1/admin/users/{id}",
        "/v1/admin/users/{id}/suspend",
        "/v1/admin/users/{id}/reactivate",
        "/v1/admin/users/{id}/roles/{role}",
        "/v1/admin/users/{id}/sessions",
        "/v1/admin/users/{id}/logins",
        "/v1/admin/users/{id}/logins/{login_id}",
        "/v1/admin/users/{id}/mfa",
        "/v1/admin/audit",
        "/v1/admin/webhooks",
        "/v1/admin/webhooks/{name}",
        "/v1/admin/webhooks/{name}/secret",
        "/v1/admin/connections",
        "/v1/admin/connections/{name}",
        "/.well-known/jwks.json",
        "/openapi.yaml",
        "/health/live",
        "/health/ready",
        "/metrics",
    ];
    assert_eq!(documented, routes);
    // Every documented path is routed: none answers with the 404 fallback.
    for path in routes {
        let path = path
            .replace("{id}", "01890000-0000-7000-8000-000000000000")
            .replace("{name}", "support")
            .replace("{role}", "support")
            .replace("{connection}", "oidc:none")
            .replace("{login_id}", "01890000-0000-7000-8000-000000000000");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let req = app.client.request(method.parse().unwrap(), app.url(&path));
            let resp = app.send(req).await;
            assert!(
                resp.code() != "not_found"
                    || path.starts_with("/v1/me/sessions/")
                    || path.starts_with("/v1/me/logins/")
                    || path.starts_with("/v1/me/passkeys/0")
                    || path.starts_with("/v1/me/security-keys/0"),
                "{method} {path}: {}",
                resp.body
            );
        }
    }
    // Every error code of the registry is in the document's enum.
    for code in sesame_core::ErrorCode::ALL {
        assert!(
            doc.contains(code.as_str()),
            "{} missing from openapi.yaml",
            code.as_str()
        );
    }
}
