//! The test kit: boots the real Sesame server on an ephemeral port with a fresh
//! database, and speaks to it over HTTP like any client.
//!
//! The backend is SQLite unless `SESAME_TEST_BACKEND=postgres`; then every
//! server gets a fresh PostgreSQL database (dropped afterwards) on
//! `SESAME_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! The same tests thus run against both backends.

pub use sesame_testdb::{Postgres, TestBackend, TestDb, in_ci};

use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sesame::{Backend, Config, Hooks, Server};
use sesame_app::RateLimits;
use sesame_core::{Clock, FailPoints, ManualClock, Rate};
use sesame_credentials::{Argon2Config, HashingConfig};
use std::sync::Arc;
use tempfile::TempDir;
use time::OffsetDateTime;

/// Cheap Argon2 parameters so that tests spend their time on behaviour.
pub const TEST_ARGON2: Argon2Config = Argon2Config {
    memory_kib: 256,
    iterations: 1,
    parallelism: 2,
};

/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// How to boot a test server.
pub struct TestAppBuilder {
    config: Config,
    failpoints: FailPoints,
    manual_clock: bool,
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

    /// Boots the server.
    pub async fn spawn(mut self) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        self.config.data_dir = dir.path().join("data");
        let database = match TestBackend::from_env() {
            TestBackend::Sqlite => None,
            TestBackend::Postgres => {
                let db = Postgres::create().await;
                self.config.database_url = Some(db.url());
                Some(db)
            }
        };
        let clock = ManualClock::new(OffsetDateTime::now_utc());
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
                Backend::Sqlite(store) => TestDb::sqlite(store.pool().clone()),
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
            rate_limits: RateLimits {
                per_identifier: Rate::new(10_000, 60),
                per_ip: Rate::new(10_000, 60),
            },
            ..Config::default()
        };
        TestAppBuilder {
            config,
            failpoints: FailPoints::default(),
            manual_clock: false,
        }
    }

    /// Boots a server with the test defaults.
    pub async fn spawn() -> Self {
        Self::builder().spawn().await
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

    /// Every message written to the outbox folders for `to` (normalised), oldest first.
    pub fn messages_to(&self, to: &str) -> Vec<String> {
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
    pub fn last_code(&self, to: &str) -> String {
        let messages = self.messages_to(to);
        let text = messages
            .last()
            .unwrap_or_else(|| panic!("no message to {to}"));
        extract_code(text).unwrap_or_else(|| panic!("no code in {text}"))
    }

    /// Runs a scalar SQL query against the server's database.
    pub async fn count(&self, sql: &str) -> i64 {
        self.db.count(sql).await
    }

    /// Stops the server gracefully.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        self.db.close().await;
        if let Some(db) = self.database.take() {
            db.drop_now().await;
        }
    }
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
