//! Sign-in against a real OpenID provider (panva `oidc-provider` from npm),
//! driven through its login and consent forms.

use crate::admin::access;
use sesame_tests::TestApp;
use sesame_tests::idp::{self, begin, exchange};
use sesame_tests::oidc_provider::{CLIENT_ID, CLIENT_SECRET, OidcProvider};

/// What the provider knows as the relying party's redirect URI; the test
/// delivers it to the server under test.
const CALLBACK_BASE: &str = "http://sesame.test";

/// The provider and a server with a connection to it; with `manual_clock`,
/// the server's time moves only when the test says (the provider's does not,
/// so only flows that never reach a token check use it).
async fn setup(manual_clock: bool) -> Option<(OidcProvider, TestApp)> {
    let redirect = format!("{CALLBACK_BASE}/v1/federation/oidc:local/callback");
    let provider = OidcProvider::start(&redirect).await?;
    let mut connection = idp::connection("oidc:local", &provider.issuer);
    connection.settings.client_id = CLIENT_ID.into();
    connection.client_secret = Some(CLIENT_SECRET.to_owned().into());
    let mut builder = TestApp::builder();
    if manual_clock {
        builder = builder.manual_clock();
    }
    let app = builder
        .config(|c| {
            c.federation.connections = vec![connection];
            c.federation.callback_base = Some(CALLBACK_BASE.into());
        })
        .spawn()
        .await;
    Some((provider, app))
}

/// Logs `login` in at the provider; returns the callback URL on the server under test.
async fn through_provider(
    provider: &OidcProvider,
    app: &TestApp,
    url: &str,
    login: &str,
) -> String {
    let back = provider.log_in(url, login, CALLBACK_BASE).await;
    app.url(back.strip_prefix(CALLBACK_BASE).unwrap())
}

async fn sign_in(provider: &OidcProvider, app: &TestApp, login: &str) -> sesame_tests::Resp {
    let begun = begin(app, "oidc:local", None, "sign_in").await;
    let callback = through_provider(provider, app, &begun.authorization_url, login).await;
    let back = idp::callback(&callback).await;
    let code = back.get("login_code").unwrap_or_else(|| panic!("{back:?}"));
    exchange(app, &begun.flow_id, code, &begun.verifier).await
}

#[tokio::test]
async fn signing_in_at_a_real_provider_creates_then_finds_the_principal() {
    let Some((provider, app)) = setup(false).await else {
        return;
    };
    let created = sign_in(&provider, &app, "alice").await;
    assert_eq!(created.status, 201, "{}", created.body);
    let me = app.get("/v1/me", Some(access(&created.body))).await;
    let logins = me.body["logins"].as_array().unwrap();
    let subject = format!("{}#alice", provider.issuer);
    assert!(
        logins
            .iter()
            .any(|l| l["type"] == "oidc:local" && l["identifier"] == subject.as_str()),
        "{logins:?}"
    );
    let again = sign_in(&provider, &app, "alice").await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["principal"]["id"], created.body["user"]["id"]);
    let bob = sign_in(&provider, &app, "bob").await;
    assert_eq!(bob.status, 201, "{}", bob.body);
    assert_ne!(bob.body["user"]["id"], created.body["user"]["id"]);
    app.stop().await;
}

#[tokio::test]
async fn state_nonce_pkce_and_single_use_hold_at_a_real_provider() {
    let Some((provider, app)) = setup(true).await else {
        return;
    };
    let begun = begin(&app, "oidc:local", None, "sign_in").await;
    let url = idp::query_of(&begun.authorization_url);
    assert_eq!(url["code_challenge_method"], "S256");
    assert!(
        url["nonce"].len() >= 43 && url["state"].len() >= 43,
        "{url:?}"
    );
    let callback = through_provider(&provider, &app, &begun.authorization_url, "carol").await;
    let back = idp::callback(&callback).await;
    // A replayed callback finds no flow.
    let replay = idp::browser().get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), 400);
    let problem: serde_json::Value = replay.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_state");
    // Someone with the callback URL but not the app's verifier gets nothing.
    let (stolen, _) = idp::app_pkce();
    exchange(&app, &begun.flow_id, &back["login_code"], &stolen)
        .await
        .assert_problem(400, "invalid_code");

    // A flow left for longer than ten minutes is gone.
    let late = begin(&app, "oidc:local", None, "sign_in").await;
    app.clock
        .advance(time::Duration::minutes(10) + time::Duration::seconds(1));
    let callback = through_provider(&provider, &app, &late.authorization_url, "carol").await;
    let resp = idp::browser().get(&callback).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let problem: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_state");
    app.stop().await;
}
