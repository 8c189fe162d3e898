//! Guessing limits raced: every request is written but for its last byte, then
//! the last bytes go out together, and what the server evaluated is counted.

use serde_json::{Value, json};
use sesame_app::{LockoutPolicy, RateLimits};
use sesame_core::Rate;
use sesame_credentials::HashingConfig;
use sesame_tests::{PASSWORD, Raw, Resp, SLOW_ARGON2, TestApp};

const GUESSES: usize = 200;
const RIGHT_AT: usize = 100;

fn wrong_codes(right: &str) -> impl Iterator<Item = String> + '_ {
    (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .filter(move |c| c != right)
}

/// 200 wrong guesses with the right one at position 100, raced; then the
/// right one once more. At most five guesses may have been compared.
async fn race_codes(app: &TestApp, right: &str, request: impl Fn(&str) -> Raw) -> Vec<Resp> {
    let mut requests: Vec<Raw> = wrong_codes(right)
        .take(GUESSES)
        .map(|c| request(&c))
        .collect();
    requests.insert(RIGHT_AT, request(right));
    let before = app.app.code_comparisons();
    let answers = app.race(&requests).await;
    let compared = app.app.code_comparisons() - before;
    assert!(compared <= 5, "{compared} guesses were compared");
    let successes = answers.iter().filter(|r| r.status < 300).count();
    assert!(successes <= 1, "{successes} guesses were accepted");
    for (i, r) in answers.iter().enumerate() {
        if r.status >= 300 && i != RIGHT_AT {
            r.assert_problem(400, "invalid_code");
        }
    }
    assert_eq!(
        app.count("SELECT MAX(attempts + anonymous_attempts) FROM verification_codes")
            .await,
        5,
        "the flow's tries are all claimed"
    );
    // Whether or not it was among the five, the right code is gone now.
    let again = app.send(request_builder(app, &request(right))).await;
    assert!(again.status >= 400, "{}", again.body);
    answers
}

/// The same request through the ordinary client.
fn request_builder(app: &TestApp, raw: &Raw) -> reqwest::RequestBuilder {
    raw.to_reqwest(&app.client, &app.base)
}

fn email(identifier: &str) -> Value {
    json!({"type": "email", "identifier": identifier})
}

#[tokio::test]
async fn a_raced_reset_code_evaluates_at_most_five_guesses() {
    let app = TestApp::builder()
        .config(|c| c.code_resend_cooldown_secs = 0)
        .spawn()
        .await;
    let reg = app.register("ada@example.com").await;
    app.send_code("email", "ada@example.com", "verify", None)
        .await;
    let code = app.last_code("ada@example.com").await;
    let confirm = json!({"login": email("ada@example.com"), "code": code});
    // The owner confirms while signed in, so the account keeps its password.
    let token = reg["access_token"].as_str().unwrap();
    let req = app.client.post(app.url("/v1/verifications/confirm"));
    let confirmed = app.send(req.bearer_auth(token).json(&confirm)).await;
    assert_eq!(confirmed.status, 200);
    let reset = app
        .post(
            "/v1/password-resets",
            &json!({"login": email("ada@example.com")}),
        )
        .await;
    assert_eq!(reset.status, 202);
    // The attacker asked for the reset, so knows the flow id.
    let flow = reset.body["verification_id"].as_str().unwrap().to_owned();
    let right = app.last_code("ada@example.com").await;
    let answers = race_codes(&app, &right, |c| {
        Raw::post(
            "/v1/password-resets/confirm",
            json!({"login": email("ada@example.com"), "code": c, "verification_id": flow, "new_password": "the attacker's new passphrase"}),
        )
    })
    .await;
    if answers[RIGHT_AT].status != 204 {
        // The attacker's password was never set.
        app.sign_in("ada@example.com", "the attacker's new passphrase")
            .await
            .assert_problem(401, "invalid_credentials");
        assert_eq!(app.sign_in("ada@example.com", PASSWORD).await.status, 200);
    }
}

