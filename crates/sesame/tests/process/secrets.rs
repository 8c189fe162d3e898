//! The server's own log, captured through a full flow at debug level, holds no
//! password, code, token or key.

// Synchronous tests: waiting for a child process blocks no runtime.
#![allow(clippy::disallowed_methods)]

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let (status, body, _) = request_as(addr, method, path, token, body, None);
    (status, body)
}

/// A request, with `request_id` as its `x-request-id` when given; also
/// returns the `x-request-id` of the answer.
fn request_as(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    request_id: Option<&str>,
) -> (u16, Value, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    if let Some(id) = request_id {
        auth.push_str(&format!("X-Request-Id: {id}\r\n"));
    }
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
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let echoed = head
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap_or_default()
        .to_owned();
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::Null),
        echoed,
    )
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
    let log = tmp.path().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sesame"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("SESAME_LOG_LEVEL", "debug")
        // The reuse below must be one at once, not a retry within the grace.
        .env("SESAME_REFRESH_REUSE_GRACE_SECS", "0")
        .env("SESAME_LOG_FORMAT", "json")
        .env("SESAME_ARGON2__MEMORY_KIB", "1024")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(tmp.path().join("server.err")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let (listening, log_copier) =
        crate::common::listening_on(child.stdout.take().unwrap(), Some(log.clone()));
    let addr = crate::common::wait_listening(&listening);

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
    // A reuse, which logs a warning about the session, under the request id
    // the caller chose.
    let (status, _, echoed) = request_as(
        addr,
        "POST",
        "/v1/sessions/refresh",
        None,
        Some(&json!({"refresh_token": session["refresh_token"]})),
        Some("reuse-4711"),
    );
    assert_eq!((status, echoed.as_str()), (401, "reuse-4711"));
    let token = reg["access_token"].as_str().unwrap();
    // Without one (or with one that is not plain), the server makes one up.
    let (status, _, made_up) = request_as(addr, "GET", "/v1/me", Some(token), None, None);
    assert_eq!(status, 200);
    assert!(made_up.len() > 17 && made_up != "a b", "{made_up}");
    let (_, _, replaced) = request_as(addr, "GET", "/v1/me", Some(token), None, Some("a b"));
    assert!(replaced.len() > 17 && replaced != made_up, "{replaced}");
    assert_eq!(replaced.split('-').next(), made_up.split('-').next());
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

    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    log_copier.join().unwrap();
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
    // Every line logged for the reuse, the warning among them, carries its
    // request id and its route template.
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let request_of = |line: &Value| -> Option<Value> {
        line["spans"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "request")
            .cloned()
    };
    let of_reuse: Vec<(&Value, Value)> = lines
        .iter()
        .filter_map(|l| request_of(l).map(|span| (l, span)))
        .filter(|(_, span)| span["request_id"] == "reuse-4711")
        .collect();
    assert!(
        of_reuse.iter().any(|(l, _)| l["level"] == "WARN"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("refresh token reused"))),
        "the warning lacks its request id:\n{text}"
    );
    let (finished, _) = of_reuse
        .iter()
        .find(|(l, _)| l["message"] == "request finished")
        .expect("the request's closing line");
    assert_eq!(finished["status"], 401);
    assert!(finished["latency_us"].as_u64().is_some());
    for (line, span) in &of_reuse {
        assert_eq!(span["route"], "/v1/sessions/refresh", "{line}");
        assert_eq!(span["method"], "POST", "{line}");
    }
    let of_me = lines
        .iter()
        .filter_map(request_of)
        .filter(|span| span["request_id"] == made_up.as_str())
        .count();
    assert!(of_me >= 1, "no line of {made_up}");
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
