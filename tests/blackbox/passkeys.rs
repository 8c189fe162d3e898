//! Passkeys over the real HTTP API with a software authenticator Sesame does
//! not use itself (soft_fido2, driven by `tests/support/authenticator.py`):
//! registration while signed in, passwordless sign-in, a passkey as the last
//! way in, and the refusals: wrong origin, another relying party, a replayed
//! assertion and a counter that goes backwards.

use jwt_compact::UntrustedToken;
use serde_json::{Value, json};
use sesame::WebauthnConfig;
use sesame_tests::{Raw, TestApp, python_with};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const RP: &str = "sesame.test";
const ORIGIN: &str = "https://sesame.test";

/// A software authenticator holding one credential in a state file.
struct Authenticator {
    python: PathBuf,
    state: tempfile::TempDir,
}

impl Authenticator {
    /// `None` (after a message) when soft_fido2 is missing outside CI.
    fn new() -> Option<Self> {
        Some(Self {
            python: python_with("soft_fido2")?,
            state: tempfile::tempdir().unwrap(),
        })
    }

    fn run(&self, args: &[&str], options: &Value) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/authenticator.py");
        let state = self.state.path().join("state.json");
        let mut child = Command::new(&self.python)
            .arg(script)
            .arg(args[0])
            .arg(&state)
            .args(&args[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(options.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// What `navigator.credentials.create()` answers to `options`.
    fn create(&self, options: &Value, extra: &[&str]) -> Value {
        self.run(&[&["create"], extra].concat(), options)
    }

    /// What `navigator.credentials.get()` answers to `options`.
    fn get(&self, options: &Value, extra: &[&str]) -> Value {
        self.run(&[&["get"], extra].concat(), options)
    }
}

async fn app() -> TestApp {
    TestApp::builder()
        .config(|c| {
            c.webauthn = WebauthnConfig {
                rp_id: Some(RP.into()),
                rp_name: None,
                origins: vec![ORIGIN.into()],
            }
        })
        .spawn()
        .await
}

fn token(body: &Value) -> &str {
    body["access_token"].as_str().unwrap()
}

/// Registers a passkey for the caller; its view.
async fn register_passkey(
    app: &TestApp,
    key: &Authenticator,
    access: &str,
    extra: &[&str],
) -> Value {
    let begin = app
        .post_as("/v1/me/passkeys/begin", access, &json!({}))
        .await;
    assert_eq!(begin.status, 200, "{}", begin.body);
    assert_eq!(begin.body["options"]["publicKey"]["rp"]["id"], RP);
    let selection = &begin.body["options"]["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["userVerification"], "required");
    assert_eq!(
        selection["residentKey"], "required",
        "discoverable, for sign-in without a name"
    );
    let credential = key.create(&begin.body["options"], extra);
    let finish = app.post_as("/v1/me/passkeys/finish",
        access,
        &json!({"ceremony_id": begin.body["ceremony_id"], "credential": credential, "name": "Laptop"}),
    )
    .await;
    assert_eq!(finish.status, 201, "{}", finish.body);
    finish.body
}

/// A sign-in ceremony begun: its id and options.
async fn begin_sign_in(app: &TestApp) -> (String, Value) {
    let begin = app.post("/v1/sessions/passkey/begin", &json!({})).await;
    assert_eq!(begin.status, 200, "{}", begin.body);
    (
        begin.body["ceremony_id"].as_str().unwrap().to_owned(),
        begin.body["options"].clone(),
    )
}

async fn finish_sign_in(app: &TestApp, id: &str, credential: &Value) -> sesame_tests::Resp {
    app.post(
        "/v1/sessions/passkey/finish",
        &json!({"ceremony_id": id, "credential": credential}),
    )
    .await
}

/// A whole passkey sign-in: begin, the authenticator's assertion (with
/// `extra` arguments), finish.
async fn sign_in_with(app: &TestApp, key: &Authenticator, extra: &[&str]) -> sesame_tests::Resp {
    let (id, options) = begin_sign_in(app).await;
    finish_sign_in(app, &id, &key.get(&options, extra)).await
}

fn claims(access: &str) -> Value {
    let token = UntrustedToken::new(access).unwrap();
    let payload = access.split('.').nth(1).unwrap();
    assert_eq!(token.algorithm(), "EdDSA");
    let bytes =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_passkey_registered_while_signed_in_signs_in_without_a_password() {
    let Some(key) = Authenticator::new() else {
        return;
    };
    let app = app().await;
    let reg = app.register("ada@example.com").await;
    let view = register_passkey(&app, &key, token(&reg), &["--backup-eligible"]).await;
    assert_eq!(view["name"], "Laptop");
    assert_eq!(view["backup_eligible"], true);
    assert!(view["last_used_at"].is_null());
    let me = app.get("/v1/me", Some(token(&reg))).await;
    let logins = me.body["logins"].as_array().unwrap();
    let passkey = logins.iter().find(|l| l["type"] == "passkey").unwrap();
    assert_eq!(passkey["identifier"], view["credential_id"]);
    assert_eq!(passkey["id"], view["id"]);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE topic = 'identity.login_method.bound'")
            .await,
        1
    );

    let (id, options) = begin_sign_in(&app).await;
    assert_eq!(options["mediation"], "conditional");
    assert_eq!(options["publicKey"]["rpId"], RP);
    let assertion = key.get(&options, &[]);
    let done = finish_sign_in(&app, &id, &assertion).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["principal"]["id"], reg["principal"]["id"]);
    let c = claims(token(&done.body));
    assert_eq!(c["aal"], "aal2");
    assert_eq!(c["amr"], json!(["hwk", "user"]));
    // An aal2 session may change what needs a recent second proof.
    let listed = app.get("/v1/me/passkeys", Some(token(&done.body))).await;
    assert_eq!(listed.status, 200);
    let listed = listed.body.as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    assert!(listed[0]["last_used_at"].is_string(), "{listed:?}");
    let path = format!("/v1/me/passkeys/{}", view["id"].as_str().unwrap());
    let renamed = app
        .patch(&path, token(&done.body), &json!({"name": "Work laptop"}))
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "Work laptop");
    app.patch(&path, token(&done.body), &json!({"name": ""}))
        .await
        .assert_problem(400, "validation_failed");
    let elsewhere = "/v1/me/passkeys/01890000-0000-7000-8000-000000000000";
    app.patch(elsewhere, token(&done.body), &json!({"name": "x"}))
        .await
        .assert_problem(404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn wrong_origins_other_relying_parties_replays_and_cloned_counters_are_refused() {
    let Some(key) = Authenticator::new() else {
        return;
    };
    let app = app().await;
    let reg = app.register("ada@example.com").await;
    register_passkey(&app, &key, token(&reg), &[]).await;

    sign_in_with(&app, &key, &["--origin", "https://sesame.evil"])
        .await
        .assert_problem(401, "invalid_credentials");
    sign_in_with(&app, &key, &["--rp-id", "other.test"])
        .await
        .assert_problem(401, "invalid_credentials");

    // One assertion, sent twice at the same instant: one session.
    let (id, options) = begin_sign_in(&app).await;
    let assertion = key.get(&options, &[]);
    let body = json!({"ceremony_id": id, "credential": assertion});
    let answers = app
        .race(&[
            Raw::post("/v1/sessions/passkey/finish", body.clone()),
            Raw::post("/v1/sessions/passkey/finish", body.clone()),
        ])
        .await;
    let ok = answers.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 1, "{answers:?}");
    let refused = answers.iter().find(|r| r.status != 200).unwrap();
    refused.assert_problem(400, "invalid_state");
    // Replayed into a new ceremony: its challenge is not this one.
    let (id, _) = begin_sign_in(&app).await;
    finish_sign_in(&app, &id, &assertion)
        .await
        .assert_problem(401, "invalid_credentials");

    // A counter below the last one seen: a clone. Refused and audited.
    sign_in_with(&app, &key, &["--counter", "1"])
        .await
        .assert_problem(401, "invalid_credentials");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE event = 'passkey.counter_regressed'")
            .await,
        1
    );
    // The genuine authenticator carries on.
    assert_eq!(sign_in_with(&app, &key, &[]).await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_synced_passkey_whose_counter_stays_zero_signs_in_again() {
    let Some(key) = Authenticator::new() else {
        return;
    };
    let app = app().await;
    let reg = app.register("ada@example.com").await;
    register_passkey(&app, &key, token(&reg), &["--backup-eligible"]).await;
    for _ in 0..2 {
        let done = sign_in_with(&app, &key, &["--counter", "0"]).await;
        assert_eq!(done.status, 200, "{}", done.body);
    }
    app.stop().await;
}

#[tokio::test]
async fn the_last_passkey_of_a_passwordless_account_cannot_be_removed() {
    let Some(key) = Authenticator::new() else {
        return;
    };
    let app = app().await;
    app.send_code("email", "grace@example.com", "register", None)
        .await;
    let code = app.last_code("grace@example.com").await;
    let reg = app
        .post(
            "/v1/registrations",
            &json!({"login": {"type": "email", "identifier": "grace@example.com"}, "code": code}),
        )
        .await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    let access = token(&reg.body);
    let view = register_passkey(&app, &key, access, &[]).await;
    let email = reg.body["user"]["logins"][0]["id"].as_str().unwrap();
    // The passkey is a way in, so the e-mail can go.
    let gone = app.delete(&format!("/v1/me/logins/{email}"), access).await;
    assert_eq!(gone.status, 204, "{}", gone.body);
    let path = format!("/v1/me/passkeys/{}", view["id"].as_str().unwrap());
    app.delete(&path, access)
        .await
        .assert_problem(409, "last_login_method");
    // And it still signs in.
    let done = sign_in_with(&app, &key, &[]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    app.stop().await;
}

#[tokio::test]
async fn an_account_made_with_a_passkey_alone_signs_in_with_it_and_keeps_it() {
    let Some(key) = Authenticator::new() else {
        return;
    };
    let app = app().await;
    let begin = app
        .post(
            "/v1/registrations/passkey/begin",
            &json!({"display_name": "Lin"}),
        )
        .await;
    assert_eq!(begin.status, 200, "{}", begin.body);
    assert_eq!(begin.body["options"]["publicKey"]["user"]["name"], "Lin");
    let credential = key.create(&begin.body["options"], &[]);
    let body = json!({
        "ceremony_id": begin.body["ceremony_id"],
        "credential": credential,
        "profile": {"display_name": "Lin"},
    });
    let made = app.post("/v1/registrations/passkey/finish", &body).await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(claims(token(&made.body))["aal"], "aal2");
    let user = &made.body["user"];
    assert_eq!(user["has_password"], false);
    assert_eq!(user["profile"]["display_name"], "Lin");
    let logins = user["logins"].as_array().unwrap();
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0]["type"], "passkey");
    // The user handle the authenticator keeps is the new account's id.
    let done = sign_in_with(&app, &key, &[]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["principal"]["id"], made.body["principal"]["id"]);
    // Its one way in stays.
    let path = format!("/v1/me/passkeys/{}", logins[0]["id"].as_str().unwrap());
    app.delete(&path, token(&made.body))
        .await
        .assert_problem(409, "last_login_method");
    // The same credential cannot make a second account.
    let again = app.post("/v1/registrations/passkey/finish", &body).await;
    again.assert_problem(400, "invalid_state");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE topic = 'identity.user.signed_up'")
            .await,
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn passkey_requests_that_cannot_be_answered_say_why() {
    // Without a relying party (the default public URL is an IP address).
    let plain = TestApp::spawn().await;
    plain
        .post("/v1/sessions/passkey/begin", &json!({}))
        .await
        .assert_problem(404, "not_found");
    plain.stop().await;

    let app = app().await;
    let reg = app.register("ada@example.com").await;
    let garbage = app
        .post(
            "/v1/sessions/passkey/finish",
            &json!({"ceremony_id": "x", "credential": {"id": 1}}),
        )
        .await;
    garbage.assert_problem(400, "validation_failed");
    assert_eq!(
        garbage.field_errors(),
        [("credential".into(), "invalid".into())]
    );
    let (_, options) = begin_sign_in(&app).await;
    let Some(key) = Authenticator::new() else {
        return;
    };
    let begin = app
        .post_as("/v1/me/passkeys/begin", token(&reg), &json!({}))
        .await;
    let credential = key.create(&begin.body["options"], &[]);
    let unknown = app
        .post_as(
            "/v1/me/passkeys/finish",
            token(&reg),
            &json!({"ceremony_id": "nope", "credential": credential}),
        )
        .await;
    unknown.assert_problem(400, "invalid_state");
    // A credential no account holds.
    let (id, _) = begin_sign_in(&app).await;
    let stranger = key.get(&options, &[]);
    finish_sign_in(&app, &id, &stranger)
        .await
        .assert_problem(401, "invalid_credentials");
    app.stop().await;
}

#[tokio::test]
async fn a_security_key_is_a_second_factor_for_sign_in_and_step_up() {
    let Some(key) = Authenticator::new() else {
        return;
    };
    let app = app().await;
    let reg = app.register("ada@example.com").await;
    let aal1 = token(&reg);
    let begin = app
        .post_as("/v1/me/security-keys/begin", aal1, &json!({}))
        .await;
    assert_eq!(begin.status, 200, "{}", begin.body);
    let credential = key.create(&begin.body["options"], &[]);
    let enrolled = app
        .post_as(
            "/v1/me/security-keys/finish",
            aal1,
            &json!({"ceremony_id": begin.body["ceremony_id"], "credential": credential, "name": "YubiKey"}),
        )
        .await;
    assert_eq!(enrolled.status, 201, "{}", enrolled.body);
    assert_eq!(enrolled.body["security_key"]["name"], "YubiKey");
    assert_eq!(enrolled.body["backup_codes"].as_array().unwrap().len(), 10);
    let me = app.get("/v1/me", Some(aal1)).await;
    assert_eq!(
        me.body["mfa"],
        json!({"totp": false, "backup_codes_left": 10, "security_keys": 1})
    );
    // Not a way in: no login method, no passwordless sign-in.
    assert_eq!(me.body["logins"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE topic = 'identity.mfa.enrolled'")
            .await,
        1
    );

    // Sign-in: password, then the key.
    let first = app.sign_in("ada@example.com", sesame_tests::PASSWORD).await;
    assert_eq!(first.body["factors"], json!(["webauthn", "backup_code"]));
    let challenge = first.body["challenge_id"].as_str().unwrap();
    let options = app
        .post(
            "/v1/sessions/mfa/webauthn",
            &json!({"challenge_id": challenge}),
        )
        .await;
    assert_eq!(options.status, 200, "{}", options.body);
    let assertion = key.get(&options.body["options"], &[]);
    let done = app
        .post(
            "/v1/sessions/mfa",
            &json!({"challenge_id": challenge, "ceremony_id": options.body["ceremony_id"], "credential": assertion}),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let c = claims(token(&done.body));
    assert_eq!(
        (c["aal"].clone(), c["amr"].clone()),
        (json!("aal2"), json!(["pwd", "hwk"]))
    );
    // The same assertion, for another challenge: its ceremony is gone.
    let again = app.sign_in("ada@example.com", sesame_tests::PASSWORD).await;
    let other = again.body["challenge_id"].as_str().unwrap();
    let fresh = app
        .post("/v1/sessions/mfa/webauthn", &json!({"challenge_id": other}))
        .await;
    app.post(
        "/v1/sessions/mfa",
        &json!({"challenge_id": other, "ceremony_id": fresh.body["ceremony_id"], "credential": assertion}),
    )
    .await
    .assert_problem(400, "invalid_code");

    // A cloned key (its counter behind the last one seen) is refused, and
    // audited.
    let cloned = app.sign_in("ada@example.com", sesame_tests::PASSWORD).await;
    let cloned_id = cloned.body["challenge_id"].as_str().unwrap();
    let options = app
        .post(
            "/v1/sessions/mfa/webauthn",
            &json!({"challenge_id": cloned_id}),
        )
        .await;
    let behind = key.get(&options.body["options"], &["--counter", "1"]);
    app.post(
        "/v1/sessions/mfa",
        &json!({"challenge_id": cloned_id, "ceremony_id": options.body["ceremony_id"], "credential": behind}),
    )
    .await
    .assert_problem(400, "invalid_code");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE event = 'security_key.counter_regressed'")
            .await,
        1
    );

    // Step-up of the aal1 session from registration.
    let change = json!({"current_password": sesame_tests::PASSWORD, "new_password": "another long passphrase 9"});
    let put = |token: &str| {
        let req = app
            .client
            .put(app.url("/v1/me/password"))
            .bearer_auth(token)
            .json(&change);
        app.send(req)
    };
    put(aal1).await.assert_problem(403, "mfa_required");
    let options = app
        .post_as("/v1/sessions/mfa/webauthn", aal1, &json!({}))
        .await;
    assert_eq!(options.status, 200, "{}", options.body);
    let assertion = key.get(&options.body["options"], &[]);
    let raised = app
        .post_as(
            "/v1/sessions/mfa",
            aal1,
            &json!({"ceremony_id": options.body["ceremony_id"], "credential": assertion}),
        )
        .await;
    assert_eq!(raised.status, 200, "{}", raised.body);
    let aal2 = token(&raised.body);
    assert_eq!(claims(aal2)["aal"], "aal2");
    assert_eq!(put(aal2).await.status, 204);

    // Removing the last key takes the backup codes with it.
    let id = enrolled.body["security_key"]["id"].as_str().unwrap();
    let listed = app.get("/v1/me/security-keys", Some(aal2)).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    let gone = app
        .delete(&format!("/v1/me/security-keys/{id}"), aal2)
        .await;
    assert_eq!(gone.status, 204, "{}", gone.body);
    let me = app.get("/v1/me", Some(aal2)).await;
    assert_eq!(
        me.body["mfa"],
        json!({"totp": false, "backup_codes_left": 0, "security_keys": 0})
    );
    app.delete(&format!("/v1/me/security-keys/{id}"), aal2)
        .await
        .assert_problem(404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn backup_codes_stay_while_another_second_factor_does() {
    let Some(key) = Authenticator::new() else {
        return;
    };
    let Some(python) = python_with("pyotp") else {
        return;
    };
    let totp = |uri: &str| {
        let out = Command::new(&python)
            .args([
                "-c",
                "import sys, pyotp; print(pyotp.parse_uri(sys.argv[1]).now())",
                uri,
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let app = app().await;
    let reg = app.register("ada@example.com").await;
    let aal1 = token(&reg);
    // A security key first: it brings the backup codes.
    let begin = app
        .post_as("/v1/me/security-keys/begin", aal1, &json!({}))
        .await;
    let credential = key.create(&begin.body["options"], &[]);
    let enrolled = app
        .post_as(
            "/v1/me/security-keys/finish",
            aal1,
            &json!({"ceremony_id": begin.body["ceremony_id"], "credential": credential}),
        )
        .await;
    assert_eq!(enrolled.status, 201, "{}", enrolled.body);
    // Raised by the key, the session adds TOTP, whose confirmation hands out
    // a new set of backup codes.
    let options = app
        .post_as("/v1/sessions/mfa/webauthn", aal1, &json!({}))
        .await;
    let assertion = key.get(&options.body["options"], &[]);
    let raised = app
        .post_as(
            "/v1/sessions/mfa",
            aal1,
            &json!({"ceremony_id": options.body["ceremony_id"], "credential": assertion}),
        )
        .await;
    let aal2 = token(&raised.body).to_owned();
    let pending = app.post_as("/v1/me/mfa/totp", &aal2, &json!({})).await;
    assert_eq!(pending.status, 200, "{}", pending.body);
    let uri = pending.body["otpauth_uri"].as_str().unwrap();
    let confirmed = app
        .post_as(
            "/v1/me/mfa/totp/confirm",
            &aal2,
            &json!({"code": totp(uri)}),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let codes = confirmed.body["backup_codes"].clone();
    let me = app.get("/v1/me", Some(&aal2)).await;
    assert_eq!(
        me.body["mfa"],
        json!({"totp": true, "backup_codes_left": 10, "security_keys": 1})
    );
    // The key goes; TOTP and the codes stay.
    let id = enrolled.body["security_key"]["id"].as_str().unwrap();
    let gone = app
        .delete(&format!("/v1/me/security-keys/{id}"), &aal2)
        .await;
    assert_eq!(gone.status, 204, "{}", gone.body);
    let me = app.get("/v1/me", Some(&aal2)).await;
    assert_eq!(
        me.body["mfa"],
        json!({"totp": true, "backup_codes_left": 10, "security_keys": 0})
    );
    let first = app.sign_in("ada@example.com", sesame_tests::PASSWORD).await;
    assert_eq!(first.body["factors"], json!(["totp", "backup_code"]));
    let done = app
        .post(
            "/v1/sessions/mfa",
            &json!({"challenge_id": first.body["challenge_id"], "backup_code": codes[0]}),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    app.stop().await;
}
