//! Second factors over HTTP: TOTP codes made by an independent implementation
//! (pyotp), replay refused in sequence and at the same instant, backup codes,
//! and the challenge between the factors with its tries and the account's
//! lock. The helpers here (pyotp, enrolment, claims) serve the other suites.

use jwt_compact::alg::Ed25519;
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt, UntrustedToken};
use serde::Deserialize;
use serde_json::{Value, json};
use sesame_app::{LockoutPolicy, RateLimits};
use sesame_core::{Clock, Rate};
use sesame_tests::{PASSWORD, Raw, Resp, TestApp, python_with};
use std::process::Command;
use time::Duration;

/// Codes of `uri`'s factor at `unix_time`, as pyotp computes them; `None`
/// (after a message) when pyotp is missing outside CI.
pub(crate) fn pyotp(uri: &str, unix_time: i64) -> Option<String> {
    let python = python_with("pyotp")?;
    let out = Command::new(python)
        .args([
            "-c",
            "import sys, pyotp; t = pyotp.parse_uri(sys.argv[1]); \
             print(t.at(int(sys.argv[2])), t.issuer, t.name, t.digits, t.interval, t.digest().name)",
            uri,
            &unix_time.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        fields[1..],
        ["Sesame", "ada@example.com", "6", "30", "sha1"],
        "what an authenticator app reads from the URI"
    );
    Some(fields[0].to_owned())
}

/// A manual-clock server with lenient limits, and Ada registered.
pub(crate) async fn app_with(lockout: LockoutPolicy) -> (TestApp, Value) {
    let app = TestApp::builder()
        .manual_clock()
        .config(|c| {
            c.lockout = lockout;
            c.rate_limits = RateLimits {
                hashing_per_address: 10_000,
                ..RateLimits::uniform(Rate::new(10_000, 60), Rate::new(10_000, 60))
            };
        })
        .spawn()
        .await;
    let reg = app.register("ada@example.com").await;
    (app, reg)
}

pub(crate) fn token(body: &Value) -> &str {
    body["access_token"].as_str().unwrap()
}

pub(crate) fn now(app: &TestApp) -> i64 {
    app.clock.now().unix_timestamp()
}

/// Ada's TOTP factor, enrolled and confirmed with a pyotp code: its URI and
/// the backup codes.
pub(crate) async fn enrol(app: &TestApp, access: &str) -> Option<(String, Vec<String>)> {
    let begin = app
        .send(
            app.client
                .post(app.url("/v1/me/mfa/totp"))
                .bearer_auth(access),
        )
        .await;
    assert_eq!(begin.status, 200, "{}", begin.body);
    let uri = begin.body["otpauth_uri"].as_str().unwrap().to_owned();
    let code = pyotp(&uri, now(app))?;
    let confirm = app
        .send(
            app.client
                .post(app.url("/v1/me/mfa/totp/confirm"))
                .bearer_auth(access)
                .json(&json!({"code": code})),
        )
        .await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let codes: Vec<String> = confirm.body["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    Some((uri, codes))
}

/// Ada enrolled on a server whose lock allows a thousand failures (for races
/// that fail many guesses at once): the server, her URI and backup codes.
async fn enrolled_with_lenient_lock() -> Option<(TestApp, String, Vec<String>)> {
    let (app, reg) = app_with(LockoutPolicy {
        max_failures: 1000,
        ..LockoutPolicy::default()
    })
    .await;
    let (uri, codes) = enrol(&app, token(&reg)).await?;
    Some((app, uri, codes))
}

/// A password sign-in that must answer with a challenge; its id.
async fn challenge(app: &TestApp) -> String {
    let resp = app.sign_in("ada@example.com", PASSWORD).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body["mfa_required"], true, "{}", resp.body);
    assert!(resp.body.get("access_token").is_none(), "{}", resp.body);
    assert!(resp.body.get("refresh_token").is_none(), "{}", resp.body);
    assert_eq!(resp.body["factors"], json!(["totp", "backup_code"]));
    assert_eq!(resp.body["expires_in"], 300);
    resp.body["challenge_id"].as_str().unwrap().to_owned()
}

/// `n` password sign-ins, then one second factor sent to all their
/// challenges at the same instant: exactly one may win, the rest are
/// `invalid_code`. The winner's answer.
async fn race_one_factor(app: &TestApp, n: usize, field: &str, value: &str) -> Resp {
    let mut requests = Vec::new();
    for _ in 0..n {
        let id = challenge(app).await;
        requests.push(Raw::post(
            "/v1/sessions/mfa",
            json!({"challenge_id": id, field: value}),
        ));
    }
    let answers = app.race(&requests).await;
    let (won, lost): (Vec<Resp>, Vec<Resp>) = answers.into_iter().partition(|r| r.status == 200);
    assert_eq!(won.len(), 1, "{won:?} {lost:?}");
    for r in &lost {
        r.assert_problem(400, "invalid_code");
    }
    won.into_iter().next().unwrap()
}

async fn finish(app: &TestApp, challenge_id: &str, field: &str, code: &str) -> Resp {
    app.post(
        "/v1/sessions/mfa",
        &json!({"challenge_id": challenge_id, field: code}),
    )
    .await
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Claims {
    sub: String,
    #[serde(default)]
    pub(crate) kind: String,
    pub(crate) aal: String,
    pub(crate) amr: Vec<String>,
    #[serde(default)]
    pub(crate) roles: Vec<String>,
}

/// The claims of `access`, checked with jwt-compact against the JWKS.
pub(crate) async fn verified_claims(app: &TestApp, access: &str) -> Claims {
    let jwks = app.get("/.well-known/jwks.json", None).await;
    let untrusted = UntrustedToken::new(access).unwrap();
    let kid = untrusted.header().key_id.clone().unwrap();
    let jwk = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap()
        .clone();
    let jwk: JsonWebKey<'_> = serde_json::from_value(jwk).unwrap();
    let key = ed25519_dalek::VerifyingKey::try_from(&jwk).unwrap();
    let token = Ed25519
        .validator::<Claims>(&key)
        .validate(&untrusted)
        .unwrap();
    token.claims().custom.clone()
}

pub(crate) async fn outbox_count(app: &TestApp, topic: &str) -> i64 {
    app.count(&format!(
        "SELECT COUNT(*) FROM outbox WHERE topic = '{topic}'"
    ))
    .await
}

#[tokio::test]
async fn totp_codes_from_pyotp_sign_in_once_each_and_the_enrolment_code_never() {
    let (app, reg) = app_with(LockoutPolicy::default()).await;
    let access = token(&reg);
    let begin = app
        .send(
            app.client
                .post(app.url("/v1/me/mfa/totp"))
                .bearer_auth(access),
        )
        .await;
    assert_eq!(begin.status, 200, "{}", begin.body);
    let uri = begin.body["otpauth_uri"].as_str().unwrap();
    let secret = begin.body["secret"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/Sesame:ada%40example.com?"),
        "{uri}"
    );
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    assert_eq!(secret.len(), 32, "160 bits in base32");
    let svg = begin.body["qr_svg"].as_str().unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    // Pending: sign-in still needs one factor.
    let me = app.get("/v1/me", Some(access)).await;
    assert_eq!(
        me.body["mfa"],
        json!({"totp": false, "backup_codes_left": 0, "security_keys": 0})
    );
    assert_eq!(app.sign_in("ada@example.com", PASSWORD).await.status, 200);

    let Some(enrolment_code) = pyotp(uri, now(&app)) else {
        return;
    };
    let confirm = |code: String| {
        let req = app
            .client
            .post(app.url("/v1/me/mfa/totp/confirm"))
            .bearer_auth(access)
            .json(&json!({"code": code}));
        app.send(req)
    };
    let wrong = if enrolment_code == "000000" {
        "111111"
    } else {
        "000000"
    };
    confirm(wrong.into())
        .await
        .assert_problem(400, "invalid_code");
    let confirmed = confirm(enrolment_code.clone()).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let codes = confirmed.body["backup_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    assert_eq!(outbox_count(&app, "identity.mfa.enrolled").await, 1);
    let me = app.get("/v1/me", Some(access)).await;
    assert_eq!(
        me.body["mfa"],
        json!({"totp": true, "backup_codes_left": 10, "security_keys": 0})
    );
    // Enrolled: changing factors now needs the second factor.
    confirm(enrolment_code.clone())
        .await
        .assert_problem(403, "mfa_required");

    // The enrolment code cannot be replayed as the first sign-in code.
    let id = challenge(&app).await;
    finish(&app, &id, "code", &enrolment_code)
        .await
        .assert_problem(400, "invalid_code");

    // The next step's code completes the sign-in at aal2.
    app.clock.advance(Duration::seconds(30));
    let code = pyotp(uri, now(&app)).unwrap();
    let done = finish(&app, &id, "code", &code).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body["refresh_token"].is_string());
    let claims = verified_claims(&app, token(&done.body)).await;
    assert_eq!(claims.sub, reg["principal"]["id"].as_str().unwrap());
    assert_eq!(claims.aal, "aal2");
    assert_eq!(claims.amr, ["pwd", "otp"]);
    let sessions = app.get("/v1/me/sessions", Some(token(&done.body))).await;
    let current = sessions
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true);
    assert_eq!(current.unwrap()["aal"], "aal2");
    // A session refreshed from it stays aal2.
    let refreshed = app
        .refresh(done.body["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        verified_claims(&app, token(&refreshed.body)).await.aal,
        "aal2"
    );

    // The same code again, on a new challenge: refused.
    let id = challenge(&app).await;
    finish(&app, &id, "code", &code)
        .await
        .assert_problem(400, "invalid_code");
    // A code two steps old is refused; one a step old (skew) is accepted once.
    app.clock.advance(Duration::seconds(90));
    let two_old = pyotp(uri, now(&app) - 60).unwrap();
    let one_old = pyotp(uri, now(&app) - 30).unwrap();
    finish(&app, &id, "code", &two_old)
        .await
        .assert_problem(400, "invalid_code");
    let done = finish(&app, &id, "code", &one_old).await;
    assert_eq!(done.status, 200, "{}", done.body);
    // The challenge is used up by its success.
    let current = pyotp(uri, now(&app)).unwrap();
    finish(&app, &id, "code", &current)
        .await
        .assert_problem(400, "code_expired");
    app.stop().await;
}

#[tokio::test]
async fn one_totp_code_raced_on_many_challenges_signs_in_once() {
    let Some((app, uri, _)) = enrolled_with_lenient_lock().await else {
        return;
    };
    app.clock.advance(Duration::seconds(30));
    let code = pyotp(&uri, now(&app)).unwrap();
    let won = race_one_factor(&app, 8, "code", &code).await;
    assert_eq!(verified_claims(&app, token(&won.body)).await.aal, "aal2");
    app.stop().await;
}

#[tokio::test]
async fn a_backup_code_works_once_even_raced_and_is_read_as_typed() {
    let Some((app, _, codes)) = enrolled_with_lenient_lock().await else {
        return;
    };
    let won = race_one_factor(&app, 10, "backup_code", &codes[0]).await;
    let claims = verified_claims(&app, token(&won.body)).await;
    assert_eq!(
        (claims.aal.as_str(), claims.amr),
        ("aal2", vec!["pwd".to_owned(), "backup_code".to_owned()])
    );
    let me = app.get("/v1/me", Some(token(&won.body))).await;
    assert_eq!(me.body["mfa"]["backup_codes_left"], 9);

    // Lower case, spaces instead of hyphens: the same code.
    let typed = codes[1].to_lowercase().replace('-', " ");
    let id = challenge(&app).await;
    let done = finish(&app, &id, "backup_code", &typed).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let id = challenge(&app).await;
    finish(&app, &id, "backup_code", &codes[1])
        .await
        .assert_problem(400, "invalid_code");

    // Regenerating replaces them all.
    let aal2 = token(&done.body);
    let again = app
        .send(
            app.client
                .post(app.url("/v1/me/mfa/backup-codes"))
                .bearer_auth(aal2),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["backup_codes"].as_array().unwrap().len(), 10);
    assert_eq!(
        outbox_count(&app, "identity.mfa.backup_codes_regenerated").await,
        1
    );
    finish(&app, &id, "backup_code", &codes[2])
        .await
        .assert_problem(400, "invalid_code");
    let fresh = again.body["backup_codes"][0].as_str().unwrap();
    assert_eq!(finish(&app, &id, "backup_code", fresh).await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn five_wrong_codes_end_a_challenge_and_racing_guesses_are_claimed_first() {
    let Some((app, uri, _)) = enrolled_with_lenient_lock().await else {
        return;
    };
    app.clock.advance(Duration::seconds(30));
    let right = pyotp(&uri, now(&app)).unwrap();
    let wrong: Vec<String> = (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .filter(|c| *c != right)
        .take(40)
        .collect();

    let id = challenge(&app).await;
    for code in &wrong[..5] {
        finish(&app, &id, "code", code)
            .await
            .assert_problem(400, "invalid_code");
    }
    finish(&app, &id, "code", &right)
        .await
        .assert_problem(400, "code_expired");

    // 30 guesses and the right code in the middle, released together.
    let id = challenge(&app).await;
    let mut requests: Vec<Raw> = wrong[5..35]
        .iter()
        .map(|c| Raw::post("/v1/sessions/mfa", json!({"challenge_id": id, "code": c})))
        .collect();
    requests.insert(
        15,
        Raw::post(
            "/v1/sessions/mfa",
            json!({"challenge_id": id, "code": right}),
        ),
    );
    let before = app.app.mfa_evaluations();
    let answers = app.race(&requests).await;
    let evaluated = app.app.mfa_evaluations() - before;
    assert!(evaluated <= 5, "{evaluated} guesses were evaluated");
    let successes = answers.iter().filter(|r| r.status == 200).count();
    assert!(successes <= 1);
    let expired = answers
        .iter()
        .filter(|r| r.code() == "code_expired")
        .count();
    assert!(expired >= answers.len() - 5, "{answers:?}");
    assert_eq!(
        app.count("SELECT MAX(attempts) FROM mfa_challenges").await,
        5,
        "every try claimed"
    );
    app.stop().await;
}

#[tokio::test]
async fn wrong_second_factors_lock_the_account() {
    let (app, reg) = app_with(LockoutPolicy::default()).await;
    let Some((uri, _)) = enrol(&app, token(&reg)).await else {
        return;
    };
    app.clock.advance(Duration::seconds(30));
    let right = pyotp(&uri, now(&app)).unwrap();
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    // Each right password is given back; each wrong code counts. Five
    // failures lock, whichever challenges they came through.
    for n in 0..5 {
        let id = challenge(&app).await;
        let resp = finish(&app, &id, "code", wrong).await;
        resp.assert_problem(400, "invalid_code");
        let failures = app
            .count("SELECT MAX(failed_attempts) FROM principals")
            .await;
        assert_eq!(failures, n + 1);
    }
    let locked = app.sign_in("ada@example.com", PASSWORD).await;
    locked.assert_problem(423, "account_locked");
    assert!(locked.headers.contains_key("retry-after"));
    assert_eq!(outbox_count(&app, "identity.account.locked").await, 1);

    // After the lock, a right sign-in clears the count.
    app.clock.advance(Duration::seconds(61));
    let id = challenge(&app).await;
    let code = pyotp(&uri, now(&app)).unwrap();
    assert_eq!(finish(&app, &id, "code", &code).await.status, 200);
    assert_eq!(
        app.count("SELECT MAX(failed_attempts) FROM principals")
            .await,
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn a_code_sign_in_also_asks_for_the_second_factor() {
    let (app, reg) = app_with(LockoutPolicy::default()).await;
    let Some((uri, _)) = enrol(&app, token(&reg)).await else {
        return;
    };
    app.send_code("email", "ada@example.com", "sign_in", None)
        .await;
    let code = app.last_code("ada@example.com").await;
    let resp = app
        .post(
            "/v1/sessions",
            &json!({"login": {"type": "email", "identifier": "ada@example.com"}, "code": code}),
        )
        .await;
    assert_eq!(resp.body["mfa_required"], true, "{}", resp.body);
    let id = resp.body["challenge_id"].as_str().unwrap();
    app.clock.advance(Duration::seconds(30));
    let totp = pyotp(&uri, now(&app)).unwrap();
    let done = finish(&app, id, "code", &totp).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let claims = verified_claims(&app, token(&done.body)).await;
    assert_eq!(
        (claims.aal.as_str(), claims.amr),
        ("aal2", vec!["otp".to_owned(), "mfa".to_owned()])
    );
    app.stop().await;
}

#[tokio::test]
async fn mfa_requests_that_cannot_be_answered_say_why() {
    let (app, reg) = app_with(LockoutPolicy::default()).await;
    let access = token(&reg);
    let post = |path: &str, body: Value| {
        let req = app
            .client
            .post(app.url(path))
            .bearer_auth(access)
            .json(&body);
        app.send(req)
    };
    post("/v1/me/mfa/totp/confirm", json!({"code": "123456"}))
        .await
        .assert_problem(400, "invalid_state");
    post("/v1/me/mfa/backup-codes", json!({}))
        .await
        .assert_problem(400, "invalid_state");
    let remove = app
        .send(
            app.client
                .delete(app.url("/v1/me/mfa/totp"))
                .bearer_auth(access)
                .json(&json!({"code": "123456"})),
        )
        .await;
    remove.assert_problem(404, "not_found");
    let anonymous = app
        .post("/v1/sessions/mfa", &json!({"code": "123456"}))
        .await;
    anonymous.assert_problem(400, "validation_failed");
    assert_eq!(
        anonymous.field_errors(),
        [("challenge_id".into(), "required".into())]
    );
    let both = app
        .post(
            "/v1/sessions/mfa",
            &json!({"challenge_id": "x", "code": "123456", "backup_code": "AAAA"}),
        )
        .await;
    both.assert_problem(400, "validation_failed");
    let neither = app
        .post("/v1/sessions/mfa", &json!({"challenge_id": "x"}))
        .await;
    neither.assert_problem(400, "validation_failed");
    let unknown = app
        .post(
            "/v1/sessions/mfa",
            &json!({"challenge_id": "x", "code": "123456"}),
        )
        .await;
    unknown.assert_problem(400, "code_expired");
    let extra = app
        .post(
            "/v1/sessions/mfa",
            &json!({"challenge_id": "x", "code": "1", "factor": "totp"}),
        )
        .await;
    extra.assert_problem(400, "validation_failed");

    let Some((uri, _)) = enrol(&app, access).await else {
        return;
    };
    // Enrolled: changing factors needs the second factor, and a second
    // enrolment is a conflict.
    post("/v1/me/mfa/totp", json!({}))
        .await
        .assert_problem(403, "mfa_required");
    app.clock.advance(Duration::seconds(30));
    let code = pyotp(&uri, now(&app)).unwrap();
    let raised = post("/v1/sessions/mfa", json!({"code": code})).await;
    assert_eq!(raised.status, 200, "{}", raised.body);
    let again = app
        .send(
            app.client
                .post(app.url("/v1/me/mfa/totp"))
                .bearer_auth(token(&raised.body)),
        )
        .await;
    again.assert_problem(409, "mfa_already_enrolled");
    app.stop().await;
}

#[tokio::test]
async fn an_expired_challenge_is_refused() {
    let (app, reg) = app_with(LockoutPolicy::default()).await;
    let Some((uri, _)) = enrol(&app, token(&reg)).await else {
        return;
    };
    let id = challenge(&app).await;
    app.clock.advance(Duration::minutes(5));
    let code = pyotp(&uri, now(&app)).unwrap();
    finish(&app, &id, "code", &code)
        .await
        .assert_problem(400, "code_expired");
    app.stop().await;
}
