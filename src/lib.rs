//! The test kit: boots the real Sesame server on an ephemeral port with a fresh
//! database, and speaks to it over HTTP like any client.
//!
//! The backend is SQLite unless `SESAME_TEST_BACKEND=postgres`; then every
//! server gets a fresh PostgreSQL database (dropped afterwards) on
//! `SESAME_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! The same tests thus run against both backends.

pub mod idp;
pub mod nats;
pub mod oidc_provider;
pub mod webhooks;

pub use sesame_testdb::{Postgres, TestBackend, TestDb, in_ci};

use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sesame::{Backend, Config, Hooks, Server};
use sesame_app::{LockoutPolicy, RateLimits};
use sesame_core::{Clock, FailPoints, ManualClock, Rate};
use sesame_credentials::{Argon2Config, HashingConfig};
use std::sync::Arc;
use tempfile::TempDir;

/// Cheap Argon2 parameters so that tests spend their time on behaviour.
pub const TEST_ARGON2: Argon2Config = Argon2Config {
    memory_kib: 256,
    iterations: 1,
    parallelism: 2,
};

/// A cost at which a hash takes a while (about 20 ms here), as in production:
/// for tests whose point is what happens while hashes run.
pub const SLOW_ARGON2: Argon2Config = Argon2Config {
    memory_kib: 8192,
    iterations: 2,
    parallelism: 1,
};

/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// How to boot a test server.
pub struct TestAppBuilder {
    config: Config,
    failpoints: FailPoints,
    manual_clock: bool,
    shared_database: Option<String>,
}

impl TestAppBuilder {
    /// Changes the configuration.
    pub fn config(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// Arms fail points.
    pub fn failpoints(mut self, failpoints: FailPoints) -> Self {
        self.failpoints = failpoints;
        self
    }

    /// Uses a clock that only moves when the test says so.
    pub fn manual_clock(mut self) -> Self {
        self.manual_clock = true;
        self
    }

    /// Runs on `other`'s PostgreSQL database with its master key, as a
    /// second instance of the same deployment (PostgreSQL only: an embedded
    /// file has one server).
    pub fn database_of(mut self, other: &TestApp) -> Self {
        let url = other.database.as_ref().map(Postgres::url);
        assert!(
            url.is_some(),
            "a shared database needs the PostgreSQL backend"
        );
        self.shared_database = url;
        self.config.master_key_file = Some(other.data_dir.join("master.key"));
        self
    }

    /// Boots the server. With `SESAME_TEST_LOG` set (a `RUST_LOG` filter),
    /// the server's logs go to the test's output.
    pub async fn spawn(mut self) -> TestApp {
        if let Ok(filter) = std::env::var("SESAME_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let dir = tempfile::tempdir().expect("temp dir");
        self.config.data_dir = dir.path().join("data");
        let database = match TestBackend::from_env() {
            TestBackend::Sqlite => None,
            TestBackend::Postgres if self.shared_database.is_some() => {
                self.config.database_url = self.shared_database.take();
                None
            }
            TestBackend::Postgres => {
                let db = Postgres::create().await;
                self.config.database_url = Some(db.url());
                Some(db)
            }
        };
        let clock = ManualClock::new(sesame_core::Clock::now(&sesame_core::SystemClock));
        let hooks = Hooks {
            clock: if self.manual_clock {
                Arc::new(clock.clone()) as Arc<dyn Clock>
            } else {
                Hooks::default().clock
            },
            failpoints: self.failpoints,
        };
        let server = Server::start(&self.config, hooks)
            .await
            .expect("server starts");
        let base = format!("http://{}", server.addr());
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("client");
        TestApp {
            base,
            client,
            clock,
            db: match server.backend() {
                Backend::Sqlite(store) => {
                    let server = store.clone();
                    TestDb::sqlite_with_outage(store.pool().clone(), move || server.close())
                }
                Backend::Postgres(store) => {
                    let mut pools = vec![store.credentials_pool().clone()];
                    if store.is_split() {
                        pools.push(store.identity_pool().clone());
                    }
                    TestDb::postgres(pools).await
                }
            },
            database,
            app: server.app().clone(),
            data_dir: self.config.data_dir.clone(),
            server: Some(server),
            _dir: dir,
        }
    }
}

/// A running server and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// An HTTP client.
    pub client: reqwest::Client,
    /// The manual clock (only in charge with `manual_clock()`).
    pub clock: ManualClock,
    /// The server's database, for checks behind the API.
    pub db: TestDb,
    /// The PostgreSQL database made for this server, dropped with it.
    database: Option<Postgres>,
    /// The server's application, for counters behind the API.
    pub app: sesame_app::App,
    /// The server's data directory (database, outbox folders).
    pub data_dir: std::path::PathBuf,
    server: Option<Server>,
    _dir: TempDir,
}

/// A response: status, headers and the JSON body (or `Null`).
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Parsed JSON body; `Value::Null` when empty or not JSON.
    pub body: Value,
}

