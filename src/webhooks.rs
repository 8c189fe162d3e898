//! A webhook receiver for tests: an HTTP/1.1 listener on a free loopback
//! port that records every request and answers the statuses it is told to,
//! and a check of what it received with an independent Standard Webhooks
//! implementation (the `standardwebhooks` Python package).

use crate::python_with;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The body's bytes.
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Received {
    /// A header's value.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Statuses for the next requests, in order; then `otherwise`.
    script: VecDeque<u16>,
    otherwise: u16,
    /// Headers every answer carries.
    headers: Vec<(String, String)>,
    /// How long each answer waits.
    delay: Duration,
}

/// The receiver; it stops when dropped.
pub struct WebhookReceiver {
    /// The URL to configure.
    pub url: String,
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
    task: Option<JoinHandle<()>>,
}

impl WebhookReceiver {
    /// Listens on a free port, answering `200` until told otherwise.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(Mutex::new(State {
            otherwise: 200,
            ..State::default()
        }));
        let arrived = Arc::new(Notify::new());
        let mut receiver = Self {
            url: format!("http://{addr}/hooks"),
            addr,
            state,
            arrived,
            task: None,
        };
        receiver.task = Some(receiver.serve(listener));
        receiver
    }

    fn serve(&self, listener: TcpListener) -> JoinHandle<()> {
        let (state, arrived) = (self.state.clone(), self.arrived.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(connection(stream, state.clone(), arrived.clone()));
            }
        })
    }

    /// Stops listening: attempts now fail to connect.
    pub fn go_down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn come_back(&mut self) {
        let listener = TcpListener::bind(self.addr).await.expect("bind again");
        self.task = Some(self.serve(listener));
    }

    /// Answers the next requests with `statuses`, then with `then`.
    pub fn answer(&self, statuses: &[u16], then: u16) {
        let mut state = self.state.lock().expect("state");
        state.script = statuses.iter().copied().collect();
        state.otherwise = then;
    }

    /// Adds `name: value` to every answer (`Location`, `Retry-After`).
    pub fn answer_header(&self, name: &str, value: &str) {
        let mut state = self.state.lock().expect("state");
        state.headers.push((name.to_owned(), value.to_owned()));
    }

    /// Answers each request only after `delay`.
    pub fn answer_after(&self, delay: Duration) {
        self.state.lock().expect("state").delay = delay;
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("state").received.clone()
    }

    /// Waits until `n` requests have arrived (at most `limit`), and returns them all.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let arrived = self.arrived.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("{} webhook requests arrived, not {n}", got.len());
            }
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.go_down();
    }
}

async fn connection(mut stream: TcpStream, state: Arc<Mutex<State>>, arrived: Arc<Notify>) {
    let mut buf = Vec::new();
    loop {
        // Read until one whole request (headers and body) is buffered.
        let (headers, body_start, length) = loop {
            let mut names = [httparse::EMPTY_HEADER; 32];
            let mut request = httparse::Request::new(&mut names);
            if let Ok(httparse::Status::Complete(n)) = request.parse(&buf) {
                let headers: BTreeMap<String, String> = request
                    .headers
                    .iter()
                    .map(|h| {
                        let value = String::from_utf8_lossy(h.value).into_owned();
                        (h.name.to_ascii_lowercase(), value)
                    })
                    .collect();
                let length = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0usize);
                break (headers, n, length);
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        while buf.len() < body_start + length {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[body_start..body_start + length].to_vec();
        buf.drain(..body_start + length);
        let (status, extra, delay) = {
            let mut state = state.lock().expect("state");
            let status = state.script.pop_front().unwrap_or(state.otherwise);
            state.received.push(Received {
                headers,
                body,
                status,
                at: std::time::Instant::now(),
            });
            let extra: String = state
                .headers
                .iter()
                .map(|(n, v)| format!("{n}: {v}\r\n"))
                .collect();
            (status, extra, state.delay)
        };
        arrived.notify_waiters();
        tokio::time::sleep(delay).await;
        let response = format!("HTTP/1.1 {status} Status\r\n{extra}content-length: 0\r\n\r\n");
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// How many of `received` the `standardwebhooks` package verifies with
/// `secret` (headers and body exactly as received); `None` (after a
/// message) when the package is missing outside CI.
pub fn verified_by_standardwebhooks(secret: &str, received: &[Received]) -> Option<usize> {
    let python = python_with("standardwebhooks")?;
    let requests: Vec<_> = received
        .iter()
        .map(|r| {
            serde_json::json!({
                "headers": r.headers,
                "body": String::from_utf8_lossy(&r.body),
            })
        })
        .collect();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/verify_webhooks.py"
    );
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(secret)
        .arg(serde_json::to_string(&requests).expect("JSON"))
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    Some(text.trim().parse().expect("a count"))
}
