//! Helpers shared by the tests that run the `sesame` binary as a process.

#![allow(dead_code)] // each test binary uses its own subset

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const MASTER_KEY: &str = "6f1c1d7e2b3a4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";
pub const PASSWORD: &str = "correct horse battery staple";

/// A port nothing listens on now. Only for servers other than `sesame`
/// (which binds `127.0.0.1:0` and says where, see [`listening_on`]).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads a server's JSON log from `stdout` on a thread of its own: sends the
/// address of its `sesame is listening` line once, copies every line to
/// `copy_to` when given, and keeps reading so that the server never blocks
/// on a full pipe. The thread ends when the server closes its output.
pub fn listening_on(
    stdout: ChildStdout,
    copy_to: Option<PathBuf>,
) -> (mpsc::Receiver<SocketAddr>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut copy = copy_to.map(|p| std::fs::File::create(p).unwrap());
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(file) = copy.as_mut() {
                let _ = writeln!(file, "{line}");
            }
            if !sent
                && let Ok(event) = serde_json::from_str::<Value>(&line)
                && event["message"] == "sesame is listening"
                && let Some(addr) = event["addr"].as_str().and_then(|a| a.parse().ok())
            {
                sent = tx.send(addr).is_ok();
            }
        }
    });
    (rx, reader)
}

/// Waits (blocking) until the server reading `stdout` says where it listens.
pub fn wait_listening(rx: &mpsc::Receiver<SocketAddr>) -> SocketAddr {
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the server never said where it listens")
}

/// One `sesame serve` process.
pub struct Instance {
    pub child: Child,
    pub base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sesame serve` with cheap hashing, a shared master key and issuer,
/// and `env` on top; waits until it answers.
pub async fn start(data_dir: &Path, env: &[(&str, String)]) -> Instance {
    start_with(data_dir, env, None).await
}

/// Like [`start`], with at most `nofile` open files when given.
pub async fn start_with(data_dir: &Path, env: &[(&str, String)], nofile: Option<u64>) -> Instance {
    // A limit on open files is set by prlimit (util-linux), which then
    // executes the server in its place.
    let mut cmd = match nofile {
        Some(limit) => {
            let mut cmd = Command::new("prlimit");
            cmd.arg(format!("--nofile={limit}:{limit}"))
                .arg("--")
                .arg(env!("CARGO_BIN_EXE_sesame"));
            cmd
        }
        None => Command::new(env!("CARGO_BIN_EXE_sesame")),
    };
    for (key, _) in std::env::vars() {
        if key.starts_with("SESAME_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.arg("serve")
        // Any free port: the server's log says which it bound.
        .env("SESAME_LISTEN", "127.0.0.1:0")
        .env("SESAME_DATA_DIR", data_dir)
        .env("SESAME_PUBLIC_URL", "http://sesame.test")
        // Tests poll and race from one address; limits have tests of their own.
        .env("SESAME_RATE_LIMITS__PER_IDENTIFIER__LIMIT", "100000")
        .env("SESAME_RATE_LIMITS__PER_IP__LIMIT", "100000")
        .env("SESAME_ARGON2__MEMORY_KIB", "256")
        .env("SESAME_ARGON2__ITERATIONS", "1")
        .env("SESAME_ARGON2__PARALLELISM", "1")
        .env("SESAME_LOG_LEVEL", "warn,sesame=info")
        .env("SESAME_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if !env
        .iter()
        .any(|(k, _)| *k == "SESAME_MASTER_KEY_FILE" || *k == "SESAME_MASTER_KEY")
    {
        cmd.env("SESAME_MASTER_KEY", MASTER_KEY);
    }
    // An empty value leaves the variable unset.
    for (k, v) in env {
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.spawn().unwrap();
    let (listening, _) = listening_on(child.stdout.take().unwrap(), None);
    let started = Instant::now();
    let addr = loop {
        if let Ok(addr) = listening.try_recv() {
            break addr;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("sesame exited early with {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "sesame did not say where it listens"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/health/live")).send().await
            && r.status() == 200
        {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("sesame exited early with {status}");
        }
        assert!(Instant::now() < deadline, "sesame did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Instance { child, base }
}

/// Status and JSON body.
pub async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

pub fn register_body(email: &str) -> Value {
    json!({"login": {"type": "email", "identifier": email}, "password": PASSWORD})
}

pub async fn register(client: &reqwest::Client, on: &Instance, email: &str) -> Value {
    let (status, body) = call(
        client
            .post(format!("{}/v1/registrations", on.base))
            .json(&register_body(email)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

pub async fn me(client: &reqwest::Client, on: &Instance, token: &str) -> (u16, Value) {
    call(client.get(format!("{}/v1/me", on.base)).bearer_auth(token)).await
}

/// Runs `sesame <args>` to completion with `env`; returns success and output.
pub fn run(args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SESAME_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.args(args).env("SESAME_LOG_LEVEL", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The `kid` in a JWT's header.
pub fn kid_of(jwt: &str) -> String {
    use base64::Engine;
    let header = jwt.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: Value = serde_json::from_slice(&bytes).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// The kids the server publishes.
pub async fn published(client: &reqwest::Client, on: &Instance) -> Vec<String> {
    let (_, jwks) = call(client.get(format!("{}/.well-known/jwks.json", on.base))).await;
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect()
}

/// Polls `check` every 100 ms for up to `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
