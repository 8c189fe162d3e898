//! `sesame events list` and `sesame events retry` beside a running server: a
//! webhook endpoint that is down until its deliveries failed gets them
//! after a retry, with the same event id.

use crate::common::{eventually, free_port, register, run, start};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

/// Answers one webhook request on `port` with `200` and sends its `webhook-id`.
fn receive_one(port: u16) -> mpsc::Receiver<String> {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "the request ended early");
            request.extend_from_slice(&chunk[..n]);
            if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
        };
        let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
                .unwrap_or_default()
        };
        let length: usize = header("content-length").parse().unwrap();
        while request.len() < head_end + 4 + length {
            let n = stream.read(&mut chunk).unwrap();
            request.extend_from_slice(&chunk[..n]);
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .unwrap();
        tx.send(header("webhook-id")).unwrap();
    });
    rx
}

#[tokio::test]
async fn failed_deliveries_are_listed_and_retried_with_their_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let env = vec![
        ("SESAME_DATA_DIR", data.display().to_string()),
        (
            "SESAME_EVENTS__WEBHOOKS",
            format!(
                r#"[{{name="crm",url="http://127.0.0.1:{port}/hooks",secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",topics=["identity.user.signed_up"]}}]"#
            ),
        ),
        ("SESAME_EVENTS__ALLOW_PRIVATE_TARGETS", "true".into()),
        ("SESAME_EVENTS__RETRY_SCHEDULE_MS", "[0, 10]".into()),
        ("SESAME_EVENTS__POLL_INTERVAL_MS", "50".into()),
    ];
    let server = start(&data, &env).await;
    let client = reqwest::Client::new();
    register(&client, &server, "ada@example.com").await;

    // Nothing listens on the port: two attempts, then failed.
    let failed_line = || {
        let (ok, text) = run(&["events", "list", "--failed"], &env);
        assert!(ok, "{text}");
        text.lines()
            .find(|l| l.contains("\twebhook:crm\t"))
            .map(str::to_owned)
    };
    eventually(20, "the delivery failed", || async {
        failed_line().is_some()
    })
    .await;
    let line = failed_line().unwrap();
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(
        &fields[1..5],
        ["webhook:crm", "identity.user.signed_up", "failed", "2"],
        "{line}"
    );
    assert!(!fields[6].is_empty(), "the last error is shown: {line}");
    let event_id = fields[0].to_owned();

    let (ok, text) = run(
        &["events", "retry", &uuid::Uuid::now_v7().to_string()],
        &env,
    );
    assert!(!ok && text.contains("no failed delivery"), "{text}");
    let (ok, text) = run(&["events", "retry"], &env);
    assert!(!ok, "an id or --all-failed is required: {text}");

    let received = receive_one(port);
    let (ok, text) = run(&["events", "retry", "--all-failed"], &env);
    assert!(
        ok && text.contains("1 failed delivery(ies) pending again"),
        "{text}"
    );
    let webhook_id = tokio::task::spawn_blocking(move || {
        received.recv_timeout(std::time::Duration::from_secs(20))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(webhook_id, event_id);
    eventually(20, "the delivery is marked", || async {
        let (_, text) = run(&["events", "list"], &env);
        text.lines().any(|l| {
            l.starts_with(&event_id) && l.contains("\twebhook:crm\t") && l.contains("\tdelivered\t")
        })
    })
    .await;
    let (_, text) = run(&["events", "list", "--failed"], &env);
    assert_eq!(text.lines().count(), 1, "only the header: {text}");
}
