//! Password hashes made by other implementations (fixtures written by
//! `tests/support/legacy_hashes.py` with hashlib, passlib, bcrypt and
//! argon2-cffi) sign in, and are re-hashed to the current Argon2id on the way.

use serde_json::Value;
use sesame_tests::TestApp;

const FIXTURES: &str = include_str!("../fixtures/legacy-hashes.json");

#[tokio::test]
async fn every_imported_format_signs_in_and_is_upgraded_to_argon2id() {
    let fixtures: Value = serde_json::from_str(FIXTURES).unwrap();
    let password = fixtures["password"].as_str().unwrap();
    let app = TestApp::spawn().await;
    let current = app.sign_in("nobody@example.com", "x").await;
    assert_eq!(current.status, 401);
    for (i, case) in fixtures["hashes"].as_array().unwrap().iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let hash = case["hash"].as_str().unwrap();
        let email = format!("legacy{i}@example.com");
        app.register(&email).await;
        let set = format!(
            "UPDATE passwords SET hash = '{hash}' WHERE principal_id = \
             (SELECT principal_id FROM login_methods WHERE identifier = '{email}')"
        );
        assert_eq!(app.db.execute(&set).await, 1, "{name}");

        app.sign_in(&email, "not the password")
            .await
            .assert_problem(401, "invalid_credentials");
        let stored = |email: String| {
            let app = &app;
            async move {
                app.db
                    .text(&format!(
                        "SELECT hash FROM passwords WHERE principal_id = \
                         (SELECT principal_id FROM login_methods WHERE identifier = '{email}')"
                    ))
                    .await
            }
        };
        assert_eq!(
            stored(email.clone()).await,
            hash,
            "{name}: a failure changes nothing"
        );

        let resp = app.sign_in(&email, password).await;
        assert_eq!(resp.status, 200, "{name}: {}", resp.body);
        let upgraded = stored(email.clone()).await;
        assert!(
            upgraded.starts_with("$argon2id$v=19$m=256,t=1,p=2$"),
            "{name}: still {upgraded}"
        );
        // The new hash is the same password.
        assert_eq!(app.sign_in(&email, password).await.status, 200, "{name}");
        app.sign_in(&email, "not the password")
            .await
            .assert_problem(401, "invalid_credentials");
    }
}

#[tokio::test]
async fn a_hash_in_an_unknown_format_refuses_like_a_wrong_password() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com").await;
    app.db
        .execute("UPDATE passwords SET hash = '$1$saltsalt$hashhashhashhashhash'")
        .await;
    app.sign_in("ada@example.com", sesame_tests::PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
}
