//! Slow clients cannot take the server down: 1,100 connections that never
//! finish their headers, against a server allowed 1,024 open files.

use crate::common::start_with;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_do_not_stop_health_from_answering() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("SESAME_HTTP__HEADER_READ_TIMEOUT_SECS", "2".to_owned())];
    let mut server = start_with(&dir.path().join("data"), &env, Some(1024)).await;
    let addr = server.base.trim_start_matches("http://").to_owned();

    // 1,100 clients, each sending part of a request's headers and then nothing.
    let opens = (0..1100).map(|_| {
        let addr = addr.clone();
        async move {
            let connect = tokio::net::TcpStream::connect(addr);
            let mut stream = tokio::time::timeout(Duration::from_secs(5), connect)
                .await
                .ok()?
                .ok()?;
            let partial = b"POST /v1/sessions HTTP/1.1\r\nhost: sesame\r\ncontent-len";
            stream.write_all(partial).await.ok()?;
            Some(stream)
        }
    });
    let slow: Vec<_> = futures_join(opens).await.into_iter().flatten().collect();
    assert!(slow.len() >= 1000, "only {} connections opened", slow.len());

    // The server still answers, and is still running.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let live = client
        .get(format!("{}/health/live", server.base))
        .send()
        .await
        .expect("health answered");
    assert_eq!(live.status(), 200);
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited"
    );
    drop(slow);
}

/// Runs every future on the runtime at once; their outputs in order.
async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
