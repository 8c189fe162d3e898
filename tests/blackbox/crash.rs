use sesame_core::FailPoints;
use sesame_tests::{PASSWORD, TestApp};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Every step inside the registration transaction.
const STEPS: &[&str] = &[
    "register.profile",
    "register.principal",
    "register.login_method",
    "register.password",
    "register.session",
    "announce.audit",
    "register.outbox",
];

#[tokio::test]
async fn a_registration_interrupted_at_any_step_leaves_nothing_behind() {
    let armed: Arc<std::sync::Mutex<Option<&'static str>>> = Arc::default();
    let hook = armed.clone();
    let failpoints = FailPoints::new(move |name| *hook.lock().unwrap() == Some(name));
    let app = TestApp::builder().failpoints(failpoints).spawn().await;

    for step in STEPS {
        *armed.lock().unwrap() = Some(step);
        let resp = app
            .register_as("email", "crash@example.com", PASSWORD)
            .await;
        resp.assert_problem(500, "internal");
        // The cause stays in the log; the client learns nothing about it.
        assert!(
            !resp.body.to_string().contains("fail point"),
            "{}",
            resp.body
        );
        for table in [
            "users",
            "principals",
            "login_methods",
            "passwords",
            "sessions",
            "refresh_tokens",
            "audit_log",
            "outbox",
        ] {
            // The server's own start-up (its first signing key) is audited too.
            let n = app
                .count(&format!(
                    "SELECT COUNT(*) FROM {table} {}",
                    if table == "audit_log" {
                        "WHERE event NOT LIKE 'signing_key.%'"
                    } else {
                        ""
                    }
                ))
                .await;
            assert_eq!(n, 0, "{table} has a row after a failure at {step}");
        }
    }

    // Disarmed, the same identifier registers normally: nothing half-written blocks it.
    *armed.lock().unwrap() = None;
    app.register("crash@example.com").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM principals").await, 1);
    assert_eq!(app.db.registration_violations().await, vec![]);
}

#[tokio::test]
async fn a_failure_after_some_writes_of_one_request_does_not_affect_others() {
    // Fail every other registration at the login-method step while others succeed.
    let flip = Arc::new(AtomicBool::new(false));
    let hook = flip.clone();
    let failpoints = FailPoints::new(move |name| {
        name == "register.login_method" && !hook.fetch_xor(true, Ordering::SeqCst)
    });
    let app = TestApp::builder().failpoints(failpoints).spawn().await;
    let mut ok = 0;
    for i in 0..10 {
        let resp = app
            .register_as("email", &format!("u{i}@example.com"), PASSWORD)
            .await;
        match resp.status {
            201 => ok += 1,
            500 => resp.assert_problem(500, "internal"),
            other => panic!("unexpected {other}: {}", resp.body),
        }
    }
    assert_eq!(ok, 5);
    assert_eq!(app.count("SELECT COUNT(*) FROM principals").await, 5);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 5);
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox").await, 5);
}
