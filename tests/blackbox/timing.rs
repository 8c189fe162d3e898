//! Answers alike in time: requests for a login that exists and one that does
//! not, measured in pairs in the same run, and the median of the differences.

use crate::smtp::{smtp_config, start};
use serde_json::{Value, json};
use sesame_app::LockoutPolicy;
use sesame_tests::{SLOW_ARGON2, TestApp};
use std::time::{Duration, Instant};

const ROUNDS: usize = 50;

fn median<T: Ord + Copy>(mut samples: Vec<T>) -> T {
    samples.sort();
    samples[samples.len() / 2]
}

/// Times `ROUNDS` pairs of requests, one of each (each sent first in half of
/// the pairs), and checks that within a
/// pair the first takes as long as the second: the median of the pairs'
/// differences is within 20 % of the faster request's median or 3 ms,
/// whichever is larger. Differences within a pair, measured back to back,
/// do not move with the machine's load as the two medians do.
async fn assert_alike(app: &TestApp, path: &str, a: &Value, b: &Value, expect: u16) {
    let time = async |body| {
        let started = Instant::now();
        let resp = app.post(path, body).await;
        assert_eq!(resp.status, expect, "{}", resp.body);
        started.elapsed()
    };
    let (mut ta, mut tb, mut gaps) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Each first in half of the pairs.
        let (da, db) = if round % 2 == 0 {
            (time(a).await, time(b).await)
        } else {
            let db = time(b).await;
            (time(a).await, db)
        };
        gaps.push(da.as_micros() as i64 - db.as_micros() as i64);
        ta.push(da);
        tb.push(db);
    }
    let (ma, mb) = (median(ta), median(tb));
    let slack = ma.min(mb).mul_f64(0.2).max(Duration::from_millis(3));
    let gap = Duration::from_micros(median(gaps).unsigned_abs());
    assert!(
        gap <= slack,
        "within a pair the requests differ by {gap:?} (allowed {slack:?}); medians {ma:?} vs {mb:?}"
    );
}

#[tokio::test]
async fn code_requests_take_as_long_for_unknown_logins_with_smtp() {
    let Some(smtp) = start(Some(("sesame", "secret")), false) else {
        return;
    };
    let app = TestApp::builder()
        .config(|c| {
            c.smtp = Some(smtp_config(smtp.port, "sesame", "secret"));
            c.code_resend_cooldown_secs = 0;
        })
        .spawn()
        .await;
    app.register("ada@example.com").await;
    let code = |email: &str| json!({"login": {"type": "email", "identifier": email}, "purpose": "sign_in"});
    let known = code("ada@example.com");
    let unknown = code("nobody@example.com");
    assert_alike(&app, "/v1/verifications", &known, &unknown, 202).await;
    let reset = |email: &str| json!({"login": {"type": "email", "identifier": email}});
    // A reset goes only to a verified address: this one is not, the other absent.
    assert_alike(
        &app,
        "/v1/password-resets",
        &reset("ada@example.com"),
        &reset("nobody@example.com"),
        202,
    )
    .await;
    // The known login's messages did go out.
    app.app.flush_deliveries().await;
}

#[tokio::test]
async fn a_wrong_password_on_an_imported_bcrypt_hash_takes_as_long_as_on_nobody() {
    let app = TestApp::builder()
        .config(|c| {
            // A cost at which a cheap imported hash would stand out.
            c.argon2 = SLOW_ARGON2;
            c.lockout = LockoutPolicy {
                max_failures: 0,
                ..LockoutPolicy::default()
            };
        })
        .spawn()
        .await;
    app.register("ada@example.com").await;
    let bcrypt = "$2b$04$DkdSOSUeeG9Se/9XN5UcW.dKHE5il84Xij30rLlY5i/mJIia6V2Kq";
    let set = format!(
        "UPDATE passwords SET hash = '{bcrypt}' WHERE principal_id = \
         (SELECT principal_id FROM login_methods WHERE identifier = 'ada@example.com')"
    );
    assert_eq!(app.db.execute(&set).await, 1);
    let sign_in = |email: &str| json!({"login": {"type": "email", "identifier": email}, "password": "not the password"});
    assert_alike(
        &app,
        "/v1/sessions",
        &sign_in("ada@example.com"),
        &sign_in("nobody@example.com"),
        401,
    )
    .await;
}
