use futures_util::future::join_all;
use sesame_credentials::{Argon2Config, HashingConfig};
use sesame_tests::{PASSWORD, TestApp};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hashing_queue_answers_503_at_once_and_health_stays_up() {
    let app = TestApp::builder()
        .config(|c| {
            c.argon2 = Argon2Config {
                memory_kib: 8192,
                iterations: 3,
                parallelism: 1,
            };
            c.hashing = HashingConfig {
                workers: 1,
                queue: 1,
            };
            // Concurrent sign-ins of one account beyond the lock's limit are
            // refused by the lockout (tested on its own); here the queue decides.
            c.lockout.max_failures = 0;
        })
        .spawn()
        .await;
    app.register("ada@example.com").await;

    let burst = join_all((0..24).map(|_| app.sign_in("ada@example.com", PASSWORD)));
    let probe = async {
        let mut live = Vec::new();
        for _ in 0..5 {
            live.push(app.get("/health/live", None).await.status);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        live
    };
    let (responses, live) = tokio::join!(burst, probe);

    assert!(live.iter().all(|s| *s == 200), "{live:?}");
    let overloaded: Vec<_> = responses.iter().filter(|r| r.status == 503).collect();
    assert!(!overloaded.is_empty(), "no request was refused");
    for r in &overloaded {
        r.assert_problem(503, "overloaded");
        let retry: u64 = r
            .headers
            .get("retry-after")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1);
    }
    let ok = responses.iter().filter(|r| r.status == 200).count();
    assert!(ok >= 1, "nothing got through");
    assert_eq!(
        ok + overloaded.len(),
        responses.len(),
        "other statuses: {:?}",
        responses
            .iter()
            .filter(|r| r.status != 200 && r.status != 503)
            .map(|r| (r.status, &r.body))
            .collect::<Vec<_>>()
    );
}