#[tokio::test]
async fn a_raced_registration_code_evaluates_at_most_five_guesses() {
    let app = TestApp::spawn().await;
    let sent = app
        .send_code("email", "grace@example.com", "register", None)
        .await;
    let flow = sent.body["verification_id"].as_str().unwrap().to_owned();
    let right = app.last_code("grace@example.com").await;
    let answers = race_codes(&app, &right, |c| {
        Raw::post(
            "/v1/registrations",
            json!({"login": email("grace@example.com"), "code": c, "verification_id": flow}),
        )
    })
    .await;
    let created = i64::from(answers[RIGHT_AT].status == 201);
    assert_eq!(app.count("SELECT COUNT(*) FROM principals").await, created);
}

#[tokio::test]
async fn a_raced_bind_code_evaluates_at_most_five_guesses() {
    let app = TestApp::spawn().await;
    let reg = app.register("ada@example.com").await;
    let token = reg["access_token"].as_str().unwrap().to_owned();
    let sent = app
        .send_code("email", "ada.work@example.com", "bind", Some(&token))
        .await;
    let flow = sent.body["verification_id"].as_str().unwrap().to_owned();
    let right = app.last_code("ada.work@example.com").await;
    let answers = race_codes(&app, &right, |c| {
        Raw::post(
            "/v1/me/logins",
            json!({"login": email("ada.work@example.com"), "code": c, "verification_id": flow}),
        )
        .bearer(&token)
    })
    .await;
    let bound = i64::from(answers[RIGHT_AT].status == 201);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM login_methods").await,
        1 + bound
    );
}

#[tokio::test]
async fn a_raced_sign_in_code_evaluates_at_most_five_guesses() {
    let app = TestApp::spawn().await;
    app.register("ada@example.com").await;
    app.send_code("email", "ada@example.com", "sign_in", None)
        .await;
    let right = app.last_code("ada@example.com").await;
    // Without a flow id: the guesses count on the newest code's own tries.
    let answers = race_codes(&app, &right, |c| {
        Raw::post(
            "/v1/sessions",
            json!({"login": email("ada@example.com"), "code": c}),
        )
    })
    .await;
    let opened = i64::from(answers[RIGHT_AT].status == 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 1 + opened);
}

