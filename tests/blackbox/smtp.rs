//! E-mail through a real SMTP server (aiosmtpd, started here on loopback).

use serde_json::json;
use sesame_delivery::{SmtpConfig, SmtpTls};
use sesame_tests::{TestApp, extract_code};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running aiosmtpd; stopped (stdin closed, then killed) on drop.
pub(crate) struct SmtpServer {
    child: Child,
    pub(crate) port: u16,
    inbox: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start(user: Option<(&str, &str)>, starttls: bool) -> Option<SmtpServer> {
    let python = sesame_tests::python_with("aiosmtpd, trustme")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let inbox = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py");
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args(["--port", &port.to_string()])
        .arg("--dir")
        .arg(inbox.path());
    if let Some((u, p)) = user {
        cmd.args(["--user", u, "--password", p]);
    }
    if starttls {
        cmd.arg("--starttls");
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "READY", "aiosmtpd did not start");
    Some(SmtpServer { child, port, inbox })
}

/// File names of the messages received so far.
fn mail_names(inbox: &Path) -> Vec<String> {
    std::fs::read_dir(inbox)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".eml") && !n.starts_with('.'))
        .collect()
}

/// The messages received, waiting up to `wait` for the first.
async fn received(inbox: &Path, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    loop {
        let names = mail_names(inbox);
        if !names.is_empty() || Instant::now() >= deadline {
            return names
                .iter()
                .map(|n| std::fs::read_to_string(inbox.join(n)).unwrap())
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn smtp_config(port: u16, user: &str, password: &str) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: SmtpTls::None,
        username: Some(user.into()),
        password: Some(password.to_owned().into()),
        ca_file: None,
        timeout_secs: 5,
    }
}

#[tokio::test]
async fn the_code_arrives_through_a_real_smtp_server() {
    let Some(smtp) = start(Some(("sesame", "s3cret")), false) else {
        return;
    };
    let port = smtp.port;
    let app = TestApp::builder()
        .config(|c| {
            c.smtp = Some(smtp_config(port, "sesame", "s3cret"));
            c.product_name = "Acme ID".into();
            c.mail_from = "Acme ID <no-reply@acme.example>".into();
        })
        .spawn()
        .await;
    app.register("ada@example.com").await;
    assert_eq!(
        app.send_code("email", "ada@example.com", "verify", None)
            .await
            .status,
        202
    );
    app.app.flush_deliveries().await;
    let mails = received(smtp.inbox.path(), Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(
        mail.contains("From: \"Acme ID\" <no-reply@acme.example>")
            || mail.contains("From: Acme ID <no-reply@acme.example>"),
        "{mail}"
    );
    assert!(mail.contains("To: ada@example.com"), "{mail}");
    let code = extract_code(mail).unwrap();
    let body = json!({"login": {"type": "email", "identifier": "ada@example.com"}, "code": code});
    let resp = app.post("/v1/verifications/confirm", &body).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    // Nothing went to the outbox folder.
    assert!(app.messages_to("ada@example.com").await.is_empty());
}

#[tokio::test]
async fn a_refused_login_at_the_smtp_server_loses_the_message_but_not_the_request() {
    let Some(smtp) = start(Some(("sesame", "s3cret")), false) else {
        return;
    };
    let port = smtp.port;
    let app = TestApp::builder()
        .config(|c| c.smtp = Some(smtp_config(port, "sesame", "wrong")))
        .spawn()
        .await;
    app.register("ada@example.com").await;
    // The answer does not depend on delivery, which is logged instead.
    assert_eq!(
        app.send_code("email", "ada@example.com", "verify", None)
            .await
            .status,
        202
    );
    app.app.flush_deliveries().await;
    assert!(mail_names(smtp.inbox.path()).is_empty());
}

#[tokio::test]
async fn starttls_with_a_private_ca_protects_login_and_message() {
    let Some(smtp) = start(Some(("sesame", "s3cret")), true) else {
        return;
    };
    let config = SmtpConfig {
        host: "localhost".into(),
        tls: SmtpTls::Starttls,
        ca_file: Some(smtp.inbox.path().join("ca.pem")),
        ..smtp_config(smtp.port, "sesame", "s3cret")
    };
    let app = TestApp::builder()
        .config(|c| c.smtp = Some(config))
        .spawn()
        .await;
    app.register("ada@example.com").await;
    assert_eq!(
        app.send_code("email", "ada@example.com", "verify", None)
            .await
            .status,
        202
    );
    app.app.flush_deliveries().await;
    received(smtp.inbox.path(), Duration::from_secs(10)).await;
    let names = mail_names(smtp.inbox.path());
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(
        names[0].ends_with(".starttls.eml"),
        "sent without TLS: {names:?}"
    );

    // Without the CA the server's certificate is not trusted and nothing is sent.
    let untrusted = SmtpConfig {
        host: "localhost".into(),
        tls: SmtpTls::Starttls,
        ..smtp_config(smtp.port, "sesame", "s3cret")
    };
    let app = TestApp::builder()
        .config(|c| c.smtp = Some(untrusted))
        .spawn()
        .await;
    app.register("bob@example.com").await;
    assert_eq!(
        app.send_code("email", "bob@example.com", "verify", None)
            .await
            .status,
        202
    );
    // Handed to the mailer, which refused the server: nothing arrived.
    app.app.flush_deliveries().await;
    assert_eq!(mail_names(smtp.inbox.path()).len(), 1);
}