impl Resp {
    /// The problem `code`, if this is a problem document.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// The `Content-Type` header.
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Fields named in a validation error, with their codes.
    pub fn field_errors(&self) -> Vec<(String, String)> {
        self.body["errors"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|e| {
                        (
                            e["field"].as_str().unwrap_or("").to_owned(),
                            e["code"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts status and problem code, with the body in the failure message.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "body: {}",
            self.body
        );
        assert_eq!(
            self.content_type(),
            "application/problem+json",
            "body: {}",
            self.body
        );
        assert_eq!(self.body["status"], status);
    }
}

impl TestApp {
    /// A builder with cheap hashing and everything else at its defaults.
    pub fn builder() -> TestAppBuilder {
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            argon2: TEST_ARGON2,
            hashing: HashingConfig::default(),
            // Tests of other features send bursts from one address; the limits
            // have tests of their own.
            code_lockout: LockoutPolicy {
                max_failures: 10_000,
                ..LockoutPolicy::codes()
            },
            rate_limits: RateLimits {
                hashing_per_address: 10_000,
                ..RateLimits::uniform(Rate::new(10_000, 60), Rate::new(10_000, 60))
            },
            ..Config::default()
        };
        TestAppBuilder {
            config,
            failpoints: FailPoints::default(),
            manual_clock: false,
            shared_database: None,
        }
    }

    /// Boots a server with the test defaults.
    pub async fn spawn() -> Self {
        Self::builder().spawn().await
    }

    /// A configuration that reaches this server's database (its data
    /// directory, or its PostgreSQL database), as the command line would.
    pub fn operator_config(&self) -> Config {
        Config {
            data_dir: self.data_dir.clone(),
            database_url: self.database.as_ref().map(Postgres::url),
            ..Config::default()
        }
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request and reads the response.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body read");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
        }
    }

    /// `GET path`, with a bearer token when given.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(self.client.post(self.url(path)).json(body)).await
    }

