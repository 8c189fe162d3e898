use futures_util::future::join_all;
use serde_json::json;
use sesame_tests::{PASSWORD, TestApp};

#[tokio::test]
async fn registration_returns_a_session_and_the_account() {
    let app = TestApp::spawn().await;
    let body = json!({
        "login": {"type": "email", "identifier": "  Ada.Lovelace@Example.COM "},
        "password": PASSWORD,
        "profile": {"display_name": "Ada", "avatar_url": "https://cdn.example.com/ada.png"}
    });
    let resp = app.post("/v1/registrations", &body).await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let b = &resp.body;
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["expires_in"], 900);
    assert!(b["access_token"].as_str().unwrap().split('.').count() == 3);
    assert!(b["refresh_token"].as_str().unwrap().len() >= 43);
    assert_eq!(b["principal"]["kind"], "user");
    assert_eq!(b["user"]["id"], b["principal"]["id"]);
    assert_eq!(b["user"]["logins"][0]["type"], "email");
    assert_eq!(
        b["user"]["logins"][0]["identifier"],
        "ada.lovelace@example.com"
    );
    assert_eq!(b["user"]["has_password"], true);
    assert_eq!(b["user"]["profile"]["display_name"], "Ada");
    assert_eq!(
        b["user"]["profile"]["avatar_url"],
        "https://cdn.example.com/ada.png"
    );

    // One of each row, with the event and audit entry written alongside.
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM principals").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM passwords").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE topic = 'identity.user.signed_up'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE event = 'user.signed_up'")
            .await,
        1
    );
    // The password is stored as an Argon2id PHC string, never in clear.
    let hash = app.db.text("SELECT hash FROM passwords").await;
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
}

#[tokio::test]
async fn each_login_type_is_stored_normalised() {
    let app = TestApp::builder()
        .config(|c| c.phone_default_region = Some("DE".into()))
        .spawn()
        .await;
    let phone = app.register_as("phone", "030 901820", PASSWORD).await;
    assert_eq!(phone.status, 201, "{}", phone.body);
    assert_eq!(phone.body["user"]["logins"][0]["identifier"], "+4930901820");

    let user = app
        .register_as("username", "  ＡＤＡ_Lovelace ", PASSWORD)
        .await;
    assert_eq!(user.status, 201, "{}", user.body);
    assert_eq!(user.body["user"]["logins"][0]["identifier"], "ada_lovelace");

    let email = app.register_as("email", "info@Bücher.de", PASSWORD).await;
    assert_eq!(email.status, 201, "{}", email.body);
    assert_eq!(
        email.body["user"]["logins"][0]["identifier"],
        "info@xn--bcher-kva.de"
    );

    // The same phone written internationally is the same identifier.
    app.register_as("phone", "+49 30 901820", PASSWORD)
        .await
        .assert_problem(409, "identifier_taken");
    // The same username in another case is the same identifier.
    app.register_as("username", "ada_LOVELACE", PASSWORD)
        .await
        .assert_problem(409, "identifier_taken");
}

#[tokio::test]
async fn a_taken_identifier_is_a_conflict_in_any_spelling() {
    let app = TestApp::spawn().await;
    app.register("grace@example.com").await;
    let again = app
        .register_as("email", " GRACE@example.COM", "another good passphrase")
        .await;
    again.assert_problem(409, "identifier_taken");
    assert_eq!(app.count("SELECT COUNT(*) FROM principals").await, 1);
}

