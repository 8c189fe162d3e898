//! The NATS JetStream sink: each event is published on its topic (after an
//! optional prefix) with `Nats-Msg-Id` = the event id, and counts as
//! delivered only once the stream acknowledged it (an ack saying `duplicate`
//! included: the stream had it already). The stream is created when missing,
//! in a form the NATS 2.9 server accepts.

use crate::relay::{Outcome, Sink};
use crate::store::Delivery;
use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The stream's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsStream {
    /// Stream name.
    pub name: String,
    /// Put before every topic to make the subject (empty by default; e.g.
    /// `staging.` to keep deployments apart on one server).
    pub subject_prefix: String,
    /// How long messages are kept.
    pub max_age: Duration,
    /// How long the server remembers message ids to drop duplicates: longer
    /// than a lease plus the retries inside it.
    pub duplicate_window: Duration,
    /// How long a publish (or the stream's creation) waits for the server.
    pub ack_timeout: Duration,
}

impl Default for NatsStream {
    fn default() -> Self {
        Self {
            name: "SESAME_IDENTITY".into(),
            subject_prefix: String::new(),
            max_age: Duration::from_secs(7 * 86_400),
            duplicate_window: Duration::from_secs(300),
            ack_timeout: Duration::from_secs(5),
        }
    }
}

impl NatsStream {
    /// The stream configuration: every `identity.` topic, limits retention
    /// (any number of consumers), file storage.
    pub fn config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: vec![format!("{}identity.>", self.subject_prefix)],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            max_age: self.max_age,
            duplicate_window: self.duplicate_window,
            ..stream::Config::default()
        }
    }
}

/// Publishes events to JetStream.
pub struct NatsSink {
    jetstream: jetstream::Context,
    stream: NatsStream,
    ready: AtomicBool,
}

/// Connects to `url`, reconnecting in the background whenever the server is
/// away (the first time included).
pub async fn connect(url: &str) -> Result<jetstream::Context, String> {
    let client = async_nats::ConnectOptions::new()
        .name("sesame")
        .connection_timeout(Duration::from_secs(5))
        .retry_on_initial_connect()
        .connect(url)
        .await
        .map_err(|e| format!("NATS at {url}: {e}"))?;
    Ok(jetstream::new(client))
}

impl NatsSink {
    /// Publishes through `jetstream`. The stream is made sure of before the
    /// first publish (and again after the stream refused one), so a server
    /// that is away at start delays events, never the start.
    pub fn new(jetstream: jetstream::Context, stream: NatsStream) -> Self {
        Self {
            jetstream,
            stream,
            ready: AtomicBool::new(false),
        }
    }

    async fn ensure_stream(&self) -> Result<(), String> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let made = tokio::time::timeout(
            self.stream.ack_timeout,
            self.jetstream.get_or_create_stream(self.stream.config()),
        )
        .await
        .map_err(|_| "creating the stream timed out".to_owned())?;
        made.map_err(|e| format!("creating stream {}: {e}", self.stream.name))?;
        self.ready.store(true, Ordering::Release);
        Ok(())
    }
}

fn retry(error: String) -> Outcome {
    Outcome::Retry { error, after: None }
}

#[async_trait]
impl Sink for NatsSink {
    fn id(&self) -> &str {
        "nats"
    }

    fn ordered(&self) -> bool {
        true
    }

    fn wants(&self, topic: &str) -> bool {
        topic.starts_with("identity.")
    }

    async fn deliver(&self, delivery: &Delivery) -> Outcome {
        if let Err(e) = self.ensure_stream().await {
            return retry(e);
        }
        let body = match serde_json::to_vec(&delivery.payload) {
            Ok(body) => body,
            Err(e) => return retry(e.to_string()),
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            delivery.event_id.to_string().as_str(),
        );
        headers.insert("Content-Type", "application/cloudevents+json");
        let subject = format!("{}{}", self.stream.subject_prefix, delivery.topic);
        let ack = match self
            .jetstream
            .publish_with_headers(subject, headers, body.into())
            .await
        {
            Ok(ack) => ack,
            Err(e) => return retry(format!("publishing: {e}")),
        };
        // The ack future's own timeout is not applied while awaiting it.
        match tokio::time::timeout(self.stream.ack_timeout, ack.into_future()).await {
            Err(_) => retry("no ack from the stream in time".into()),
            Ok(Err(e)) => {
                // A stream deleted under us is made again on the next attempt.
                self.ready.store(false, Ordering::Release);
                retry(format!("the stream refused: {e}"))
            }
            Ok(Ok(ack)) => {
                if ack.duplicate {
                    tracing::info!(event_id = %delivery.event_id, "JetStream had this event already");
                }
                tracing::debug!(event_id = %delivery.event_id, stream = ack.stream, seq = ack.sequence, "published");
                Outcome::Delivered
            }
        }
    }
}
