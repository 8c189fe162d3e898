//! The `sesame` binary as an operator runs it.

// Synchronous tests: waiting for a child process blocks no runtime.
#![allow(clippy::disallowed_methods)]

use crate::common::{free_port, listening_on, wait_listening};
use rustix::process::Signal;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn sesame() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SESAME_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A plain HTTP/1.1 GET; returns status and body.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn wait_until_live(child: &mut Child, addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok((200, _)) = get(addr, "/health/live") {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("sesame exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("sesame did not come up on {addr}");
}

fn terminate(child: Child) -> std::process::ExitStatus {
    stop_with(child, Signal::TERM)
}

/// Sends `signal` (SIGTERM, or SIGINT as Ctrl-C does) and waits for the exit.
fn stop_with(mut child: Child, signal: Signal) -> std::process::ExitStatus {
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), signal).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "sesame ignored signal {signal:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn help_documents_flags_and_environment() {
    let out = sesame().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "serve",
        "--config",
        "SESAME_LISTEN",
        "SESAME_DATA_DIR",
        "SESAME_ARGON2__MEMORY_KIB",
        "TOML",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}:\n{text}");
    }
    let out = sesame().args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--listen <ADDR>",
        "--data-dir <DIR>",
        "SESAME_LISTEN",
        "SESAME_DATA_DIR",
    ] {
        assert!(
            text.contains(needle),
            "serve --help lacks {needle}:\n{text}"
        );
    }
}

#[test]
fn serve_with_no_configuration_prepares_its_data_and_stops_on_sigterm() {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = sesame();
    cmd.arg("serve")
        .current_dir(cwd.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // The default address, unless something else on this machine holds it.
    let default: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let addr = if TcpListener::bind(default).is_ok() {
        default
    } else {
        eprintln!("127.0.0.1:8080 is busy; checking every other default on another port");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        cmd.env("SESAME_LISTEN", addr.to_string());
        addr
    };
    let mut child = cmd.spawn().unwrap();
    wait_until_live(&mut child, addr);

    let data = cwd.path().join("sesame-data");
    assert_eq!(mode(&data), 0o700);
    let key = data.join("master.key");
    assert_eq!(mode(&key), 0o600);
    assert_eq!(std::fs::read_to_string(&key).unwrap().trim().len(), 64);
    // SQLite's header says WAL when bytes 18 and 19 are 2.
    let header = std::fs::read(data.join("sesame.db")).unwrap();
    assert_eq!(&header[..16], b"SQLite format 3\0");
    assert_eq!((header[18], header[19]), (2, 2));
    let (status, jwks) = get(addr, "/.well-known/jwks.json").unwrap();
    assert_eq!(status, 200);
    assert!(jwks.contains("\"crv\":\"Ed25519\""), "{jwks}");
    assert_eq!(get(addr, "/health/ready").unwrap().0, 200);

    let status = terminate(child);
    assert!(status.success(), "{status}");

    // A restart reuses the key and the database: the same signing key is published.
    let mut child = cmd.spawn().unwrap();
    wait_until_live(&mut child, addr);
    assert_eq!(get(addr, "/.well-known/jwks.json").unwrap().1, jwks);
    assert!(terminate(child).success());
}

/// Starts `cmd`, which asks for port 0, with cheap hashing; returns once the
/// server said which port it bound (not the default) and answers there.
fn serve_on_any_port(cmd: &mut Command) -> Child {
    let mut child = cmd
        .env("SESAME_ARGON2__MEMORY_KIB", "1024")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = wait_listening(&listening_on(child.stdout.take().unwrap(), None).0);
    assert_ne!(addr.port(), 8080);
    wait_until_live(&mut child, addr);
    child
}

#[test]
fn flags_and_environment_choose_address_and_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let flag_dir = tmp.path().join("by-flag");
    let child = serve_on_any_port(
        sesame()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&flag_dir),
    );
    assert!(flag_dir.join("sesame.db").exists());
    assert!(terminate(child).success());

    let env_dir = tmp.path().join("by-env");
    let child = serve_on_any_port(
        sesame()
            .arg("serve")
            .env("SESAME_LISTEN", "127.0.0.1:0")
            .env("SESAME_DATA_DIR", &env_dir),
    );
    assert!(env_dir.join("master.key").exists());
    // Ctrl-C stops it as gracefully as SIGTERM.
    assert!(stop_with(child, Signal::INT).success());
}

