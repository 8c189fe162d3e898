//! Step-up: a session of a principal with a second factor is `aal1` until it
//! proves the factor, is refused the sensitive changes until then, and is
//! raised in place, once, by `POST /v1/sessions/mfa`.

use crate::mfa::{app_with, enrol, now, outbox_count, pyotp, token, verified_claims};
use serde_json::json;
use sesame_app::LockoutPolicy;
use sesame_tests::{PASSWORD, Raw, Resp};
use time::Duration;

#[tokio::test]
async fn an_aal1_session_steps_up_in_place_for_sensitive_changes() {
    let (app, reg) = app_with(LockoutPolicy::default()).await;
    let aal1 = token(&reg);
    let Some((uri, _)) = enrol(&app, aal1).await else {
        return;
    };
    let change = json!({"current_password": PASSWORD, "new_password": "a brand new passphrase 42"});
    let put = |token: &str| {
        let req = app
            .client
            .put(app.url("/v1/me/password"))
            .bearer_auth(token)
            .json(&change);
        app.send(req)
    };
    put(aal1).await.assert_problem(403, "mfa_required");
    app.clock.advance(Duration::seconds(30));
    let code = pyotp(&uri, now(&app)).unwrap();
    let remove = |token: &str, code: &str| {
        let req = app
            .client
            .delete(app.url("/v1/me/mfa/totp"))
            .bearer_auth(token)
            .json(&json!({"code": code}));
        app.send(req)
    };
    remove(aal1, &code)
        .await
        .assert_problem(403, "mfa_required");
    let bind = app
        .send(
            app.client
                .post(app.url("/v1/me/logins"))
                .bearer_auth(aal1)
                .json(&json!({"login": {"type": "username", "identifier": "ada"}})),
        )
        .await;
    bind.assert_problem(403, "mfa_required");

    // The session's own token and a code raise it in place.
    let raised = app
        .send(
            app.client
                .post(app.url("/v1/sessions/mfa"))
                .bearer_auth(aal1)
                .json(&json!({"code": code})),
        )
        .await;
    assert_eq!(raised.status, 200, "{}", raised.body);
    assert_eq!(raised.body["session_id"], reg["session_id"]);
    assert!(
        raised.body.get("refresh_token").is_none(),
        "{}",
        raised.body
    );
    let aal2 = token(&raised.body);
    let claims = verified_claims(&app, aal2).await;
    assert_eq!(
        (claims.aal.as_str(), claims.amr),
        ("aal2", vec!["pwd".to_owned(), "otp".to_owned()])
    );
    assert_eq!(outbox_count(&app, "identity.session.raised").await, 1);
    // The old refresh token carries on, now at aal2.
    let refreshed = app.refresh(reg["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        verified_claims(&app, token(&refreshed.body)).await.aal,
        "aal2"
    );

    assert_eq!(put(aal2).await.status, 204);
    // Removing needs a code of its own: the one that raised the session is used.
    remove(aal2, &code)
        .await
        .assert_problem(400, "invalid_code");
    app.clock.advance(Duration::seconds(30));
    let next = pyotp(&uri, now(&app)).unwrap();
    assert_eq!(remove(aal2, &next).await.status, 204);
    assert_eq!(outbox_count(&app, "identity.mfa.removed").await, 1);
    let me = app.get("/v1/me", Some(aal2)).await;
    assert_eq!(
        me.body["mfa"],
        json!({"totp": false, "backup_codes_left": 0, "security_keys": 0})
    );
    let signed_in = app
        .sign_in("ada@example.com", "a brand new passphrase 42")
        .await;
    assert!(
        signed_in.body["access_token"].is_string(),
        "{}",
        signed_in.body
    );
    remove(aal2, &next).await.assert_problem(404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn one_code_raced_to_raise_a_session_raises_it_once() {
    let (app, reg) = app_with(LockoutPolicy {
        max_failures: 1000,
        ..LockoutPolicy::default()
    })
    .await;
    let aal1 = token(&reg);
    let Some((uri, _)) = enrol(&app, aal1).await else {
        return;
    };
    app.clock.advance(Duration::seconds(30));
    let code = pyotp(&uri, now(&app)).unwrap();
    let requests: Vec<Raw> = (0..8)
        .map(|_| Raw::post("/v1/sessions/mfa", json!({"code": code})).bearer(aal1))
        .collect();
    let answers = app.race(&requests).await;
    let (won, lost): (Vec<Resp>, Vec<Resp>) = answers.into_iter().partition(|r| r.status == 200);
    assert_eq!(won.len(), 1, "{won:?} {lost:?}");
    for r in &lost {
        r.assert_problem(400, "invalid_code");
    }
    assert_eq!(verified_claims(&app, token(&won[0].body)).await.aal, "aal2");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE topic = 'identity.session.raised'")
            .await,
        1
    );
    app.stop().await;
}