#[tokio::test]
async fn fifty_concurrent_registrations_of_one_email_have_one_winner() {
    let app = TestApp::spawn().await;
    let spellings: Vec<String> = (0..50)
        .map(|i| match i % 4 {
            0 => "race@example.com".to_owned(),
            1 => " RACE@example.com ".to_owned(),
            2 => "Race@Example.Com".to_owned(),
            _ => format!("{}race@EXAMPLE.com\t", " ".repeat(i % 3)),
        })
        .collect();
    let responses = join_all(
        spellings
            .iter()
            .map(|s| app.register_as("email", s, PASSWORD)),
    )
    .await;
    let created = responses.iter().filter(|r| r.status == 201).count();
    let taken = responses
        .iter()
        .filter(|r| r.status == 409 && r.code() == "identifier_taken")
        .count();
    let server_errors: Vec<_> = responses
        .iter()
        .filter(|r| r.status >= 500)
        .map(|r| &r.body)
        .collect();
    assert!(server_errors.is_empty(), "{server_errors:?}");
    assert_eq!((created, taken), (1, 49));
    assert_eq!(app.count("SELECT COUNT(*) FROM principals").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM login_methods").await, 1);
}

#[tokio::test]
async fn invalid_identifiers_are_reported_by_field() {
    let app = TestApp::spawn().await;
    let cases = [
        ("email", "not-an-email", "invalid_email"),
        ("phone", "12345", "invalid_phone"),
        ("phone", "030 901820", "invalid_phone"), // national format with no default region
        ("username", "ab", "too_short"),
        ("username", "\u{0430}dmin", "invalid_username"),
    ];
    for (kind, identifier, code) in cases {
        let resp = app.register_as(kind, identifier, PASSWORD).await;
        resp.assert_problem(400, "validation_failed");
        assert_eq!(
            resp.field_errors(),
            [("login.identifier".to_owned(), code.to_owned())],
            "{identifier}"
        );
    }
    let resp = app.register_as("carrier_pigeon", "x", PASSWORD).await;
    resp.assert_problem(400, "validation_failed");
    assert_eq!(
        resp.field_errors(),
        [("login.type".to_owned(), "unsupported_login_type".to_owned())]
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM principals").await, 0);
}

#[tokio::test]
async fn every_invalid_field_is_listed_at_once() {
    let app = TestApp::spawn().await;
    let body = json!({
        "login": {"type": "email", "identifier": "nope"},
        "profile": {"avatar_url": "javascript:alert(1)"}
    });
    let resp = app.post("/v1/registrations", &body).await;
    resp.assert_problem(400, "validation_failed");
    let mut fields = resp.field_errors();
    fields.sort();
    assert_eq!(
        fields,
        [
            ("login.identifier".to_owned(), "invalid_email".to_owned()),
            ("password".to_owned(), "required".to_owned()),
            ("profile.avatar_url".to_owned(), "invalid_url".to_owned()),
        ]
    );
}

#[tokio::test]
async fn weak_passwords_are_refused() {
    let app = TestApp::spawn().await;
    for (pw, reason) in [
        ("short1", "too_short"),
        ("password123", "too_common"),
        ("iloveyou", "too_common"),
    ] {
        let resp = app.register_as("email", "weak@example.com", pw).await;
        resp.assert_problem(422, "weak_password");
        assert_eq!(
            resp.field_errors(),
            [("password".to_owned(), reason.to_owned())]
        );
    }
    let resp = app
        .register_as("email", "weak@example.com", "weak@example.com!")
        .await;
    resp.assert_problem(422, "weak_password");
    let resp = app
        .register_as("email", "weak@example.com", &"x".repeat(129))
        .await;
    resp.assert_problem(400, "validation_failed");
    assert_eq!(
        resp.field_errors(),
        [("password".to_owned(), "too_long".to_owned())]
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM principals").await, 0);
}

#[tokio::test]
async fn default_argon2_parameters_are_the_documented_ones() {
    let app = TestApp::builder()
        .config(|c| c.argon2 = Default::default())
        .spawn()
        .await;
    app.register("defaults@example.com").await;
    let hash = app.db.text("SELECT hash FROM passwords").await;
    assert!(
        hash.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"),
        "{hash}"
    );
    assert_eq!(
        app.sign_in("defaults@example.com", PASSWORD).await.status,
        200
    );
}
