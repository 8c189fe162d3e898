//! The linking policy where e-mails meet, the race of first sign-ins,
//! sealed provider tokens and connections added at run time.

use crate::admin::access;
use serde_json::{Value, json};
use sesame_tests::idp::{self, Person, StubIdp};
use sesame_tests::{Resp, TestApp};

/// Signs `address` up without a password (so the address is verified).
async fn passwordless(app: &TestApp, address: &str) -> Value {
    app.send_code("email", address, "register", None).await;
    let code = app.last_code(address).await;
    let body = json!({"login": {"type": "email", "identifier": address}, "code": code});
    let reg = app.post("/v1/registrations", &body).await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    reg.body
}

async fn logins(app: &TestApp, body: &Value) -> Vec<String> {
    let me = app.get("/v1/me", Some(access(body))).await;
    me.body["logins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{}:{}",
                l["type"].as_str().unwrap(),
                l["identifier"].as_str().unwrap()
            )
        })
        .collect()
}

async fn bound_events(app: &TestApp, login_type: &str) -> i64 {
    app.count(&format!(
        "SELECT COUNT(*) FROM outbox WHERE topic = 'identity.login_method.bound' \
         AND CAST(payload AS TEXT) LIKE '%\"{login_type}\"%'"
    ))
    .await
}

/// Settings of a connection `oidc:corp` to `idp`, for the admin API.
fn corp_settings(idp: &StubIdp) -> Value {
    json!({
        "client_id": idp::CLIENT_ID,
        "client_secret": "stub-secret",
        "issuer": idp.issuer,
        "return_to": [idp::RETURN_TO],
        "allow_private_network": true,
    })
}

async fn put_connection(app: &TestApp, admin: &str, name: &str, body: Value) -> Resp {
    let url = app.url(&format!("/v1/admin/connections/{name}"));
    app.send(app.client.put(url).bearer_auth(admin).json(&body))
        .await
}

/// Binds the username `name` to the caller and sets a password.
async fn add_username_and_password(app: &TestApp, token: &str, name: &str) {
    let bind = json!({"login": {"type": "username", "identifier": name}});
    let bound = app.post_as("/v1/me/logins", token, &bind).await;
    assert_eq!(bound.status, 201, "{}", bound.body);
    let password = json!({"new_password": sesame_tests::PASSWORD});
    let set = app
        .send(
            app.client
                .put(app.url("/v1/me/password"))
                .bearer_auth(token)
                .json(&password),
        )
        .await;
    assert!(set.status < 300, "{} {}", set.status, set.body);
}

async fn delete_connection(app: &TestApp, admin: &str, name: &str) -> Resp {
    let url = app.url(&format!("/v1/admin/connections/{name}"));
    app.send(app.client.delete(url).bearer_auth(admin)).await
}

