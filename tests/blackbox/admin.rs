//! The admin API, service API keys and introspection, over HTTP.

use crate::mfa::enrol;
use serde_json::{Value, json};
use sesame_app::ClientMeta;
use sesame_app::access::Caller;
use sesame_app::admin::ApiKeyRequest;
use sesame_core::PrincipalId;
use sesame_tests::{Resp, TestApp};

/// A key with `scopes`, made by the operator (as the command line does).
pub(crate) async fn key_with(app: &TestApp, scopes: &[&str]) -> (String, String) {
    let created = app
        .app
        .create_api_key(
            &Caller::Operator,
            ApiKeyRequest {
                name: "test".into(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                expires_at: None,
            },
            &ClientMeta::default(),
        )
        .await
        .unwrap();
    (created.key, created.view.id.to_string())
}

/// `id`'s roles, as the operator sets them.
async fn grant(app: &TestApp, id: &str, role: &str) {
    let id = PrincipalId(id.parse().unwrap());
    app.app
        .assign_role(&Caller::Operator, id, role, &ClientMeta::default())
        .await
        .unwrap();
}

async fn put_as(app: &TestApp, path: &str, token: &str, body: Option<&Value>) -> Resp {
    let mut req = app.client.put(app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(body);
    }
    app.send(req).await
}

/// Introspects `token` with `key`, as JSON; the answer and its raw body.
pub(crate) async fn introspect(app: &TestApp, key: &str, token: &str) -> (Resp, String) {
    let resp = app
        .client
        .post(app.url("/v1/introspect"))
        .bearer_auth(key)
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (
        Resp {
            status,
            headers,
            body,
        },
        text,
    )
}

pub(crate) fn access(body: &Value) -> &str {
    body["access_token"].as_str().unwrap()
}

pub(crate) fn id_of(body: &Value) -> String {
    body["principal"]["id"].as_str().unwrap().to_owned()
}

/// Root: an `admin` with a TOTP factor; a token of its session at `aal1`
/// and one of the same session raised in place to `aal2` with a backup code.
/// `None` without pyotp (outside CI).
async fn root(app: &TestApp) -> Option<(String, String)> {
    let reg = app.register("ada@example.com").await;
    grant(app, &id_of(&reg), "admin").await;
    let aal1 = access(&reg).to_owned();
    let (_, backup) = enrol(app, &aal1).await?;
    let raised = app
        .post_as(
            "/v1/sessions/mfa",
            &aal1,
            &json!({"backup_code": backup[0]}),
        )
        .await;
    assert_eq!(raised.status, 200, "{}", raised.body);
    Some((aal1, access(&raised.body).to_owned()))
}

/// A root token raised to `aal2` (`None` without pyotp, outside CI).
pub(crate) async fn root_token(app: &TestApp) -> Option<String> {
    root(app).await.map(|(_, aal2)| aal2)
}

#[tokio::test]
async fn every_admin_route_needs_the_permission_and_writes_need_aal2() {
    let app = TestApp::spawn().await;
    let plain = app.register("plain@example.com").await;
    let target = id_of(&plain);
    let Some((aal1, aal2)) = root(&app).await else {
        return;
    };
    let routes: Vec<(&str, String, Option<Value>, bool)> = vec![
        ("GET", "/v1/admin/api-keys".into(), None, false),
        (
            "POST",
            "/v1/admin/api-keys".into(),
            Some(json!({"name": "n", "scopes": ["introspect"]})),
            true,
        ),
        (
            "DELETE",
            "/v1/admin/api-keys/01890000-0000-7000-8000-000000000000".into(),
            None,
            true,
        ),
        ("GET", "/v1/admin/roles".into(), None, false),
        (
            "PUT",
            "/v1/admin/roles/support".into(),
            Some(json!({"permissions": ["users:read"]})),
            true,
        ),
        ("DELETE", "/v1/admin/roles/support".into(), None, true),
        ("GET", "/v1/admin/users".into(), None, false),
        ("GET", format!("/v1/admin/users/{target}"), None, false),
        (
            "POST",
            format!("/v1/admin/users/{target}/suspend"),
            Some(json!({})),
            true,
        ),
        (
            "POST",
            format!("/v1/admin/users/{target}/reactivate"),
            None,
            true,
        ),
        (
            "PUT",
            format!("/v1/admin/users/{target}/roles/admin"),
            None,
            true,
        ),
        (
            "DELETE",
            format!("/v1/admin/users/{target}/roles/admin"),
            None,
            true,
        ),
        (
            "GET",
            format!("/v1/admin/users/{target}/sessions"),
            None,
            false,
        ),
        (
            "GET",
            format!("/v1/admin/users/{target}/logins"),
            None,
            false,
        ),
        ("GET", "/v1/admin/audit".into(), None, false),
        (
            "DELETE",
            format!("/v1/admin/users/{target}/mfa"),
            None,
            true,
        ),
        (
            "DELETE",
            format!("/v1/admin/users/{target}/sessions"),
            None,
            true,
        ),
        (
            "DELETE",
            format!("/v1/admin/users/{target}/logins/01890000-0000-7000-8000-000000000000"),
            None,
            true,
        ),
        ("GET", "/v1/admin/webhooks".into(), None, false),
        (
            "PUT",
            "/v1/admin/webhooks/perm".into(),
            Some(json!({"url": "https://hooks.example.com/sesame"})),
            true,
        ),
        ("POST", "/v1/admin/webhooks/perm/secret".into(), None, true),
        ("DELETE", "/v1/admin/webhooks/perm".into(), None, true),
        ("GET", "/v1/admin/connections".into(), None, false),
        (
            "PUT",
            "/v1/admin/connections/oidc:perm".into(),
            Some(json!({
                "client_id": "c",
                "client_secret": "s",
                "issuer": "https://idp.example.com",
                "return_to": ["https://app.example.com/back"],
            })),
            true,
        ),
        (
            "DELETE",
            "/v1/admin/connections/oidc:perm".into(),
            None,
            true,
        ),
        // Last: the erasure of the target.
        ("DELETE", format!("/v1/admin/users/{target}"), None, true),
    ];
    let call = |method: &str, path: &str, token: Option<&str>, body: &Option<Value>| {
        let mut req = app.client.request(method.parse().unwrap(), app.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        app.send(req)
    };
    for (method, path, body, write) in &routes {
        call(method, path, None, body)
            .await
            .assert_problem(401, "invalid_token");
        call(method, path, Some(access(&plain)), body)
            .await
            .assert_problem(403, "forbidden");
        let at_aal1 = call(method, path, Some(&aal1), body).await;
        if *write {
            at_aal1.assert_problem(403, "mfa_required");
        } else {
            assert_eq!(at_aal1.status, 200, "{method} {path}: {}", at_aal1.body);
        }
    }
    // At aal2, every write goes through (in an order where each applies).
    for (method, path, body, _) in routes.iter().filter(|r| r.3) {
        let resp = call(method, path, Some(&aal2), body).await;
        let expected: &[u16] =
            if path.starts_with("/v1/admin/api-keys/") || path.contains("/logins/") {
                // No such key or login: past every check, to the lookup.
                &[404]
            } else {
                &[200, 201, 204]
            };
        assert!(
            expected.contains(&resp.status),
            "{method} {path}: {} {}",
            resp.status,
            resp.body
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn api_keys_are_shown_once_checked_by_checksum_and_revoked() {
    let app = TestApp::spawn().await;
    let (manager, _) = key_with(&app, &["api_keys:manage"]).await;
    let created = app
        .post_as(
            "/v1/admin/api-keys",
            &manager,
            &json!({"name": "billing", "scopes": ["introspect"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.headers["cache-control"], "no-store");
    let key = created.body["key"].as_str().unwrap().to_owned();
    let key_id = created.body["key_id"].as_str().unwrap();
    assert!(key.starts_with("ses_live_") && key.contains(key_id));
    let listed = app.get("/v1/admin/api-keys", Some(&manager)).await;
    assert_eq!(listed.status, 200);
    let row = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == key_id)
        .unwrap();
    assert!(row.get("key").is_none(), "a listed key shows its secret");
    assert_eq!(row["scopes"], json!(["introspect"]));
    // Only the key id and a 32-byte hash are stored; the secret is nowhere.
    let secret = &key["ses_live_".len() + 22..key.len() - 6];
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM api_keys WHERE key_id = '{key_id}' AND length(secret_hash) = 32"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM api_keys WHERE name LIKE '%{secret}%' OR key_id LIKE '%{secret}%'"
        ))
        .await,
        0
    );

    let user = app.register("ada@example.com").await;
    let (ok, _) = introspect(&app, &key, access(&user)).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["active"], true);

    // One changed character fails the checksum: the same 401 as a key that
    // does not exist, and as a revoked one below.
    let unknown = sesame_credentials::NewApiKey::generate().unwrap().key;
    let (unknown, _) = introspect(&app, &unknown, access(&user)).await;
    unknown.assert_problem(401, "invalid_token");
    let mut typo = key.clone().into_bytes();
    let i = typo.len() - 10;
    typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    let (typo, _) = introspect(&app, &typo, access(&user)).await;
    assert_eq!(typo.status, 401);
    assert_eq!(typo.body, unknown.body);

    // A key without the scope is forbidden.
    let (missing, _) = introspect(&app, &manager, access(&user)).await;
    missing.assert_problem(403, "forbidden");

    let id = created.body["id"].as_str().unwrap();
    let revoked = app
        .delete(&format!("/v1/admin/api-keys/{id}"), &manager)
        .await;
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    let (after, _) = introspect(&app, &key, access(&user)).await;
    assert_eq!(after.status, 401);
    assert_eq!(after.body, unknown.body);
    app.delete(&format!("/v1/admin/api-keys/{id}"), &manager)
        .await
        .assert_problem(404, "not_found");
    let bad = app
        .post_as(
            "/v1/admin/api-keys",
            &manager,
            &json!({"name": " ", "scopes": ["introspect", "root"]}),
        )
        .await;
    bad.assert_problem(400, "validation_failed");
    assert_eq!(
        bad.field_errors(),
        [
            ("name".to_owned(), "invalid_length".to_owned()),
            ("scopes[1]".to_owned(), "unknown_permission".to_owned())
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn introspection_answers_for_access_tokens_only_to_service_keys() {
    let app = TestApp::spawn().await;
    let (key, _) = key_with(&app, &["introspect"]).await;
    let user = app.register("ada@example.com").await;
    let token = access(&user);

    let no_key = app.post("/v1/introspect", &json!({"token": token})).await;
    no_key.assert_problem(401, "invalid_token");
    let (as_session, _) = introspect(&app, token, token).await;
    as_session.assert_problem(403, "forbidden");

    let (active, _) = introspect(&app, &key, token).await;
    assert_eq!(active.status, 200);
    assert_eq!(active.headers["cache-control"], "no-store");
    let body = &active.body;
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], user["principal"]["id"]);
    assert_eq!(body["session_id"], user["session_id"]);
    assert_eq!(body["kind"], "user");
    assert_eq!(body["aal"], "aal1");
    assert_eq!(body["roles"], json!([]));
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["exp"].as_i64().unwrap() > body["iat"].as_i64().unwrap());
    assert!(body["iss"].as_str().unwrap().starts_with("http"));

    // The RFC's form encoding works as well.
    let form = app
        .send(
            app.client
                .post(app.url("/v1/introspect"))
                .bearer_auth(&key)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={token}&token_type_hint=access_token")),
        )
        .await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert_eq!(form.body["active"], true);

    for garbage in ["", "garbage", "a.b.c", &format!("{token}x")] {
        let (inactive, raw) = introspect(&app, &key, garbage).await;
        assert_eq!(inactive.status, 200);
        assert_eq!(raw, r#"{"active":false}"#, "{garbage:?}");
    }
    // A role assigned shows at once, and in the next token.
    app.send(
        app.client
            .put(app.url("/v1/admin/roles/support"))
            .bearer_auth(&key_with(&app, &["roles:manage"]).await.0)
            .json(&json!({"permissions": ["users:read"]})),
    )
    .await;
    let assigner = key_with(&app, &["roles:assign"]).await.0;
    let path = format!("/v1/admin/users/{}/roles/support", id_of(&user));
    for _ in 0..2 {
        let resp = put_as(&app, &path, &assigner, None).await;
        assert_eq!(resp.status, 204, "{}", resp.body);
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE topic = 'identity.role.assigned'")
            .await,
        1
    );
    let (with_role, _) = introspect(&app, &key, token).await;
    assert_eq!(with_role.body["roles"], json!(["support"]));
    let next = app.refresh(user["refresh_token"].as_str().unwrap()).await;
    let claims = crate::mfa::verified_claims(&app, access(&next.body)).await;
    assert_eq!(claims.roles, ["support"]);

    // Signed out: inactive at once.
    let out = app.delete("/v1/sessions/current", access(&next.body)).await;
    assert_eq!(out.status, 204);
    let (ended, raw) = introspect(&app, &key, access(&next.body)).await;
    assert_eq!(ended.status, 200);
    assert_eq!(raw, r#"{"active":false}"#);
    app.stop().await;
}

#[tokio::test]
async fn configured_roles_are_seeded_and_unknown_permissions_stop_the_start() {
    let seed = |name: &str, permissions: &[&str]| sesame_app::access::RoleSeed {
        name: name.into(),
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
    };
    let app = TestApp::builder()
        .config(|c| c.roles = vec![seed("support", &["users:read", "sessions:read"])])
        .spawn()
        .await;
    let (key, _) = key_with(&app, &["roles:manage"]).await;
    let roles = app.get("/v1/admin/roles", Some(&key)).await;
    assert_eq!(roles.status, 200, "{}", roles.body);
    let names: Vec<_> = roles
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, [json!("admin"), json!("support")]);
    assert_eq!(
        roles.body[1]["permissions"],
        json!(["users:read", "sessions:read"])
    );
    assert_eq!(
        roles.body[0]["permissions"].as_array().unwrap().len(),
        sesame_app::access::PERMISSIONS.len()
    );
    // The built-in role is the configuration's, not the API's.
    put_as(
        &app,
        "/v1/admin/roles/admin",
        &key,
        Some(&json!({"permissions": []})),
    )
    .await
    .assert_problem(403, "forbidden");
    app.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let config = sesame::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        roles: vec![seed("support", &["users:everything"])],
        ..sesame::Config::default()
    };
    let started = sesame::Server::start(&config, sesame::Hooks::default()).await;
    let err = started
        .err()
        .expect("a role with an unknown permission starts");
    assert!(
        err.to_string()
            .contains("unknown permission users:everything"),
        "{err}"
    );
}

#[tokio::test]
async fn a_key_made_on_the_command_line_works_on_the_running_server() {
    let app = TestApp::spawn().await;
    let lines = sesame::admin(
        &app.operator_config(),
        sesame::AdminCommand::CreateApiKey {
            name: "gateway".into(),
            scopes: vec!["introspect".into()],
            expires_in_days: Some(30),
        },
    )
    .await
    .unwrap();
    let user = app.register("ada@example.com").await;
    let (active, _) = introspect(&app, &lines[0], access(&user)).await;
    assert_eq!(active.status, 200, "{}", active.body);
    assert_eq!(active.body["active"], true);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM api_keys WHERE name = 'gateway' AND expires_at IS NOT NULL"
        )
        .await,
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn introspections_raced_past_a_keys_limit_are_refused_beyond_it() {
    let app = TestApp::builder()
        .config(|c| c.rate_limits.per_api_key = sesame_core::Rate::new(5, 60))
        .spawn()
        .await;
    let (key, _) = key_with(&app, &["introspect"]).await;
    let (other, _) = key_with(&app, &["introspect"]).await;
    let user = app.register("ada@example.com").await;
    let requests: Vec<_> = (0..12)
        .map(|_| {
            sesame_tests::Raw::post("/v1/introspect", json!({"token": access(&user)})).bearer(&key)
        })
        .collect();
    let answers = app.race(&requests).await;
    let answered = answers.iter().filter(|r| r.status == 200).count();
    assert_eq!(answered, 5, "{answers:?}");
    for refused in answers.iter().filter(|r| r.status != 200) {
        refused.assert_problem(429, "rate_limited");
        assert!(refused.headers.contains_key("retry-after"));
    }
    // Each key has its own budget.
    let (fresh, _) = introspect(&app, &other, access(&user)).await;
    assert_eq!(fresh.body["active"], true);
    app.stop().await;
}
