//! Erasure over HTTP: by an admin and by the user, what is left (a
//! tombstone, scrubbed audit rows and events) and what is free at once.

use crate::admin::{access, id_of, introspect, key_with};
use serde_json::{Value, json};
use sesame_tests::{PASSWORD, TestApp};

/// Rows anywhere that still name `email` or belong to `id`'s credentials or
/// profile, table by table.
async fn traces(app: &TestApp, id: &str, email: &str) -> Vec<(String, i64)> {
    let id = app.db.uuid_literal(id.parse().unwrap());
    let mut found = Vec::new();
    for (table, filter) in [
        (
            "login_methods",
            format!("identifier = '{email}' OR principal_id = {id}"),
        ),
        (
            "login_attempts",
            format!("identifier = '{email}' OR principal_id = {id}"),
        ),
        ("verification_codes", format!("identifier = '{email}'")),
        ("passwords", format!("principal_id = {id}")),
        ("password_history", format!("principal_id = {id}")),
        ("sessions", format!("principal_id = {id}")),
        ("users", format!("id = {id}")),
        (
            "audit_log",
            format!(
                "CAST(data AS TEXT) LIKE '%{email}%' OR (principal_id = {id} AND (ip IS NOT NULL OR user_agent IS NOT NULL))"
            ),
        ),
        ("outbox", format!("CAST(payload AS TEXT) LIKE '%{email}%'")),
    ] {
        let n = app
            .count(&format!("SELECT COUNT(*) FROM {table} WHERE {filter}"))
            .await;
        if n > 0 {
            found.push((table.to_owned(), n));
        }
    }
    found
}

#[tokio::test]
async fn an_erased_user_leaves_a_tombstone_and_its_identifier_free() {
    let app = TestApp::spawn().await;
    let (key, _) = key_with(&app, &["users:delete", "users:read", "introspect"]).await;
    let body = json!({
        "login": {"type": "email", "identifier": "ada@example.com"},
        "password": PASSWORD,
        "profile": {"display_name": "Ada Lovelace"},
    });
    let user = app.post("/v1/registrations", &body).await.body;
    let id = id_of(&user);
    let hash = app
        .db
        .text(&format!(
            "SELECT hash FROM passwords WHERE principal_id = {}",
            app.db.uuid_literal(id.parse().unwrap())
        ))
        .await;
    let secrets = ["ada@example.com", "Ada Lovelace", hash.as_str()];
    // A code flow and a wrong password leave rows that name the address.
    app.send_code("email", "ada@example.com", "sign_in", None)
        .await;
    app.app.flush_deliveries().await;
    app.sign_in("ada@example.com", "not her password").await;
    assert!(!traces(&app, &id, "ada@example.com").await.is_empty());
    let dump = app.db.dump_all().await;
    assert!(
        secrets.iter().all(|s| dump.contains(s)),
        "the dump misses what it should find"
    );

    let erased = app
        .send(
            app.client
                .delete(app.url(&format!("/v1/admin/users/{id}")))
                .bearer_auth(&key),
        )
        .await;
    assert_eq!(erased.status, 204, "{}", erased.body);
    assert_eq!(traces(&app, &id, "ada@example.com").await, []);
    let dump = app.db.dump_all().await;
    for secret in secrets {
        assert!(
            !dump.contains(secret),
            "{secret} is still in the database:\n{dump}"
        );
    }
    let (inactive, raw) = introspect(&app, &key, access(&user)).await;
    assert_eq!(inactive.status, 200);
    assert_eq!(raw, r#"{"active":false}"#);
    app.refresh(user["refresh_token"].as_str().unwrap())
        .await
        .assert_problem(401, "invalid_token");
    // One event, naming the key as actor; the principal stays as a tombstone.
    let deleted = app
        .db
        .text("SELECT CAST(payload AS TEXT) FROM outbox WHERE topic = 'identity.user.deleted'")
        .await;
    let deleted: Value = serde_json::from_str(&deleted).unwrap();
    assert_eq!(deleted["subject"], json!(id));
    assert_eq!(deleted["actorkind"], "service");
    assert_eq!(deleted["data"], json!({"principal_id": id}));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE topic = 'identity.user.deleted'")
            .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM principals WHERE id = {} AND deleted_at IS NOT NULL",
            app.db.uuid_literal(id.parse().unwrap())
        ))
        .await,
        1
    );
    app.get(&format!("/v1/admin/users/{id}"), Some(&key))
        .await
        .assert_problem(404, "not_found");
    app.send(
        app.client
            .delete(app.url(&format!("/v1/admin/users/{id}")))
            .bearer_auth(&key),
    )
    .await
    .assert_problem(404, "not_found");

    // The address is free at once, for a new principal.
    let again = app.register("ada@example.com").await;
    assert_ne!(id_of(&again), id);
    app.stop().await;
}

#[tokio::test]
async fn a_user_erases_itself_with_a_recent_proof() {
    let app = TestApp::builder().manual_clock().spawn().await;
    let user = app.register("ada@example.com").await;
    app.clock.advance(time::Duration::minutes(6));
    let stale = app.refresh(user["refresh_token"].as_str().unwrap()).await;
    let stale = access(&stale.body).to_owned();
    app.delete("/v1/me", &stale)
        .await
        .assert_problem(403, "reauthentication_required");
    let fresh = app.sign_in("ada@example.com", PASSWORD).await;
    let erased = app.delete("/v1/me", access(&fresh.body)).await;
    assert_eq!(erased.status, 204, "{}", erased.body);
    app.get("/v1/me", Some(access(&fresh.body)))
        .await
        .assert_problem(401, "invalid_token");
    app.get("/v1/me", Some(&stale))
        .await
        .assert_problem(401, "invalid_token");
    app.sign_in("ada@example.com", PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    let deleted = app
        .db
        .text("SELECT CAST(payload AS TEXT) FROM outbox WHERE topic = 'identity.user.deleted'")
        .await;
    let deleted: Value = serde_json::from_str(&deleted).unwrap();
    assert_eq!(deleted["actorkind"], "principal");
    assert_eq!(deleted["actorid"], json!(id_of(&user)));
    assert_eq!(traces(&app, &id_of(&user), "ada@example.com").await, []);
    app.stop().await;
}
