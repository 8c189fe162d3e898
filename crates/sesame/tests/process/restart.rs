//! Security state outlives a restart: a lock on a login that belongs to
//! nobody holds exactly like one on a real account.

use crate::common::{call, register, start};
use serde_json::json;

#[tokio::test]
async fn locks_of_known_and_unknown_logins_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let client = reqwest::Client::new();
    let server = start(&data, &[]).await;
    register(&client, &server, "ada@example.com").await;
    let sign_in = |base: &str, email: &str| {
        client
            .post(format!("{base}/v1/sessions"))
            .json(&json!({"login": {"type": "email", "identifier": email}, "password": "wrong"}))
    };
    for email in ["ada@example.com", "nobody@example.com"] {
        for _ in 0..5 {
            assert_eq!(call(sign_in(&server.base, email)).await.0, 401);
        }
        let (status, body) = call(sign_in(&server.base, email)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (423, Some("account_locked"))
        );
    }
    drop(server);

    let server = start(&data, &[]).await;
    for email in ["ada@example.com", "nobody@example.com"] {
        let resp = sign_in(&server.base, email).send().await.unwrap();
        assert_eq!(resp.status(), 423, "{email}");
        let wait: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{email}: {wait}");
    }
}
