//! Principal kinds: a credentials-only kind (its profile kept by another
//! service under the same id) made by the operator signs in like anyone else.

use serde_json::Value;
use sesame_tests::TestApp;

async fn create(
    app: &TestApp,
    kind: &str,
    email: &str,
    roles: &[&str],
) -> Result<String, sesame::StartError> {
    sesame::admin(
        &app.operator_config(),
        sesame::AdminCommand::CreateUser {
            kind: kind.into(),
            login_type: "email".into(),
            identifier: email.into(),
            password: Some("correct horse battery staple 9".into()),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        },
    )
    .await
    .map(|lines| lines[0].clone())
}

#[tokio::test]
async fn a_vendor_made_on_the_command_line_signs_in_without_a_profile() {
    let app = TestApp::spawn().await;
    let id = create(&app, "vendor", "Sales@Acme.example", &[])
        .await
        .unwrap();
    let signed_in = app
        .sign_in("sales@acme.example", "correct horse battery staple 9")
        .await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    assert_eq!(signed_in.body["principal"]["kind"], "vendor");
    let access = signed_in.body["access_token"].as_str().unwrap();
    let claims = crate::mfa::verified_claims(&app, access).await;
    assert_eq!(claims.kind, "vendor");
    assert!(claims.roles.is_empty());

    let me = app.get("/v1/me", Some(access)).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["id"], Value::String(id.clone()));
    assert_eq!(me.body["kind"], "vendor");
    assert_eq!(me.body["profile"], Value::Null);
    assert_eq!(me.body["logins"][0]["identifier"], "sales@acme.example");
    assert!(me.body["logins"][0]["verified_at"].is_string());
    let rows = app
        .count(&format!(
            "SELECT COUNT(*) FROM users WHERE id = {}",
            app.db.uuid_literal(id.parse().unwrap())
        ))
        .await;
    assert_eq!(rows, 0, "a credentials-only kind has no identity row");
    app.patch(
        "/v1/me/profile",
        access,
        &serde_json::json!({"display_name": "Acme"}),
    )
    .await
    .assert_problem(404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn the_first_admin_comes_from_the_command_line_and_kinds_are_checked() {
    let app = TestApp::spawn().await;
    create(&app, "admin", "root@example.com", &["admin"])
        .await
        .unwrap();
    let signed_in = app
        .sign_in("root@example.com", "correct horse battery staple 9")
        .await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    let access = signed_in.body["access_token"].as_str().unwrap();
    let claims = crate::mfa::verified_claims(&app, access).await;
    assert_eq!(
        (claims.kind.as_str(), claims.roles.as_slice()),
        ("admin", &["admin".to_owned()][..])
    );
    // Reading needs the permission only; the role gives it.
    let users = app.get("/v1/admin/users", Some(access)).await;
    assert_eq!(users.status, 200, "{}", users.body);

    let unknown = create(&app, "robot", "r2@example.com", &[])
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("unknown_kind"), "{unknown}");
    let taken = create(&app, "vendor", "root@example.com", &[])
        .await
        .unwrap_err();
    assert!(taken.to_string().contains("identifier_taken"), "{taken}");
    let no_role = create(&app, "vendor", "v@example.com", &["wizard"])
        .await
        .unwrap_err();
    assert!(no_role.to_string().contains("No such role"), "{no_role}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM login_methods WHERE identifier = 'v@example.com'")
            .await,
        0,
        "a refused creation writes nothing"
    );
    app.stop().await;
}
