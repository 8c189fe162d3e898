//! Sign-in through other identity providers, against a hostile stub provider
//! in the test binary: the flow, every ID-token check, GitHub-, Discord- and
//! Apple-style providers, and the linking policy.

use crate::admin::{access, id_of};
use serde_json::{Value, json};
use sesame_tests::TestApp;
use sesame_tests::idp::{
    self, Person, Spoil, StubIdp, authorize_at_stub, begin, callback, exchange,
};

async fn app_with(idp: &StubIdp, names: &[&str]) -> TestApp {
    let connections = names
        .iter()
        .map(|n| idp::connection(n, &idp.issuer))
        .collect();
    idp::app_with(connections).await
}

async fn me(app: &TestApp, body: &Value) -> Value {
    let me = app.get("/v1/me", Some(access(body))).await;
    assert_eq!(me.status, 200, "{}", me.body);
    me.body
}

fn logins_of(me: &Value) -> Vec<(String, String, bool)> {
    me["logins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["type"].as_str().unwrap().to_owned(),
                l["identifier"].as_str().unwrap().to_owned(),
                !l["verified_at"].is_null(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_first_sign_in_creates_a_principal_and_the_next_finds_it() {
    let idp = StubIdp::start(Person::new("alice", "alice@example.test")).await;
    let app = app_with(&idp, &["oidc:stub"]).await;
    let begun = begin(&app, "oidc:stub", None, "sign_in").await;
    let url = idp::query_of(&begun.authorization_url);
    assert_eq!(url["code_challenge_method"], "S256");
    assert!(url["state"].len() >= 43, "{url:?}");
    assert!(url["nonce"].len() >= 43, "{url:?}");
    assert_eq!(url["client_id"], idp::CLIENT_ID);
    assert!(url["scope"].split(' ').any(|s| s == "openid"), "{url:?}");
    let callback_url = authorize_at_stub(&begun.authorization_url).await;
    let back = callback(&callback_url).await;
    assert_eq!(back["flow_id"], begun.flow_id);
    // The app's own PKCE verifier binds the result: another one is refused
    // and uses the code up.
    let (wrong, _) = idp::app_pkce();
    exchange(&app, &begun.flow_id, &back["login_code"], &wrong)
        .await
        .assert_problem(400, "invalid_code");
    exchange(&app, &begun.flow_id, &back["login_code"], &begun.verifier)
        .await
        .assert_problem(400, "invalid_state");
    // A replayed callback finds no flow.
    let replay = idp::browser().get(&callback_url).send().await.unwrap();
    assert_eq!(replay.status(), 400);
    let problem: Value = replay.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_state");

    let created = idp::sign_in(&app, "oidc:stub").await;
    assert_eq!(created.status, 201, "{}", created.body);
    let principal = created.body["user"]["id"].as_str().unwrap().to_owned();
    let view = me(&app, &created.body).await;
    let subject = format!("{}#alice", idp.issuer);
    let logins = logins_of(&view);
    assert!(
        logins.contains(&("oidc:stub".into(), subject, true)),
        "{logins:?}"
    );
    // The provider's verified e-mail is bound, verified, since no one had it.
    assert!(
        logins.contains(&("email".into(), "alice@example.test".into(), true)),
        "{logins:?}"
    );

    let again = idp::sign_in(&app, "oidc:stub").await;
    assert_eq!(again.status, 200, "{}", again.body);
    let view = me(&app, &again.body).await;
    assert_eq!(view["id"], principal.as_str());
    assert_eq!(app.count("SELECT COUNT(*) FROM principals").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn id_tokens_failing_any_check_are_refused() {
    let idp = StubIdp::start(Person::new("mallory", "m@example.test")).await;
    let app = app_with(&idp, &["oidc:stub"]).await;
    let cases = [
        (Spoil::Issuer("https://evil.example".into()), "issuer"),
        (Spoil::Audience(json!("another-client")), "audience"),
        (
            Spoil::Audience(json!([idp::CLIENT_ID, "another-client"])),
            "audience",
        ),
        (Spoil::Nonce("another-nonce".into()), "nonce"),
        (Spoil::Expired(120), "expired"),
        (Spoil::AlgNone, "algorithm"),
        (Spoil::Hs256WithPublicKey, "algorithm"),
        (Spoil::AtHash, "at_hash"),
        (
            Spoil::AuthorizedParty("another-client".into()),
            "authorized_party",
        ),
    ];
    for (spoil, reason) in cases {
        idp.spoil_next(spoil.clone());
        let begun = begin(&app, "oidc:stub", None, "sign_in").await;
        let back = callback(&authorize_at_stub(&begun.authorization_url).await).await;
        assert_eq!(
            back.get("error").map(String::as_str),
            Some("id_token_rejected"),
            "{spoil:?}: {back:?}"
        );
        assert_eq!(back["error_description"], reason, "{spoil:?}");
        assert!(!back.contains_key("login_code"), "{spoil:?}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM principals").await, 0);
    // The same provider, unspoiled, signs in.
    let ok = idp::sign_in(&app, "oidc:stub").await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    app.stop().await;
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_no_more_than_once_a_minute() {
    let idp = StubIdp::start(Person::new("alice", "alice@example.test")).await;
    // Time stands still for the server and the provider alike: "within the
    // minute" holds however slowly the test runs.
    let connection = idp::connection("oidc:stub", &idp.issuer);
    let app = TestApp::builder()
        .manual_clock()
        .config(|c| c.federation.connections = vec![connection])
        .spawn()
        .await;
    idp.use_clock(std::sync::Arc::new(app.clock.clone()));
    assert_eq!(idp::sign_in(&app, "oidc:stub").await.status, 201);
    assert_eq!(idp.jwks_fetches(), 1);
    idp.rotate_key();
    let rotated = idp::sign_in(&app, "oidc:stub").await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(idp.jwks_fetches(), 2, "one fetch for the unknown kid");
    // Another unknown key within the minute: no fetch, refused.
    idp.sign_with_unpublished_key();
    let begun = begin(&app, "oidc:stub", None, "sign_in").await;
    let back = callback(&authorize_at_stub(&begun.authorization_url).await).await;
    assert_eq!(back["error"], "id_token_rejected");
    assert_eq!(back["error_description"], "unknown_key");
    assert_eq!(idp.jwks_fetches(), 2);
    app.stop().await;
}

#[tokio::test]
async fn github_and_discord_give_their_numeric_ids_and_only_verified_emails() {
    let idp = StubIdp::start(Person::new("583231", "octo@example.test")).await;
    let app = app_with(&idp, &["github", "discord"]).await;
    let github = idp::sign_in(&app, "github").await;
    assert_eq!(github.status, 201, "{}", github.body);
    let logins = logins_of(&me(&app, &github.body).await);
    assert!(
        logins.contains(&("github".into(), "583231".into(), true)),
        "{logins:?}"
    );
    // The primary, verified address; not the secondary one.
    assert!(
        logins.contains(&("email".into(), "octo@example.test".into(), true)),
        "{logins:?}"
    );
    assert_eq!(logins.len(), 2, "{logins:?}");
    let sent = idp.token_requests();
    assert!(
        sent.iter().all(|r| r.contains_key("code_verifier")),
        "{sent:?}"
    );

    idp.sign_in_as(Person {
        subject: "80351110224678912".into(),
        email: Some("nelly@example.test".into()),
        email_verified: false,
        name: Some("Nelly".into()),
    });
    let discord = idp::sign_in(&app, "discord").await;
    assert_eq!(discord.status, 201, "{}", discord.body);
    let view = me(&app, &discord.body).await;
    let logins = logins_of(&view);
    // An unverified address is not bound.
    assert_eq!(
        logins,
        vec![("discord".into(), "80351110224678912".into(), true)]
    );
    assert_eq!(view["profile"]["display_name"], "Nelly");
    app.stop().await;
}

#[tokio::test]
async fn apple_posts_its_callback_without_cookies_and_sends_the_name_once() {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let idp = StubIdp::start(Person {
        name: None,
        ..Person::new("001234.abcdef", "ada@privaterelay.example")
    })
    .await;
    let key = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap();
    idp.expect_apple_client_secret(*key.verifying_key());
    let mut apple = idp::connection("apple", &idp.issuer);
    apple.client_secret = Some(key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string().into());
    apple.settings.apple_team_id = Some("TEAM123456".into());
    apple.settings.apple_key_id = Some("KEY1234567".into());
    let app = idp::app_with(vec![apple]).await;
    let begun = begin(&app, "apple", None, "sign_in").await;
    assert_eq!(
        idp::query_of(&begun.authorization_url)["response_mode"],
        "form_post"
    );
    let page: Value = idp::browser()
        .get(&begun.authorization_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The browser posts the form cross-site: no cookie goes with it.
    let fields: Vec<(String, String)> = page["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let posted = idp::browser()
        .post(page["action"].as_str().unwrap())
        .form(&fields)
        .send()
        .await
        .unwrap();
    let back = idp::query_of(&idp::location(&posted));
    let created = exchange(&app, &begun.flow_id, &back["login_code"], &begun.verifier).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let view = me(&app, &created.body).await;
    assert_eq!(view["profile"]["display_name"], "Ada Lovelace");
    assert!(logins_of(&view).contains(&("apple".into(), "001234.abcdef".into(), true)));
    // The client secret went in the form body, as Apple wants.
    assert!(idp.token_requests()[0].contains_key("client_secret"));
    app.stop().await;
}

#[tokio::test]
async fn linking_a_subject_someone_else_owns_is_a_conflict() {
    let idp = StubIdp::start(Person::new("alice", "alice@example.test")).await;
    let app = app_with(&idp, &["oidc:stub"]).await;
    let a = idp::sign_in(&app, "oidc:stub").await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a_logins = logins_of(&me(&app, &a.body).await);
    let b = app.register("bob@example.com").await;
    let begun = begin(&app, "oidc:stub", Some(access(&b)), "link").await;
    let back = callback(&authorize_at_stub(&begun.authorization_url).await).await;
    exchange(&app, &begun.flow_id, &back["login_code"], &begun.verifier)
        .await
        .assert_problem(409, "identifier_taken");
    assert_eq!(logins_of(&me(&app, &a.body).await), a_logins);
    let again = idp::sign_in(&app, "oidc:stub").await;
    assert_eq!(me(&app, &again.body).await["id"], a.body["user"]["id"]);

    // A subject no one has links to B; linking it again changes nothing.
    idp.sign_in_as(Person::new("bob-at-idp", "bob@idp.example"));
    for expected in [201, 200] {
        let begun = begin(&app, "oidc:stub", Some(access(&b)), "link").await;
        let back = callback(&authorize_at_stub(&begun.authorization_url).await).await;
        let linked = exchange(&app, &begun.flow_id, &back["login_code"], &begun.verifier).await;
        assert_eq!(linked.status, expected, "{}", linked.body);
        assert_eq!(linked.body["type"], "oidc:stub");
    }
    let signed_in = idp::sign_in(&app, "oidc:stub").await;
    assert_eq!(me(&app, &signed_in.body).await["id"], id_of(&b).as_str());
    // Linking needs a session.
    let (_, challenge) = idp::app_pkce();
    let body =
        json!({"intent": "link", "return_to": idp::RETURN_TO, "app_code_challenge": challenge});
    app.post("/v1/federation/oidc:stub/begin", &body)
        .await
        .assert_problem(401, "invalid_token");
    app.stop().await;
}

#[tokio::test]
async fn wechat_signs_in_by_openid_or_by_unionid() {
    let idp = StubIdp::start(Person::new("union-1", "ignored@example.test")).await;
    let wechat = idp::connection("wechat", &idp.issuer);
    let app = idp::app_with(vec![wechat]).await;
    let begun = begin(&app, "wechat", None, "sign_in").await;
    let url = reqwest::Url::parse(&begun.authorization_url).unwrap();
    assert_eq!(url.fragment(), Some("wechat_redirect"));
    let query = idp::query_of(&begun.authorization_url);
    assert_eq!(query["appid"], idp::CLIENT_ID);
    assert_eq!(query["scope"], "snsapi_login");
    let back = callback(&authorize_at_stub(&begun.authorization_url).await).await;
    let created = exchange(&app, &begun.flow_id, &back["login_code"], &begun.verifier).await;
    assert_eq!(created.status, 201, "{}", created.body);
    // WeChat gives no e-mail: the openid is the only login.
    let logins = logins_of(&me(&app, &created.body).await);
    assert_eq!(
        logins,
        vec![("wechat".into(), "union-1-openid".into(), true)]
    );
    app.stop().await;

    let mut by_union = idp::connection("wechat", &idp.issuer);
    by_union.settings.wechat_unionid = true;
    let app = idp::app_with(vec![by_union]).await;
    let created = idp::sign_in(&app, "wechat").await;
    assert_eq!(created.status, 201, "{}", created.body);
    let logins = logins_of(&me(&app, &created.body).await);
    assert_eq!(logins, vec![("wechat".into(), "union-1".into(), true)]);
    app.stop().await;
}

#[tokio::test]
async fn a_provider_on_a_private_address_is_refused_unless_the_connection_allows_it() {
    let idp = StubIdp::start(Person::new("alice", "alice@example.test")).await;
    let mut strict = idp::connection("oidc:strict", &idp.issuer);
    strict.settings.allow_private_network = false;
    let app = idp::app_with(vec![strict]).await;
    let (_, challenge) = idp::app_pkce();
    let body = json!({"return_to": idp::RETURN_TO, "app_code_challenge": challenge});
    app.post("/v1/federation/oidc:strict/begin", &body)
        .await
        .assert_problem(503, "unavailable");
    assert_eq!(idp.jwks_fetches(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_login_code_raced_at_the_exchange_signs_in_once() {
    let idp = StubIdp::start(Person::new("alice", "alice@example.test")).await;
    let app = app_with(&idp, &["oidc:stub"]).await;
    let begun = begin(&app, "oidc:stub", None, "sign_in").await;
    let back = callback(&authorize_at_stub(&begun.authorization_url).await).await;
    let body = json!({
        "flow_id": begun.flow_id,
        "login_code": back["login_code"],
        "app_code_verifier": begun.verifier,
    });
    let requests: Vec<_> = (0..10)
        .map(|_| sesame_tests::Raw::post("/v1/federation/exchange", body.clone()))
        .collect();
    let answers = app.race(&requests).await;
    let signed_in = answers.iter().filter(|r| r.status == 201).count();
    assert_eq!(signed_in, 1, "{answers:?}");
    for r in answers.iter().filter(|r| r.status != 201) {
        r.assert_problem(400, "invalid_state");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 1);
    app.stop().await;
}