#[tokio::test]
async fn a_verified_email_links_only_where_the_connection_opts_in() {
    let idp = StubIdp::start(Person::new("alice-sub", "alice@example.test")).await;
    let mut optin = idp::connection("oidc:optin", &idp.issuer);
    optin.settings.link_by_verified_email = true;
    let strict = idp::connection("oidc:strict", &idp.issuer);
    let app = idp::app_with(vec![strict, optin]).await;
    let local = passwordless(&app, "alice@example.test").await;
    let before = logins(&app, &local).await;
    // Default: no silent merge.
    idp::sign_in(&app, "oidc:strict")
        .await
        .assert_problem(409, "link_required");
    assert_eq!(logins(&app, &local).await, before);
    assert_eq!(bound_events(&app, "oidc:strict").await, 0);
    // Opted in: the provider's login joins the local account, once.
    let linked = idp::sign_in(&app, "oidc:optin").await;
    assert_eq!(linked.status, 200, "{}", linked.body);
    assert_eq!(linked.body["principal"]["id"], local["principal"]["id"]);
    let after = logins(&app, &local).await;
    assert!(
        after.contains(&format!("oidc:optin:{}#alice-sub", idp.issuer)),
        "{after:?}"
    );
    assert_eq!(bound_events(&app, "oidc:optin").await, 1);
    let again = idp::sign_in(&app, "oidc:optin").await;
    assert_eq!(again.body["principal"]["id"], local["principal"]["id"]);
    assert_eq!(bound_events(&app, "oidc:optin").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM principals").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn an_unverified_local_email_is_never_linked() {
    let idp = StubIdp::start(Person::new("victim-sub", "victim@example.test")).await;
    let mut optin = idp::connection("oidc:optin", &idp.issuer);
    optin.settings.link_by_verified_email = true;
    let app = idp::app_with(vec![optin]).await;
    // Someone registers the victim's address first, with a password, and
    // never proves it.
    let squatter = app.register("victim@example.test").await;
    let before = logins(&app, &squatter).await;
    let victim = idp::sign_in(&app, "oidc:optin").await;
    assert_eq!(victim.status, 201, "{}", victim.body);
    assert_ne!(victim.body["user"]["id"], squatter["principal"]["id"]);
    assert_eq!(logins(&app, &squatter).await, before);
    // The new account does not get the address someone else holds.
    let theirs = logins(&app, &victim.body).await;
    assert_eq!(
        theirs,
        vec![format!("oidc:optin:{}#victim-sub", idp.issuer)]
    );
    // An unverified provider e-mail does not link to a verified local one either.
    let owner = passwordless(&app, "owner@example.test").await;
    idp.sign_in_as(Person {
        email_verified: false,
        ..Person::new("other-sub", "owner@example.test")
    });
    let other = idp::sign_in(&app, "oidc:optin").await;
    assert_eq!(other.status, 201, "{}", other.body);
    assert_ne!(other.body["user"]["id"], owner["principal"]["id"]);
    assert_eq!(
        logins(&app, &owner).await,
        vec!["email:owner@example.test".to_owned()]
    );
    app.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_first_sign_ins_of_one_subject_make_one_principal() {
    let idp = StubIdp::start(Person::new("racer", "racer@example.test")).await;
    let app = idp::app_with(vec![idp::connection("oidc:stub", &idp.issuer)]).await;
    let mut ready = Vec::new();
    for _ in 0..50 {
        let begun = idp::begin(&app, "oidc:stub", None, "sign_in").await;
        let back = idp::callback(&idp::authorize_at_stub(&begun.authorization_url).await).await;
        ready.push((begun, back["login_code"].clone()));
    }
    let exchanges = ready
        .iter()
        .map(|(begun, code)| idp::exchange(&app, &begun.flow_id, code, &begun.verifier));
    let results = futures_util::future::join_all(exchanges).await;
    let mut principals = std::collections::BTreeSet::new();
    let mut created = 0;
    for r in &results {
        assert!(matches!(r.status, 200 | 201), "{} {}", r.status, r.body);
        created += usize::from(r.status == 201);
        principals.insert(r.body["principal"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(principals.len(), 1, "{principals:?}");
    assert_eq!(created, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM principals").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM login_methods WHERE login_type = 'oidc:stub'")
            .await,
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn kept_provider_tokens_are_sealed() {
    let idp = StubIdp::start(Person::new("keeper", "keeper@example.test")).await;
    let mut keep = idp::connection("oidc:keep", &idp.issuer);
    keep.settings.store_tokens = true;
    let app = idp::app_with(vec![keep]).await;
    let signed_up = idp::sign_in(&app, "oidc:keep").await;
    assert_eq!(signed_up.status, 201, "{}", signed_up.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM provider_tokens").await, 1);
    let issued = idp.issued_tokens();
    assert_eq!(issued.len(), 2, "an access and a refresh token");
    let dump = app.db.dump_all().await;
    for token in issued {
        assert!(!dump.contains(&token), "a provider token in the dump");
        let hex: String = token.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(
            !dump.contains(&hex),
            "a provider token in the dump, as bytes"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_connection_added_through_the_admin_api_works_at_once() {
    let idp = StubIdp::start(Person::new("emp-7", "emp7@corp.example")).await;
    let app = TestApp::spawn().await;
    let Some(admin) = crate::admin::root_token(&app).await else {
        return;
    };
    let (_, challenge) = idp::app_pkce();
    let body = json!({"return_to": idp::RETURN_TO, "app_code_challenge": challenge});
    app.post("/v1/federation/oidc:corp/begin", &body)
        .await
        .assert_problem(404, "not_found");
    let settings = corp_settings(&idp);
    let put = |name: &'static str, body: Value| put_connection(&app, &admin, name, body);
    let created = put("oidc:corp", settings.clone()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["has_client_secret"], true);
    assert!(created.body.get("client_secret").is_none());
    let signed_in = idp::sign_in(&app, "oidc:corp").await;
    assert_eq!(signed_in.status, 201, "{}", signed_in.body);
    // Bad settings are refused by field; presets are not managed here.
    let mut no_issuer = settings.clone();
    no_issuer.as_object_mut().unwrap().remove("issuer");
    let refused = put("oidc:other", no_issuer).await;
    refused.assert_problem(400, "validation_failed");
    assert_eq!(
        refused.field_errors(),
        vec![("issuer".to_owned(), "required".to_owned())]
    );
    put("google", settings.clone())
        .await
        .assert_problem(400, "validation_failed");
    let mut typo = settings.clone();
    typo["link_by_verfied_email"] = json!(true);
    put("oidc:typo", typo)
        .await
        .assert_problem(400, "validation_failed");
    let listed = app.get("/v1/admin/connections", Some(&admin)).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body[0]["name"], "oidc:corp");
    assert!(!listed.body.to_string().contains("stub-secret"));
    assert!(!app.db.dump_all().await.contains("stub-secret"));
    let deleted = delete_connection(&app, &admin, "oidc:corp").await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    app.post("/v1/federation/oidc:corp/begin", &body)
        .await
        .assert_problem(404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn a_federated_sign_in_never_skips_an_enrolled_second_factor() {
    let idp = StubIdp::start(Person::new("two-factor", "ada@example.com")).await;
    let app = idp::app_with(vec![idp::connection("oidc:stub", &idp.issuer)]).await;
    let first = idp::sign_in(&app, "oidc:stub").await;
    assert_eq!(first.status, 201, "{}", first.body);
    let Some((_, backup)) = crate::mfa::enrol(&app, access(&first.body)).await else {
        return;
    };
    let second = idp::sign_in(&app, "oidc:stub").await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.body["mfa_required"], true, "{}", second.body);
    assert!(second.body.get("access_token").is_none());
    let body = json!({"challenge_id": second.body["challenge_id"], "backup_code": backup[0]});
    let done = app.post("/v1/sessions/mfa", &body).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let claims = crate::mfa::verified_claims(&app, access(&done.body)).await;
    assert_eq!(claims.aal, "aal2");
    assert_eq!(claims.amr[0], "fed");
    app.stop().await;
}

#[tokio::test]
async fn rotating_the_master_key_reseals_connection_secrets_and_provider_tokens() {
    let idp = StubIdp::start(Person::new("sealed", "sealed@example.test")).await;
    let mut keep = idp::connection("oidc:keep", &idp.issuer);
    keep.settings.store_tokens = true;
    let app = idp::app_with(vec![keep]).await;
    assert_eq!(idp::sign_in(&app, "oidc:keep").await.status, 201);
    let Some(admin) = crate::admin::root_token(&app).await else {
        return;
    };
    let created = put_connection(&app, &admin, "oidc:corp", corp_settings(&idp)).await;
    assert_eq!(created.status, 201);

    let dir = tempfile::tempdir().unwrap();
    let new_key = dir.path().join("new.key");
    let text = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    std::fs::write(&new_key, text).unwrap();
    let new_id = sesame_credentials::MasterKey::parse(text)
        .unwrap()
        .id()
        .to_owned();
    let lines = sesame::keys(
        &app.operator_config(),
        sesame::KeysCommand::RotateMaster {
            new_key_file: new_key.clone(),
        },
    )
    .await
    .unwrap();
    assert!(
        lines[0].contains("1 connection secret(s) and 1 provider token set(s)"),
        "{lines:?}"
    );
    let under_new = |table: &str, column: &str| {
        format!("SELECT COUNT(*) FROM {table} WHERE {column} = '{new_id}'")
    };
    assert_eq!(app.count(&under_new("provider_tokens", "key_id")).await, 1);
    assert_eq!(
        app.count(&under_new("federation_connections", "secret_key_id"))
            .await,
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn a_federated_login_is_unlinked_like_any_other_but_never_the_last() {
    let idp = StubIdp::start(Person {
        email: None,
        ..Person::new("only-way-in", "unused@example.test")
    })
    .await;
    let app = idp::app_with(vec![idp::connection("oidc:stub", &idp.issuer)]).await;
    let created = idp::sign_in(&app, "oidc:stub").await;
    assert_eq!(created.status, 201, "{}", created.body);
    let token = access(&created.body).to_owned();
    let me = app.get("/v1/me", Some(&token)).await;
    let id = me.body["logins"][0]["id"].as_str().unwrap().to_owned();
    app.delete(&format!("/v1/me/logins/{id}"), &token)
        .await
        .assert_problem(409, "last_login_method");
    // With a username and a password beside it, it goes.
    add_username_and_password(&app, &token, "only_way").await;
    let removed = app.delete(&format!("/v1/me/logins/{id}"), &token).await;
    assert_eq!(removed.status, 204, "{}", removed.body);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM login_methods WHERE login_type = 'oidc:stub'")
            .await,
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn a_login_whose_connection_was_deleted_is_no_way_in() {
    let idp = StubIdp::start(Person {
        email: None,
        ..Person::new("gone-corp", "unused@example.test")
    })
    .await;
    let app = TestApp::spawn().await;
    let Some(admin) = crate::admin::root_token(&app).await else {
        return;
    };
    let created = put_connection(&app, &admin, "oidc:corp", corp_settings(&idp)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let signed_in = idp::sign_in(&app, "oidc:corp").await;
    assert_eq!(signed_in.status, 201, "{}", signed_in.body);
    let token = access(&signed_in.body).to_owned();
    // A username and a password beside the provider's login.
    add_username_and_password(&app, &token, "corp_user").await;
    let me = app.get("/v1/me", Some(&token)).await;
    let username = me.body["logins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["type"] == "username")
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .unwrap();
    // With the connection gone, its login signs nobody in: the username
    // and the password are the last way in.
    let deleted = delete_connection(&app, &admin, "oidc:corp").await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    app.delete(&format!("/v1/me/logins/{username}"), &token)
        .await
        .assert_problem(409, "last_login_method");
    // Back again, the provider's login is a way in again.
    let again = put_connection(&app, &admin, "oidc:corp", corp_settings(&idp)).await;
    assert_eq!(again.status, 201, "{}", again.body);
    let removed = app
        .delete(&format!("/v1/me/logins/{username}"), &token)
        .await;
    assert_eq!(removed.status, 204, "{}", removed.body);
    app.stop().await;
}