#[test]
fn bad_configuration_is_reported_and_exits_non_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let out = sesame()
        .args(["serve", "--data-dir"])
        .arg(tmp.path())
        .env("SESAME_PHONE_DEFAULT_REGION", "XX")
        .env("SESAME_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("phone_default_region"));

    let config = tmp.path().join("sesame.toml");
    std::fs::write(&config, "lsiten = \"127.0.0.1:1\"\n").unwrap();
    let out = sesame()
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lsiten"));
}

#[test]
fn admin_api_key_create_prints_the_key_once_and_refuses_unknown_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let out = sesame()
        .env("SESAME_DATA_DIR", dir.path())
        .args(["admin", "api-key", "create", "--name", "billing"])
        .args(["--scope", "introspect", "--scope", "users:read"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let key = lines.next().unwrap();
    assert!(key.starts_with("ses_live_") && key.len() == 80, "{key}");
    let note = lines.next().unwrap();
    assert!(
        note.contains("billing") && note.contains("introspect users:read"),
        "{note}"
    );
    assert!(!note.contains(&key[31..74]), "the secret is printed twice");

    let out = sesame()
        .env("SESAME_DATA_DIR", dir.path())
        .args([
            "admin", "api-key", "create", "--name", "x", "--scope", "root",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("validation_failed"), "{err}");
}

#[test]
fn admin_create_user_reads_the_password_from_stdin_and_prints_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = sesame()
        .env("SESAME_DATA_DIR", dir.path())
        .env("SESAME_ARGON2__MEMORY_KIB", "256")
        .env("SESAME_ARGON2__ITERATIONS", "1")
        .env("SESAME_ARGON2__PARALLELISM", "1")
        .args([
            "admin",
            "create-user",
            "--kind",
            "admin",
            "--email",
            "root@example.com",
        ])
        .args(["--password-stdin", "--role", "admin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery staple 9\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap();
    assert!(id.trim().parse::<uuid::Uuid>().is_ok(), "{id}");

    let out = sesame()
        .env("SESAME_DATA_DIR", dir.path())
        .args(["admin", "create-user", "--kind", "vendor"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--email, --phone or --username"));
}

#[test]
fn admin_roles_are_listed_assigned_and_taken_away() {
    let dir = tempfile::tempdir().unwrap();
    let admin = |args: &[&str]| {
        let out = sesame()
            .env("SESAME_DATA_DIR", dir.path())
            .env(
                "SESAME_ROLES",
                r#"[{name="support",permissions=["users:read"]}]"#,
            )
            .arg("admin")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, id) = admin(&["create-user", "--kind", "vendor", "--username", "acme"]);
    assert!(ok, "{id}");
    let id = id.lines().next().unwrap().trim().to_owned();
    let (ok, text) = admin(&["roles", "list"]);
    assert!(ok, "{text}");
    assert!(text.contains("support: users:read"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("admin: users:read users:create")),
        "{text}"
    );
    let (ok, text) = admin(&["roles", "assign", "--user", &id, "--role", "support"]);
    assert!(ok && text.contains("holds the role support"), "{text}");
    let (ok, text) = admin(&["roles", "revoke", "--user", &id, "--role", "support"]);
    assert!(
        ok && text.contains("does not hold the role support"),
        "{text}"
    );
    let (ok, text) = admin(&["roles", "assign", "--user", &id, "--role", "wizard"]);
    assert!(!ok && text.contains("No such role"), "{text}");
    let (ok, text) = admin(&["roles", "assign", "--user", "nobody", "--role", "support"]);
    assert!(!ok && text.contains("not a principal id"), "{text}");
}

#[test]
fn a_reader_that_stops_early_does_not_make_a_command_fail() {
    let dir = tempfile::tempdir().unwrap();
    // A pipe whose reading end is closed before the command starts, as after
    // `| head -0`: every write to it fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = sesame()
        .env("SESAME_DATA_DIR", dir.path())
        .args(["admin", "api-key", "create", "--name", "x"])
        .args(["--scope", "introspect"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
