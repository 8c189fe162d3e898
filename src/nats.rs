//! NATS for tests: the shared JetStream server (`SESAME_TEST_NATS_URL`,
//! default `nats://127.0.0.1:4222`), a stream and subject prefix of each
//! test's own, and a pull consumer reading what the server published.

use crate::in_ci;
use async_nats::jetstream::{self, consumer::pull};
use futures_util::StreamExt;
use std::time::Duration;

/// The server's URL.
pub fn nats_url() -> String {
    std::env::var("SESAME_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// One message as a consumer read it.
#[derive(Debug, Clone)]
pub struct Read {
    /// The subject.
    pub subject: String,
    /// The `Nats-Msg-Id` header.
    pub msg_id: String,
    /// The body as JSON.
    pub body: serde_json::Value,
}

/// A stream and subject prefix no other test uses, deleted on [`Self::finish`].
pub struct TestStream {
    /// The stream's name.
    pub name: String,
    /// The prefix of its subjects (`t<uuid>.`).
    pub prefix: String,
    jetstream: jetstream::Context,
}

impl TestStream {
    /// Names a fresh stream on the shared server; `None` (after a message)
    /// when no server answers outside CI.
    pub async fn new() -> Option<Self> {
        Self::on(&nats_url()).await
    }

    /// Names a fresh stream on the server at `url`.
    pub async fn on(url: &str) -> Option<Self> {
        let connected =
            tokio::time::timeout(Duration::from_secs(5), async_nats::connect(url)).await;
        let client = match connected {
            Ok(Ok(client)) => client,
            _ => {
                let msg = format!("no NATS server at {url}");
                assert!(!in_ci(), "{msg}");
                eprintln!("skipping: {msg}");
                return None;
            }
        };
        let tag = uuid::Uuid::now_v7().simple().to_string();
        Some(Self {
            name: format!("T_{tag}"),
            prefix: format!("t{tag}."),
            jetstream: jetstream::new(client),
        })
    }

    /// Every message on `topic` so far, oldest first, read by a new consumer.
    pub async fn read(&self, topic: &str) -> Vec<Read> {
        let stream = self
            .jetstream
            .get_stream(&self.name)
            .await
            .expect("the stream exists");
        let consumer = stream
            .create_consumer(pull::Config {
                filter_subject: format!("{}{topic}", self.prefix),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ..pull::Config::default()
            })
            .await
            .expect("a consumer");
        let mut out = Vec::new();
        loop {
            let before = out.len();
            fetch_into(&consumer, &mut out).await;
            if out.len() == before {
                return out;
            }
        }
    }

    /// Publishes `body` on `subject` (after the prefix) with `msg_id` as its
    /// `Nats-Msg-Id` when given, once a stream captures the subject; true
    /// when the stream acknowledged it as a duplicate.
    pub async fn publish(&self, subject: &str, msg_id: Option<&str>, body: &[u8]) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut headers = async_nats::HeaderMap::new();
            if let Some(id) = msg_id {
                headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
            }
            let sent = self
                .jetstream
                .publish_with_headers(
                    format!("{}{subject}", self.prefix),
                    headers,
                    body.to_vec().into(),
                )
                .await;
            if let Ok(ack) = sent
                && let Ok(ack) = ack.await
            {
                return ack.duplicate;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no stream took {subject}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The stream Sesame makes for what it consumes, in this test.
    pub fn inbox(&self) -> String {
        format!("{}_INBOX", self.name)
    }

    /// How many messages the stream holds.
    pub async fn stored(&self) -> u64 {
        let mut stream = self
            .jetstream
            .get_stream(&self.name)
            .await
            .expect("the stream exists");
        stream.info().await.expect("stream info").state.messages
    }

    /// Deletes the stream (and the inbox stream, if any).
    pub async fn finish(self) {
        let _ = self.jetstream.delete_stream(&self.name).await;
        let _ = self.jetstream.delete_stream(self.inbox()).await;
    }
}

/// Reads what `consumer` has now (a fetch that does not wait) into `out`.
async fn fetch_into(consumer: &jetstream::consumer::Consumer<pull::Config>, out: &mut Vec<Read>) {
    let mut batch = consumer
        .fetch()
        .max_messages(1000)
        .messages()
        .await
        .expect("a fetch");
    while let Some(message) = batch.next().await {
        let message = message.expect("a message");
        let msg_id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        out.push(Read {
            subject: message.subject.to_string(),
            msg_id,
            body: serde_json::from_slice(&message.payload).expect("a JSON body"),
        });
        message.ack().await.expect("an ack");
    }
}

/// A NATS server of a test's own (Debian's `nats-server`, JetStream on, its
/// store in a temporary directory), to stop and start again.
pub struct PrivateNats {
    /// `nats://127.0.0.1:<port>`.
    pub url: String,
    port: u16,
    store: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl PrivateNats {
    /// Starts one on a free port; `None` (after a message) when there is no
    /// `nats-server` outside CI.
    pub async fn start() -> Option<Self> {
        let found = std::process::Command::new("nats-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            let msg = "nats-server missing: run the suite with scripts/test, which installs it";
            assert!(!in_ci(), "{msg}");
            eprintln!("skipping: {msg}");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut nats = Self {
            url: format!("nats://127.0.0.1:{port}"),
            port,
            store: tempfile::tempdir().expect("a store directory"),
            child: None,
        };
        nats.restart().await;
        Some(nats)
    }

    /// Kills it (SIGKILL): no clean shutdown.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and store, and waits until it listens.
    pub async fn restart(&mut self) {
        self.kill();
        let child = std::process::Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nats-server did not listen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
    }
}
