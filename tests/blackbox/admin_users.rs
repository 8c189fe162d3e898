//! The admin API on users: the directory in keyset pages, suspension, a
//! user's login methods and second factors, and the audit log.

use crate::admin::{access, id_of, introspect, key_with};
use crate::mfa::enrol;
use serde_json::{Value, json};
use sesame_tests::{PASSWORD, TestApp};

/// A cursor sent with filters other than its own: `400`, naming the cursor.
async fn refused_with_other_filters(app: &TestApp, key: &str, path: &str) {
    let other = app.get(path, Some(key)).await;
    other.assert_problem(400, "validation_failed");
    assert_eq!(
        other.field_errors(),
        [("cursor".to_owned(), "filters_changed".to_owned())]
    );
}

#[tokio::test]
async fn a_suspended_user_is_inactive_everywhere_until_reactivated() {
    let app = TestApp::spawn().await;
    let (key, _) = key_with(&app, &["introspect", "users:suspend", "users:read"]).await;
    let user = app.register("ada@example.com").await;
    let id = id_of(&user);
    let suspended = app
        .post_as(
            &format!("/v1/admin/users/{id}/suspend"),
            &key,
            &json!({"reason": "chargeback"}),
        )
        .await;
    assert_eq!(suspended.status, 204, "{}", suspended.body);
    let (inactive, raw) = introspect(&app, &key, access(&user)).await;
    assert_eq!(inactive.status, 200);
    assert_eq!(raw, r#"{"active":false}"#);
    app.get("/v1/me", Some(access(&user)))
        .await
        .assert_problem(401, "invalid_token");
    app.refresh(user["refresh_token"].as_str().unwrap())
        .await
        .assert_problem(401, "invalid_token");
    app.sign_in("ada@example.com", PASSWORD)
        .await
        .assert_problem(403, "account_suspended");
    let shown = app.get(&format!("/v1/admin/users/{id}"), Some(&key)).await;
    assert_eq!(shown.body["status"], "suspended", "{}", shown.body);
    // Reads by admins are audited too, about the account read.
    let read = app
        .db
        .text(&format!(
            "SELECT CAST(data AS TEXT) FROM audit_log WHERE event = 'admin.read' AND principal_id = {}",
            app.db.uuid_literal(id.parse().unwrap())
        ))
        .await;
    let read: Value = serde_json::from_str(&read).unwrap();
    assert_eq!(read["what"], "user");
    assert_eq!(read["actor"]["type"], "service");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE topic = 'identity.user.suspended'")
            .await,
        1
    );

    let back = app
        .send(
            app.client
                .post(app.url(&format!("/v1/admin/users/{id}/reactivate")))
                .bearer_auth(&key),
        )
        .await;
    assert_eq!(back.status, 204, "{}", back.body);
    let signed_in = app.sign_in("ada@example.com", PASSWORD).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    let (active, _) = introspect(&app, &key, access(&signed_in.body)).await;
    assert_eq!(active.body["active"], true);
    app.get(
        &format!("/v1/admin/users/{}", uuid::Uuid::now_v7()),
        Some(&key),
    )
    .await
    .assert_problem(404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn users_are_walked_in_keyset_pages_that_insertions_do_not_shift() {
    let app = TestApp::spawn().await;
    let (key, _) = key_with(&app, &["users:read"]).await;
    let mut originals = Vec::new();
    for i in 0..120 {
        originals.push(id_of(&app.register(&format!("user{i}@example.com")).await));
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/admin/users?limit=50&cursor={c}"),
            None => "/v1/admin/users?limit=50".to_owned(),
        };
        let page = app.get(&path, Some(&key)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        pages += 1;
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        if pages == 1 {
            // Ten more sign up while the walk goes on.
            for i in 0..10 {
                app.register(&format!("late{i}@example.com")).await;
            }
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    for id in &originals {
        assert_eq!(
            seen.iter().filter(|s| *s == id).count(),
            1,
            "{id} not seen once"
        );
    }
    assert_eq!(seen.len(), 130, "the late ones come last, once each");
    assert_eq!(pages, 3);

    // A cursor continues only the walk it came from.
    let first = app.get("/v1/admin/users?limit=50", Some(&key)).await;
    let next = first.body["next_cursor"].as_str().unwrap();
    refused_with_other_filters(
        &app,
        &key,
        &format!("/v1/admin/users?limit=50&status=active&cursor={next}"),
    )
    .await;
    // Empty parameters are absent: the first page, unfiltered.
    let empty = app
        .get(
            "/v1/admin/users?q=&kind=&status=&cursor=&limit=50",
            Some(&key),
        )
        .await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(empty.body["items"], first.body["items"]);
    app.get("/v1/admin/users?cursor=nonsense", Some(&key))
        .await
        .assert_problem(400, "validation_failed");
    app.get("/v1/admin/users?limit=0", Some(&key))
        .await
        .assert_problem(400, "validation_failed");
    app.get("/v1/admin/users?colour=blue", Some(&key))
        .await
        .assert_problem(400, "validation_failed");

    // q is a login identifier, normalised as the login type would.
    let found = app
        .get("/v1/admin/users?q=%20USER7@Example.com%20", Some(&key))
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(found.body["items"][0]["id"], json!(originals[7]));
    let none = app
        .get("/v1/admin/users?q=nobody@example.com", Some(&key))
        .await;
    assert_eq!(none.body["items"], json!([]));
    assert_eq!(none.body["next_cursor"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn an_admin_manages_a_users_logins_and_second_factors() {
    let app = TestApp::spawn().await;
    let (key, _) = key_with(&app, &["users:read", "users:update"]).await;
    let reg = app.register("ada@example.com").await;
    let id = id_of(&reg);
    let Some((_, backup)) = enrol(&app, access(&reg)).await else {
        return;
    };
    let logins = app
        .get(&format!("/v1/admin/users/{id}/logins"), Some(&key))
        .await;
    assert_eq!(logins.status, 200, "{}", logins.body);
    let login_id = logins.body[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(logins.body[0]["identifier"], "ada@example.com");
    // Her only login is her only way in: admins cannot take it either.
    app.send(
        app.client
            .delete(app.url(&format!("/v1/admin/users/{id}/logins/{login_id}")))
            .bearer_auth(&key),
    )
    .await
    .assert_problem(409, "last_login_method");

    // A second factor lost: the reset lets her in with her password alone.
    let challenged = app.sign_in("ada@example.com", PASSWORD).await;
    assert_eq!(challenged.body["mfa_required"], true, "{}", challenged.body);
    let reset = app
        .send(
            app.client
                .delete(app.url(&format!("/v1/admin/users/{id}/mfa")))
                .bearer_auth(&key),
        )
        .await;
    assert_eq!(reset.status, 204, "{}", reset.body);
    let signed_in = app.sign_in("ada@example.com", PASSWORD).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    assert!(
        signed_in.body["access_token"].is_string(),
        "{}",
        signed_in.body
    );
    let me = app.get("/v1/me", Some(access(&signed_in.body))).await;
    assert_eq!(me.body["mfa"]["totp"], false, "{}", me.body);
    assert_eq!(me.body["mfa"]["backup_codes_left"], 0, "{}", me.body);
    let old_backup = app
        .post_as(
            "/v1/sessions/mfa",
            access(&signed_in.body),
            &json!({"backup_code": backup[0]}),
        )
        .await;
    assert_ne!(old_backup.status, 200, "{}", old_backup.body);
    let removed = app
        .db
        .text("SELECT CAST(payload AS TEXT) FROM outbox WHERE topic = 'identity.mfa.removed'")
        .await;
    let removed: Value = serde_json::from_str(&removed).unwrap();
    assert_eq!(removed["actorkind"], "service");
    app.stop().await;
}

#[tokio::test]
async fn the_audit_log_is_read_newest_first_in_pages_bound_to_their_filters() {
    let app = TestApp::spawn().await;
    let (key, _) = key_with(&app, &["audit:read"]).await;
    let ada = app.register("ada@example.com").await;
    for i in 0..4 {
        app.register(&format!("user{i}@example.com")).await;
    }
    for _ in 0..3 {
        app.sign_in("ada@example.com", PASSWORD).await;
    }
    let ada_id = id_of(&ada);
    let path = format!("/v1/admin/audit?principal_id={ada_id}&limit=2");
    let first = app.get(&path, Some(&key)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let mut events: Vec<String> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    let mut page = first.body.clone();
    loop {
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["principal_id"], json!(ada_id));
            events.push(item["event"].as_str().unwrap().to_owned());
            ids.push(item["id"].as_str().unwrap().to_owned());
        }
        let Some(next) = page["next_cursor"].as_str() else {
            break;
        };
        let resp = app.get(&format!("{path}&cursor={next}"), Some(&key)).await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        page = resp.body;
    }
    // Newest first: three sign-ins, then the sign-up.
    assert_eq!(
        events,
        [
            "user.signed_in",
            "user.signed_in",
            "user.signed_in",
            "user.signed_up"
        ]
    );
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(ids, sorted);

    let only = app
        .get("/v1/admin/audit?event=user.signed_up&limit=200", Some(&key))
        .await;
    assert_eq!(only.body["items"].as_array().unwrap().len(), 5);
    let next = first.body["next_cursor"].as_str().unwrap();
    refused_with_other_filters(
        &app,
        &key,
        &format!("/v1/admin/audit?event=user.signed_in&cursor={next}"),
    )
    .await;
    let bad = app
        .get(
            "/v1/admin/audit?principal_id=nope&from=yesterday",
            Some(&key),
        )
        .await;
    bad.assert_problem(400, "validation_failed");
    assert_eq!(
        bad.field_errors(),
        [
            ("principal_id".to_owned(), "invalid_uuid".to_owned()),
            ("from".to_owned(), "invalid_date_time".to_owned())
        ]
    );
    let future = app
        .get("/v1/admin/audit?from=2999-01-01T00:00:00Z", Some(&key))
        .await;
    assert_eq!(future.body["items"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn users_are_found_by_login_or_by_the_start_of_their_display_name() {
    let app = TestApp::spawn().await;
    let (key, _) = key_with(&app, &["users:read"]).await;
    let mut ids = Vec::new();
    for (email, name) in [
        ("ada@example.com", "Ada Lovelace"),
        ("countess@example.com", "ada byron"),
        ("adam@example.com", "Adam"),
        ("bob@example.com", "Bob"),
    ] {
        let body = json!({
            "login": {"type": "email", "identifier": email},
            "password": PASSWORD,
            "profile": {"display_name": name},
        });
        let resp = app.post("/v1/registrations", &body).await;
        assert_eq!(resp.status, 201, "{}", resp.body);
        ids.push(id_of(&resp.body));
    }
    let found = |resp: &sesame_tests::Resp| -> Vec<String> {
        resp.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let ada = app.get("/v1/admin/users?q=ada", Some(&key)).await;
    assert_eq!(ada.status, 200, "{}", ada.body);
    assert_eq!(found(&ada), ids[..3]);
    // A page of two, then the rest, with the search in the cursor.
    let first = app.get("/v1/admin/users?q=ada&limit=2", Some(&key)).await;
    assert_eq!(found(&first), ids[..2]);
    let next = first.body["next_cursor"].as_str().unwrap();
    let second = app
        .get(
            &format!("/v1/admin/users?q=ada&limit=2&cursor={next}"),
            Some(&key),
        )
        .await;
    assert_eq!(found(&second), ids[2..3]);
    assert_eq!(second.body["next_cursor"], Value::Null);
    // An address finds its owner, whatever the display names say.
    let bob = app
        .get("/v1/admin/users?q=BOB@example.com", Some(&key))
        .await;
    assert_eq!(found(&bob), ids[3..4]);
    let none = app.get("/v1/admin/users?q=%25", Some(&key)).await;
    assert_eq!(found(&none), Vec::<String>::new());
    app.stop().await;
}
