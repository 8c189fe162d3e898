//! Delivers outbox rows to a sink, at least once, in order of creation.

use crate::OutboxStore;
use async_trait::async_trait;
use sesame_core::Clock;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Somewhere events go.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Delivers one envelope; an error leaves it in the outbox for a retry.
    async fn deliver(&self, envelope: &serde_json::Value) -> Result<(), String>;
}

/// The embedded default: each event becomes one structured log line.
#[derive(Debug, Default)]
pub struct LogSink;

#[async_trait]
impl Sink for LogSink {
    async fn deliver(&self, envelope: &serde_json::Value) -> Result<(), String> {
        tracing::info!(target: "sesame::events", event = %envelope, "event");
        Ok(())
    }
}

/// Polls the outbox and hands events to the sink.
pub struct Relay {
    store: Arc<dyn OutboxStore>,
    sink: Arc<dyn Sink>,
    clock: Arc<dyn Clock>,
    interval: Duration,
}

impl Relay {
    /// A relay polling every `interval`.
    pub fn new(
        store: Arc<dyn OutboxStore>,
        sink: Arc<dyn Sink>,
        clock: Arc<dyn Clock>,
        interval: Duration,
    ) -> Self {
        Self {
            store,
            sink,
            clock,
            interval,
        }
    }

    /// Delivers what is pending now; returns how many were delivered.
    pub async fn drain_once(&self) -> usize {
        let batch = match self.store.pending(100).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "outbox read failed");
                return 0;
            }
        };
        let mut delivered = Vec::with_capacity(batch.len());
        for msg in batch {
            match self.sink.deliver(&msg.payload).await {
                Ok(()) => delivered.push(msg.id),
                Err(e) => {
                    tracing::warn!(event_id = %msg.id, error = %e, "event delivery failed");
                    if let Err(e) = self.store.mark_failed(msg.id).await {
                        tracing::warn!(error = %e, "outbox update failed");
                    }
                    // Keep order: stop at the first failure and retry later.
                    break;
                }
            }
        }
        if !delivered.is_empty()
            && let Err(e) = self
                .store
                .mark_published(&delivered, self.clock.now())
                .await
        {
            tracing::warn!(error = %e, "outbox update failed");
        }
        delivered.len()
    }

    /// Runs until `shutdown` turns true, draining once more before returning.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            while self.drain_once().await == 100 {}
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.changed() => {
                    self.drain_once().await;
                    return;
                }
            }
        }
    }
}