#[tokio::test]
async fn failed_code_confirmations_across_codes_lock_the_login() {
    let app = TestApp::builder()
        .config(|c| {
            c.code_resend_cooldown_secs = 0;
            c.code_lockout = LockoutPolicy::codes();
        })
        .spawn()
        .await;
    app.register("ada@example.com").await;
    let confirm = |code: &str| {
        let body = json!({"login": email("ada@example.com"), "code": code});
        app.send(
            app.client
                .post(app.url("/v1/verifications/confirm"))
                .json(&body),
        )
    };
    // Two codes, five wrong guesses each: ten failures for the login.
    for _ in 0..2 {
        app.send_code("email", "ada@example.com", "verify", None)
            .await;
        let right = app.last_code("ada@example.com").await;
        for wrong in wrong_codes(&right).take(5) {
            confirm(&wrong).await.assert_problem(400, "invalid_code");
        }
    }
    // A third code does not bring five more guesses: even the right one is
    // refused with the lock's answer.
    app.send_code("email", "ada@example.com", "verify", None)
        .await;
    let right = app.last_code("ada@example.com").await;
    let locked = confirm(&right).await;
    locked.assert_problem(423, "account_locked");
    let wait: u64 = locked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // A code sign-in for the same login is refused alike.
    let body = json!({"login": email("ada@example.com"), "code": right});
    app.post("/v1/sessions", &body)
        .await
        .assert_problem(423, "account_locked");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM login_methods WHERE verified_at IS NOT NULL")
            .await,
        0
    );
    // Every refused confirmation is on record with its reason.
    let reasons = [
        ("verify:invalid_code", 10),
        ("verify:account_locked", 1),
        ("sign_in:account_locked", 1),
    ];
    for (reason, n) in reasons {
        let sql = format!("SELECT COUNT(*) FROM login_attempts WHERE reason = '{reason}'");
        assert_eq!(app.count(&sql).await, n, "{reason}");
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE event = 'code.confirm_failed'")
            .await,
        12
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_wrong_and_one_right_password_raced_do_not_sign_in() {
    let app = TestApp::builder()
        .config(|c| {
            c.lockout = LockoutPolicy::default();
            // A verification that takes a while, as in production: every
            // other attempt reaches the account while the right one is checked.
            c.argon2 = SLOW_ARGON2;
        })
        .spawn()
        .await;
    let reg = app.register("ada@example.com").await;
    // A running server has its database connections open already.
    let token = reg["access_token"].as_str().unwrap();
    let warm = (0..16).map(|_| app.get("/v1/me", Some(token)));
    for r in futures_util::future::join_all(warm).await {
        assert_eq!(r.status, 200);
    }
    let sign_in = |password: &str| {
        Raw::post(
            "/v1/sessions",
            json!({"login": email("ada@example.com"), "password": password}),
        )
    };
    let mut requests: Vec<Raw> = (0..9)
        .map(|i| sign_in(&format!("wrong guess {i}")))
        .collect();
    requests.push(sign_in(PASSWORD));
    let before = app.app.hasher().verifications();
    let answers = app.race(&requests).await;
    let verified = app.app.hasher().verifications() - before;
    let seen: Vec<_> = answers
        .iter()
        .map(|r| (r.status, r.code().to_owned()))
        .collect();
    assert!(
        verified <= 5,
        "{verified} passwords were verified: {seen:?}"
    );
    for r in &answers {
        assert_ne!(r.status, 200, "signed in: {}", r.body);
        assert!(
            [(401, "invalid_credentials"), (423, "account_locked")].contains(&(r.status, r.code())),
            "{} {}",
            r.status,
            r.body
        );
    }
    let refused = answers.iter().filter(|r| r.status == 401).count() as i64;
    assert!(refused <= 5);
    // Every claim is on the row: the five that were let through.
    assert_eq!(app.count("SELECT failed_attempts FROM principals").await, 5);
    app.sign_in("ada@example.com", PASSWORD)
        .await
        .assert_problem(423, "account_locked");
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, 1);
}

#[tokio::test]
async fn wrong_current_passwords_count_toward_the_lock() {
    let app = TestApp::builder()
        .config(|c| c.lockout = LockoutPolicy::default())
        .spawn()
        .await;
    let reg = app.register("ada@example.com").await;
    let token = reg["access_token"].as_str().unwrap();
    let change = |current: &str| {
        app.send(
            app.client
                .put(app.url("/v1/me/password"))
                .bearer_auth(token)
                .json(&json!({"current_password": current, "new_password": "a brand new passphrase 42"})),
        )
    };
    for _ in 0..5 {
        change("not it at all")
            .await
            .assert_problem(403, "invalid_current_password");
    }
    change(PASSWORD).await.assert_problem(423, "account_locked");
    app.sign_in("ada@example.com", PASSWORD)
        .await
        .assert_problem(423, "account_locked");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE event = 'password.check_failed'")
            .await,
        5
    );
    // The caller's token still works: a wrong password is not a bad token.
    assert_eq!(app.get("/v1/me", Some(token)).await.status, 200);
}

#[tokio::test]
async fn one_address_cannot_fill_the_hashing_queue() {
    let app = TestApp::builder()
        .config(|c| {
            c.argon2 = SLOW_ARGON2;
            c.hashing = HashingConfig {
                workers: 1,
                queue: 8,
            };
            c.rate_limits = RateLimits::default();
        })
        .spawn()
        .await;
    app.register("ada@example.com").await;
    let burst: Vec<Raw> = (0..300)
        .map(|i| {
            Raw::post(
                "/v1/registrations",
                json!({"login": email(&format!("flood{i}@example.com")), "password": PASSWORD}),
            )
        })
        .collect();
    // Another client, on another loopback address.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let body = json!({"login": email("ada@example.com"), "password": PASSWORD});
    // Sent once the burst is out, while it is being answered.
    let sign_in = app.send(other.post(app.url("/v1/sessions")).json(&body));
    let (answers, signed_in) = app.race_with(&burst, sign_in).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    let limited: Vec<&Resp> = answers.iter().filter(|r| r.status == 429).collect();
    assert!(limited.len() >= 250, "only {} were limited", limited.len());
    for r in &limited {
        r.assert_problem(429, "rate_limited");
        assert!(r.headers.contains_key("retry-after"));
    }
    for r in &answers {
        assert!([201, 429].contains(&r.status), "{} {}", r.status, r.body);
    }
    // And after the burst, the other client still signs in.
    let again = app
        .send(other.post(app.url("/v1/sessions")).json(&body))
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
}

