//! Messages Sesame consumes from JetStream (`accounts.user.role_required`):
//! a durable pull consumer with explicit acks. A handled message is acked;
//! a malformed one is terminated (`Term`), logged and counted, so it is
//! never redelivered; one that failed for a passing reason is redelivered
//! later (`Nak`). The handler makes redeliveries harmless: it records each
//! message id in the transaction of its change.

use async_nats::jetstream::{self, AckKind, consumer::pull, stream};
use async_trait::async_trait;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The subject Sesame takes role requests from.
pub const ROLE_REQUIRED: &str = "accounts.user.role_required";

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Done (or done before): ack.
    Done,
    /// It can never be handled: terminate it.
    Malformed(String),
    /// Try again later.
    Retry(String),
}

/// Handles consumed messages.
#[async_trait]
pub trait Handler: Send + Sync {
    /// Handles a message with id `msg_id` (its `Nats-Msg-Id`, else the
    /// body's `id`, else its place in the stream).
    async fn handle(&self, msg_id: &str, body: &[u8]) -> Handled;
    /// Counts a message terminated as malformed, or a consumer error.
    fn count(&self, what: &'static str);
}

/// Where the consumer reads.
#[derive(Debug, Clone)]
pub struct InboxSettings {
    /// Put before the subject (as for published events).
    pub subject_prefix: String,
    /// The stream made when no stream captures the subject yet.
    pub stream: String,
    /// The durable consumer's name.
    pub durable: String,
}

impl Default for InboxSettings {
    fn default() -> Self {
        Self {
            subject_prefix: String::new(),
            stream: "SESAME_INBOX".into(),
            durable: "sesame-role-required".into(),
        }
    }
}

/// The stream capturing `subject`: an existing one, or a new one of Sesame's.
async fn stream_for(
    js: &jetstream::Context,
    subject: &str,
    settings: &InboxSettings,
) -> Result<stream::Stream, String> {
    if let Ok(name) = js.stream_by_subject(subject).await {
        return js.get_stream(name).await.map_err(|e| e.to_string());
    }
    js.get_or_create_stream(stream::Config {
        name: settings.stream.clone(),
        subjects: vec![subject.to_owned()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: Duration::from_secs(7 * 86_400),
        duplicate_window: Duration::from_secs(300),
        ..stream::Config::default()
    })
    .await
    .map_err(|e| e.to_string())
}

/// Consumes role requests until `shutdown` turns true, setting the consumer
/// up again (every few seconds) while the server is away.
pub async fn consume(
    js: jetstream::Context,
    settings: InboxSettings,
    handler: Arc<dyn Handler>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let run = consume_once(&js, &settings, handler.as_ref());
        let wait = tokio::select! {
            result = run => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "the role_required consumer stopped; starting it again");
                    handler.count("consumer_error");
                }
                Duration::from_secs(2)
            }
            _ = shutdown.changed() => return,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn consume_once(
    js: &jetstream::Context,
    settings: &InboxSettings,
    handler: &dyn Handler,
) -> Result<(), String> {
    let subject = format!("{}{ROLE_REQUIRED}", settings.subject_prefix);
    let stream = stream_for(js, &subject, settings).await?;
    let consumer = stream
        .get_or_create_consumer(
            &settings.durable,
            pull::Config {
                durable_name: Some(settings.durable.clone()),
                filter_subject: subject,
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                ..pull::Config::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| e.to_string())?;
        let header_id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_owned());
        let body_id = || {
            serde_json::from_slice::<serde_json::Value>(&message.payload)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned))
        };
        let msg_id = match header_id.or_else(body_id) {
            Some(id) => id,
            None => match message.info() {
                Ok(info) => format!("{}:{}", info.stream, info.stream_sequence),
                Err(e) => return Err(e.to_string()),
            },
        };
        let kind = match handler.handle(&msg_id, &message.payload).await {
            Handled::Done => AckKind::Ack,
            Handled::Malformed(why) => {
                tracing::warn!(
                    msg_id,
                    why,
                    "a malformed role_required message was terminated"
                );
                handler.count("malformed");
                AckKind::Term
            }
            Handled::Retry(why) => {
                tracing::warn!(msg_id, why, "a role_required message will be redelivered");
                AckKind::Nak(Some(Duration::from_secs(5)))
            }
        };
        message.ack_with(kind).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}