    /// `DELETE path` with a bearer token.
    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.send(self.client.delete(self.url(path)).bearer_auth(token))
            .await
    }

    /// `POST path` with a JSON body and a bearer token.
    pub async fn post_as(&self, path: &str, token: &str, body: &Value) -> Resp {
        self.send(
            self.client
                .post(self.url(path))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    /// `PATCH path` with a JSON body and a bearer token.
    pub async fn patch(&self, path: &str, token: &str, body: &Value) -> Resp {
        self.send(
            self.client
                .patch(self.url(path))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    /// Registers `identifier` of `login_type` with a password.
    pub async fn register_as(&self, login_type: &str, identifier: &str, password: &str) -> Resp {
        let body =
            json!({"login": {"type": login_type, "identifier": identifier}, "password": password});
        self.post("/v1/registrations", &body).await
    }

    /// Registers an e-mail with [`PASSWORD`] and returns the 201 body.
    pub async fn register(&self, email: &str) -> Value {
        let resp = self.register_as("email", email, PASSWORD).await;
        assert_eq!(resp.status, 201, "registration failed: {}", resp.body);
        resp.body
    }

    /// Signs in with an e-mail and password.
    pub async fn sign_in(&self, email: &str, password: &str) -> Resp {
        let body = json!({"login": {"type": "email", "identifier": email}, "password": password});
        self.post("/v1/sessions", &body).await
    }

    /// Exchanges a refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Resp {
        self.post(
            "/v1/sessions/refresh",
            &json!({"refresh_token": refresh_token}),
        )
        .await
    }

    /// `POST /v1/verifications` for `identifier`, with a bearer token when given.
    pub async fn send_code(
        &self,
        login_type: &str,
        identifier: &str,
        purpose: &str,
        token: Option<&str>,
    ) -> Resp {
        let body =
            json!({"login": {"type": login_type, "identifier": identifier}, "purpose": purpose});
        let mut req = self.client.post(self.url("/v1/verifications")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    /// Every message written to the outbox folders for `to` (normalised),
    /// oldest first, once the deliveries asked for so far are done.
    pub async fn messages_to(&self, to: &str) -> Vec<String> {
        self.app.flush_deliveries().await;
        let mut files = Vec::new();
        for folder in ["mail", "sms"] {
            let dir = self.data_dir.join("outbox").join(folder);
            if let Ok(entries) = std::fs::read_dir(&dir) {
                files.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
            }
        }
        files.sort();
        files
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .filter(|text| {
                text.contains(&format!("To: {to}\r\n"))
                    || text.contains(&format!("\"to\":\"{to}\""))
            })
            .collect()
    }

    /// The six digits of the newest message to `to`.
    pub async fn last_code(&self, to: &str) -> String {
        let messages = self.messages_to(to).await;
        let text = messages
            .last()
            .unwrap_or_else(|| panic!("no message to {to}"));
        extract_code(text).unwrap_or_else(|| panic!("no code in {text}"))
    }

    /// Sends `requests` so that they arrive together: each on its own
    /// connection, written but for its last byte, then every last byte at
    /// once. Answers in the order of `requests`.
    pub async fn race(&self, requests: &[Raw]) -> Vec<Resp> {
        self.race_with(requests, async {}).await.0
    }

    /// Like [`TestApp::race`], and runs `during` once the last bytes are out,
    /// while the answers are awaited.
    pub async fn race_with<F: std::future::Future>(
        &self,
        requests: &[Raw],
        during: F,
    ) -> (Vec<Resp>, F::Output) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = self.base.trim_start_matches("http://").to_owned();
        let mut streams = Vec::with_capacity(requests.len());
        for req in requests {
            let bytes = req.bytes(&host);
            let mut stream = tokio::net::TcpStream::connect(&host)
                .await
                .expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (head, last) = bytes.split_at(bytes.len() - 1);
            stream.write_all(head).await.expect("write");
            stream.flush().await.expect("flush");
            streams.push((stream, last.to_vec()));
        }
        for (stream, last) in &mut streams {
            stream.write_all(last).await.expect("last byte");
        }
        // The server answers every connection at its own pace; the kernel
        // buffers what is not read yet.
        let read = async {
            let mut answers = Vec::with_capacity(streams.len());
            for (mut stream, _) in streams {
                let mut buf = Vec::new();
                stream.read_to_end(&mut buf).await.expect("read");
                answers.push(parse_response(&buf));
            }
            answers
        };
        tokio::join!(read, during)
    }

    /// Runs a scalar SQL query against the server's database.
    pub async fn count(&self, sql: &str) -> i64 {
        self.db.count(sql).await
    }

    /// Stops the server gracefully.
    /// Every event the test caused is checked against the event catalogue
    /// first.
    pub async fn stop(mut self) {
        assert_events_match_catalogue(&self).await;
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        self.db.close().await;
        if let Some(db) = self.database.take() {
            db.drop_now().await;
        }
    }
}

/// One request for [`TestApp::race`].
#[derive(Debug, Clone)]
pub struct Raw {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

impl Raw {
    /// `POST path` with a JSON body.
    pub fn post(path: &str, body: Value) -> Self {
        Self {
            method: "POST",
            path: path.to_owned(),
            headers: Vec::new(),
            body: Some(body),
        }
    }

    /// `PUT path` with a JSON body.
    pub fn put(path: &str, body: Value) -> Self {
        Self {
            method: "PUT",
            ..Self::post(path, body)
        }
    }

    /// `DELETE path` with a JSON body.
    pub fn delete(path: &str, body: Value) -> Self {
        Self {
            method: "DELETE",
            ..Self::post(path, body)
        }
    }

    /// Adds a header line (repeated names make repeated lines).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds a bearer token.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// The same request through an ordinary client.
    pub fn to_reqwest(&self, client: &reqwest::Client, base: &str) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).expect("method");
        let mut req = client.request(method, format!("{base}{}", self.path));
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        if let Some(body) = &self.body {
            req = req.json(body);
        }
        req
    }

    fn bytes(&self, host: &str) -> Vec<u8> {
        let body = self
            .body
            .as_ref()
            .map(|b| serde_json::to_vec(b).expect("json"))
            .unwrap_or_default();
        let mut head = format!(
            "{} {} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ncontent-length: {}\r\n",
            self.method,
            self.path,
            body.len()
        );
        if self.body.is_some() {
            head.push_str("content-type: application/json\r\n");
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&body);
        bytes
    }
}

/// Parses a whole HTTP/1.1 response read until the server closed.
fn parse_response(bytes: &[u8]) -> Resp {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(bytes).expect("an HTTP response") {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => panic!("a partial response: {bytes:?}"),
    };
    let status = parsed.code.expect("a status");
    let mut map = HeaderMap::new();
    for h in parsed.headers.iter() {
        map.append(
            reqwest::header::HeaderName::from_bytes(h.name.as_bytes()).expect("header name"),
            reqwest::header::HeaderValue::from_bytes(h.value).expect("header value"),
        );
    }
    let body = serde_json::from_slice(&bytes[head_len..]).unwrap_or(Value::Null);
    Resp {
        status,
        headers: map,
        body,
    }
}

/// The Python that can import `modules` (comma-separated; `scripts/test`
/// prepares one in a virtual environment and names it in
/// `SESAME_TEST_PYTHON`), or `None` with a message when it cannot outside CI.
pub fn python_with(modules: &str) -> Option<std::path::PathBuf> {
    use std::process::{Command, Stdio};
    let python = std::env::var_os("SESAME_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(python);
    }
    let msg = format!("{modules} missing: run the suite with scripts/test, which installs them");
    assert!(!in_ci(), "{msg}");
    eprintln!("skipping: {msg}");
    None
}

/// The first run of exactly six digits in a message.
pub fn extract_code(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(5)).find_map(|i| {
        let run = &bytes[i..i + 6];
        let before = i
            .checked_sub(1)
            .map(|j| bytes[j].is_ascii_digit())
            .unwrap_or(false);
        let after = bytes.get(i + 6).is_some_and(|b| b.is_ascii_digit());
        (run.iter().all(u8::is_ascii_digit) && !before && !after).then(|| text[i..i + 6].to_owned())
    })
}

/// Checks every event in `app`'s outbox against the event catalogue's JSON
/// Schemas (`events/schemas`), with the jsonschema Python package (skipped,
/// after a message, when it is missing outside CI). [`TestApp::stop`] does
/// it for every test.
pub async fn assert_events_match_catalogue(app: &TestApp) {
    let payloads = app
        .db
        .texts("SELECT CAST(payload AS TEXT) FROM outbox ORDER BY id")
        .await;
    let events: Vec<Value> = payloads
        .iter()
        .map(|p| serde_json::from_str(p).expect("an envelope"))
        .collect();
    assert_valid_events(&events);
}

/// Checks envelopes (as stored, or as a sink received them) against the
/// event catalogue's JSON Schemas with the jsonschema Python package.
pub fn assert_valid_events(events: &[Value]) {
    use std::io::Write;
    if events.is_empty() {
        return;
    }
    let Some(python) = python_with("jsonschema") else {
        return;
    };
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/events/schemas");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/validate_events.py"
    );
    let mut child = std::process::Command::new(python)
        .args([script, dir])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    let body = serde_json::to_vec(events).expect("JSON");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&body)
        .expect("written");
    let out = child.wait_with_output().expect("python ends");
    assert!(
        out.status.success(),
        "events outside the catalogue:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
