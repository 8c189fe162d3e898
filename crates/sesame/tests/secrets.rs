//! The server's own log, captured through a full flow at debug level, holds no
//! password, code, token or key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code fails loudly

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The six digits of the newest message in the mail outbox, once one is
/// there (messages are sent after the request answers).
fn last_code(data: &std::path::Path) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut files: Vec<_> = loop {
        let files: Vec<_> = std::fs::read_dir(data.join("outbox/mail"))
            .map(|dir| dir.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        if !files.is_empty() {
            break files;
        }
        assert!(std::time::Instant::now() < deadline, "no message arrived");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    files.sort();
    let text = std::fs::read_to_string(files.last().unwrap()).unwrap();
    let subject = text.lines().find(|l| l.starts_with("Subject:")).unwrap();
    subject.rsplit(' ').next().unwrap().trim().to_owned()
}

#[test]
fn no_secret_reaches_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = tmp.path().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sesame"))
        .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(&data)
        .env("SESAME_LOG_LEVEL", "debug")
        // The reuse below must be one at once, not a retry within the grace.
        .env("SESAME_REFRESH_REUSE_GRACE_SECS", "0")
        .env("SESAME_LOG_FORMAT", "json")
        .env("SESAME_ARGON2__MEMORY_KIB", "1024")
        .env_remove("RUST_LOG")
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            std::fs::File::create(tmp.path().join("server.err")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    let password = "Correct-Horse-Battery-9931";
    let new_password = "Another-Staple-Passphrase-7720";
    let login = json!({"type": "email", "identifier": "ada@example.com"});
    let mut secrets: Vec<String> = vec![password.into(), new_password.into()];

    let (status, reg) = request(
        addr,
        "POST",
        "/v1/registrations",
        None,
        Some(&json!({"login": login, "password": password})),
    );
    assert_eq!(status, 201, "{reg}");
    let (status, wrong) = request(
        addr,
        "POST",
        "/v1/sessions",
        None,
        Some(&json!({"login": login, "password": "Wrong-Guess-4410"})),
    );
    assert_eq!(status, 401, "{wrong}");
    secrets.push("Wrong-Guess-4410".into());
    let (status, session) = request(
        addr,
        "POST",
        "/v1/sessions",
        None,
        Some(&json!({"login": login, "password": password})),
    );
    assert_eq!(status, 200);
    let (status, refreshed) = request(
        addr,
        "POST",
        "/v1/sessions/refresh",
        None,
        Some(&json!({"refresh_token": session["refresh_token"]})),
    );
    assert_eq!(status, 200);
    // A reuse, which logs a warning about the session.
    let (status, _) = request(
        addr,
        "POST",
        "/v1/sessions/refresh",
        None,
        Some(&json!({"refresh_token": session["refresh_token"]})),
    );
    assert_eq!(status, 401);
    let token = reg["access_token"].as_str().unwrap();
    assert_eq!(request(addr, "GET", "/v1/me", Some(token), None).0, 200);
    let (status, _) = request(
        addr,
        "POST",
        "/v1/verifications",
        None,
        Some(&json!({"login": login, "purpose": "verify"})),
    );
    assert_eq!(status, 202);
    let code = last_code(&data);
    let (status, _) = request(
        addr,
        "POST",
        "/v1/verifications/confirm",
        // The owner confirms while signed in, so the account keeps its password.
        Some(token),
        Some(&json!({"login": login, "code": code})),
    );
    assert_eq!(status, 200);
    let (status, _) = request(
        addr,
        "PUT",
        "/v1/me/password",
        Some(token),
        Some(&json!({"current_password": password, "new_password": new_password})),
    );
    assert_eq!(status, 204);

    for v in [&reg, &session, &refreshed] {
        secrets.push(v["access_token"].as_str().unwrap().to_owned());
        secrets.push(v["refresh_token"].as_str().unwrap().to_owned());
    }
    secrets.push(
        std::fs::read_to_string(data.join("master.key"))
            .unwrap()
            .trim()
            .to_owned(),
    );

    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str(&std::fs::read_to_string(tmp.path().join("server.err")).unwrap());
    assert!(
        text.contains("refresh token reused"),
        "the log was not captured:\n{text}"
    );
    assert!(
        text.contains("identity.password.changed"),
        "events are logged:\n{text}"
    );
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret is in the log: {secret}"
        );
    }
    // The code, as a whole run of six digits.
    let digit_runs: Vec<&str> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|run| run.len() == 6)
        .collect();
    assert!(
        !digit_runs.contains(&code.as_str()),
        "the code {code} is in the log"
    );
}
