//! The embedded default: every message becomes a file in an outbox folder.

use crate::{DeliveryError, Mailer, Message, SmsSender};
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// Writes each e-mail as an `.eml` file (RFC 5322) into a folder.
#[derive(Debug, Clone)]
pub struct FileMailer {
    dir: PathBuf,
    from: String,
}

/// Writes each text message as a JSON file into a folder.
#[derive(Debug, Clone)]
pub struct FileSmsSender {
    dir: PathBuf,
}

impl FileMailer {
    /// A mailer writing into `dir` (created when needed), with `from` as sender.
    pub fn new(dir: impl Into<PathBuf>, from: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            from: from.into(),
        }
    }
}

impl FileSmsSender {
    /// A sender writing into `dir` (created when needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

/// A file name that sorts by time and never collides.
// The file system's order is the wall clock's, whatever clock the app runs on.
#[allow(clippy::disallowed_methods)]
fn file_name(ext: &str) -> String {
    let now = OffsetDateTime::now_utc();
    format!(
        "{}-{}.{ext}",
        now.unix_timestamp_nanos(),
        uuid::Uuid::now_v7().simple()
    )
}

async fn write(dir: &Path, name: String, contents: String) -> Result<(), DeliveryError> {
    let err = |e: std::io::Error| DeliveryError(format!("{}: {e}", dir.display()));
    tokio::fs::create_dir_all(dir).await.map_err(err)?;
    // Write then rename, so that a reader never sees half a message.
    let tmp = dir.join(format!(".{name}.tmp"));
    tokio::fs::write(&tmp, contents).await.map_err(err)?;
    tokio::fs::rename(&tmp, dir.join(name)).await.map_err(err)
}

/// Header values may not carry line breaks.
fn header(value: &str) -> String {
    value.replace(['\r', '\n'], " ")
}

#[async_trait]
impl Mailer for FileMailer {
    // A message's Date header is when it was written, as a mail server's is.
    #[allow(clippy::disallowed_methods)]
    async fn send(&self, m: &Message) -> Result<(), DeliveryError> {
        let date = OffsetDateTime::now_utc()
            .format(&Rfc2822)
            .unwrap_or_default();
        let eml = format!(
            "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {date}\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}",
            header(&self.from),
            header(&m.to),
            header(&m.subject),
            m.body.replace('\n', "\r\n"),
        );
        write(&self.dir, file_name("eml"), eml).await
    }
}

#[async_trait]
impl SmsSender for FileSmsSender {
    async fn send(&self, m: &Message) -> Result<(), DeliveryError> {
        let json = serde_json::json!({ "to": m.to, "body": m.body });
        write(&self.dir, file_name("json"), format!("{json}\n")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            to: "ada@example.com".into(),
            subject: "Code\r\nBcc: x@evil".into(),
            body: "Your code is 123456.\n".into(),
        }
    }

    #[tokio::test]
    async fn mail_becomes_an_eml_file() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = FileMailer::new(dir.path().join("mail"), "Sesame <no-reply@localhost>");
        mailer.send(&message()).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("mail"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].extension().unwrap(), "eml");
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(text.contains("To: ada@example.com\r\n"));
        assert!(
            text.contains("Subject: Code  Bcc: x@evil\r\n"),
            "header injection: {text}"
        );
        assert!(text.ends_with("Your code is 123456.\r\n"));
    }

    #[tokio::test]
    async fn sms_becomes_a_json_file() {
        let dir = tempfile::tempdir().unwrap();
        let sms = FileSmsSender::new(dir.path().join("sms"));
        sms.send(&Message {
            to: "+4930901820".into(),
            subject: String::new(),
            body: "123456".into(),
        })
        .await
        .unwrap();
        let file = std::fs::read_dir(dir.path().join("sms"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        assert_eq!(v["to"], "+4930901820");
        assert_eq!(v["body"], "123456");
    }
}