#[tokio::test]
async fn two_forwarded_for_lines_are_one_list_read_from_the_right() {
    let app = TestApp::builder()
        .config(|c| {
            c.trusted_proxies = vec!["127.0.0.1".into()];
            c.lockout.max_failures = 0;
            c.rate_limits = RateLimits::uniform(Rate::new(1000, 60), Rate::new(2, 60));
        })
        .spawn()
        .await;
    let body = json!({"login": email("ada@example.com"), "password": "wrong"});
    let mut statuses = Vec::new();
    for i in 0..3 {
        // The client forges a first line; the proxy appends its own.
        let mut headers = reqwest::header::HeaderMap::new();
        headers.append("x-forwarded-for", format!("192.0.2.{i}").parse().unwrap());
        headers.append("x-forwarded-for", "198.51.100.7".parse().unwrap());
        let resp = app
            .send(
                app.client
                    .post(app.url("/v1/sessions"))
                    .headers(headers)
                    .json(&body),
            )
            .await;
        statuses.push((resp.status, resp.code().to_owned()));
    }
    assert_eq!(
        statuses,
        [
            (401, "invalid_credentials".to_owned()),
            (401, "invalid_credentials".to_owned()),
            (429, "rate_limited".to_owned()),
        ]
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM login_attempts WHERE ip = '198.51.100.7'")
            .await,
        2
    );
}

#[tokio::test]
async fn raced_guesses_on_a_login_that_belongs_to_nobody_verify_at_most_the_limit() {
    let app = TestApp::builder()
        .config(|c| c.lockout = LockoutPolicy::default())
        .spawn()
        .await;
    let requests: Vec<Raw> = (0..20)
        .map(|i| {
            Raw::post(
                "/v1/sessions",
                json!({"login": email("nobody@example.com"), "password": format!("guess {i}")}),
            )
        })
        .collect();
    let before = app.app.hasher().verifications();
    let answers = app.race(&requests).await;
    let verified = app.app.hasher().verifications() - before;
    assert!(verified <= 5, "{verified} passwords were verified");
    let refused = answers.iter().filter(|r| r.status == 401).count();
    assert_eq!(refused as u64, verified, "one 401 per verification");
    for r in answers.iter().filter(|r| r.status != 401) {
        r.assert_problem(423, "account_locked");
    }
}

#[tokio::test]
async fn raced_code_guesses_across_flows_stay_within_the_login_budget() {
    let app = TestApp::builder()
        .config(|c| {
            c.code_resend_cooldown_secs = 0;
            c.code_lockout = LockoutPolicy::codes();
        })
        .spawn()
        .await;
    app.register("ada@example.com").await;
    // Three live flows: fifteen tries between them, ten allowed for the login.
    let mut flows = Vec::new();
    for _ in 0..3 {
        let sent = app
            .send_code("email", "ada@example.com", "verify", None)
            .await;
        flows.push(sent.body["verification_id"].as_str().unwrap().to_owned());
    }
    let right = app.last_code("ada@example.com").await;
    let wrong: Vec<String> = wrong_codes(&right).take(30).collect();
    let requests: Vec<Raw> = wrong
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Raw::post(
                "/v1/verifications/confirm",
                json!({"login": email("ada@example.com"), "code": c, "verification_id": flows[i % 3]}),
            )
        })
        .collect();
    let before = app.app.code_comparisons();
    app.race(&requests).await;
    let compared = app.app.code_comparisons() - before;
    assert!(compared <= 10, "{compared} guesses were compared");
}
