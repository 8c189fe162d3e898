//! `GET /metrics`: parsed by prometheus_client's parser, its counters move
//! with a scripted flow; with `metrics_listen` it is served there only.

use sesame_tests::{PASSWORD, TestApp, python_with};
use std::collections::HashMap;
use std::time::Duration;

/// Every sample of `/metrics` at `url`, as prometheus_client parses it;
/// `None` (after a message) when the package is missing outside CI.
async fn scrape(client: &reqwest::Client, url: &str) -> Option<HashMap<String, f64>> {
    let python = python_with("prometheus_client")?;
    let resp = client.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let kind = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    let text = resp.text().await.unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/parse_metrics.py"
    );
    let mut child = std::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn value(samples: &HashMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn counters_move_with_a_scripted_flow() {
    let app = TestApp::spawn().await;
    let url = app.url("/metrics");
    let Some(before) = scrape(&app.client, &url).await else {
        return;
    };
    let user = app.register("counted@example.com").await;
    let good = app.sign_in("counted@example.com", PASSWORD).await;
    assert_eq!(good.status, 200);
    let bad = app
        .sign_in("counted@example.com", "wrong horse battery staple")
        .await;
    assert_eq!(bad.status, 401);
    let access = good.body["access_token"].as_str().unwrap();
    assert_eq!(app.delete("/v1/sessions/current", access).await.status, 204);
    let me = app.get("/v1/me", user["access_token"].as_str()).await;
    assert_eq!(me.status, 200);

    // Wait until the relay logged every event, then scrape again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while app
        .count("SELECT COUNT(*) FROM deliveries WHERE sink = 'log' AND status = 'delivered'")
        .await
        < app.count("SELECT COUNT(*) FROM outbox").await
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay fell behind"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = scrape(&app.client, &url).await.unwrap();
    let moved = |key: &str| value(&after, key) - value(&before, key);

    assert_eq!(
        moved("sesame_http_requests_total{method=POST,route=/v1/registrations,status=201}"),
        1.0
    );
    assert_eq!(
        moved("sesame_http_requests_total{method=POST,route=/v1/sessions,status=401}"),
        1.0
    );
    assert_eq!(
        moved("sesame_http_requests_total{method=GET,route=/v1/me,status=200}"),
        1.0
    );
    assert_eq!(
        moved("sesame_http_request_duration_seconds_count{method=POST,route=/v1/sessions}"),
        2.0
    );
    assert_eq!(
        moved("sesame_http_request_duration_seconds_bucket{le=+Inf,method=GET,route=/v1/me}"),
        1.0
    );
    assert_eq!(
        moved("sesame_sign_ins_total{method=password,outcome=success}"),
        1.0
    );
    assert_eq!(
        moved("sesame_sign_ins_total{method=password,outcome=failure}"),
        1.0
    );
    assert_eq!(
        moved("sesame_sessions_opened_total{}"),
        2.0,
        "registration and sign-in"
    );
    assert_eq!(
        moved("sesame_sessions_revoked_total{}"),
        1.0,
        "the sign-out"
    );
    assert!(moved("sesame_event_deliveries_total{outcome=delivered,sink=log}") >= 3.0);
    assert_eq!(
        value(&after, "sesame_outbox_lag_seconds{}"),
        0.0,
        "nothing waits"
    );
    for gauge in [
        "sesame_hashing_busy{}",
        "sesame_hashing_queued{}",
        "sesame_hashing_rejected_total{}",
    ] {
        assert!(after.contains_key(gauge), "{gauge} is missing");
    }
    // Paths with ids are counted under their template.
    assert!(after.keys().all(|k| !k.contains("counted@example.com")));
    app.stop().await;
}

#[tokio::test]
async fn metrics_listen_moves_the_endpoint_off_the_api_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::builder()
        .config(move |c| c.metrics_listen = Some(([127, 0, 0, 1], port).into()))
        .spawn()
        .await;
    let on_api = app.get("/metrics", None).await;
    on_api.assert_problem(404, "not_found");
    let Some(samples) = scrape(&app.client, &format!("http://127.0.0.1:{port}/metrics")).await
    else {
        return;
    };
    assert!(samples.contains_key("sesame_outbox_lag_seconds{}"));
    app.stop().await;
}
