//! Delivers outbox events at least once to every sink, each sink on its own.
//!
//! A round: committed events not yet fanned out get one delivery row per
//! sink that wants their topic; then, for each sink, due deliveries are
//! leased (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so instances relaying
//! together never send one delivery at the same moment), attempted outside
//! any transaction, and marked delivered or rescheduled with capped,
//! jittered back-off, until the last attempt leaves them `failed`. An ordered
//! sink (NATS) only ever holds the earliest pending delivery of a principal,
//! so each principal's events arrive in `aggseq` order; webhooks promise none
//! and are attempted concurrently.

use crate::store::{Delivery, Failure, OutboxStore};
use async_trait::async_trait;
use sesame_core::{Clock, FailPoints};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The sink has the event.
    Delivered,
    /// Try again later, not before `after` when the sink said so.
    Retry {
        /// What went wrong.
        error: String,
        /// A wait the sink asked for (`Retry-After`).
        after: Option<Duration>,
    },
    /// The sink is gone for good (a webhook answered `410`): stop sending to it.
    Gone {
        /// What it said.
        error: String,
    },
}

/// Somewhere events go.
#[async_trait]
pub trait Sink: Send + Sync {
    /// The sink's id in delivery rows: `log`, `nats`, `webhook:<name>`.
    fn id(&self) -> &str;
    /// Whether each principal's events must arrive in order.
    fn ordered(&self) -> bool {
        false
    }
    /// Whether the sink takes events of `topic`.
    fn wants(&self, _topic: &str) -> bool {
        true
    }
    /// Attempts one delivery.
    async fn deliver(&self, delivery: &Delivery) -> Outcome;
}

/// The sinks configured now (webhook endpoints come and go at run time).
#[async_trait]
pub trait Sinks: Send + Sync {
    /// Every sink events go to now.
    async fn current(&self) -> Vec<Arc<dyn Sink>>;
    /// A sink answered that it is gone: stop fanning out to it.
    async fn gone(&self, sink: &str, error: &str);
}

/// The embedded default: each event becomes one structured log line.
#[derive(Debug, Default)]
pub struct LogSink;

#[async_trait]
impl Sink for LogSink {
    fn id(&self) -> &str {
        "log"
    }

    async fn deliver(&self, delivery: &Delivery) -> Outcome {
        tracing::info!(target: "sesame::events", event = %delivery.payload, "event");
        Outcome::Delivered
    }
}

/// When to try again: the wait before each attempt, the first being the
/// first attempt's (normally none). Its length is the number of attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(pub Vec<Duration>);

impl Default for Schedule {
    /// The Standard Webhooks example: immediately, 5 s, 5 min, 30 min, 2 h,
    /// 5 h, 10 h, 14 h, 20 h and 24 h, about three days in all.
    fn default() -> Self {
        let secs = [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400];
        Self(secs.into_iter().map(Duration::from_secs).collect())
    }
}

impl Schedule {
    /// The wait after failed attempt number `attempts` (counted from 1),
    /// jittered by up to a tenth either way, or `None` after the last.
    pub fn after(&self, attempts: i64) -> Option<Duration> {
        let base = *self.0.get(usize::try_from(attempts).ok()?)?;
        let mut byte = [0u8; 1];
        let spread = match getrandom::fill(&mut byte) {
            Ok(()) => f64::from(byte[0]) / 255.0 * 0.2 - 0.1,
            Err(_) => 0.0,
        };
        Some(base.mul_f64(1.0 + spread))
    }
}

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// The longest wait between rounds when nothing wakes the relay.
    pub interval: Duration,
    /// How long a woken relay waits before its round, so that the events of
    /// many commits made meanwhile go in one round (and one write
    /// transaction) instead of one round each.
    pub linger: Duration,
    /// Events fanned out, and deliveries leased per sink, in one go.
    pub batch: i64,
    /// How long a lease lasts: longer than any one attempt can take.
    pub lease: Duration,
    /// Back-off between attempts.
    pub schedule: Schedule,
    /// `relay.before_mark:<sink>` stops a round after the sink took its
    /// deliveries and before they are marked, as a crash there would.
    pub failpoints: FailPoints,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(500),
            linger: Duration::from_millis(10),
            batch: 100,
            lease: Duration::from_secs(60),
            schedule: Schedule::default(),
            failpoints: FailPoints::default(),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Events fanned out.
    pub fanned_out: usize,
    /// Deliveries attempted.
    pub attempted: usize,
    /// Of which delivered.
    pub delivered: usize,
    /// Whether a step stopped at the batch size, so that more may be waiting.
    pub full: bool,
}

/// Fans events out and delivers them.
pub struct Relay {
    store: Arc<dyn OutboxStore>,
    sinks: Arc<dyn Sinks>,
    clock: Arc<dyn Clock>,
    options: RelayOptions,
    wake: Arc<Notify>,
    owner: Uuid,
}

impl Relay {
    /// A relay woken by `wake` (notified after each commit) or every
    /// `options.interval`.
    pub fn new(
        store: Arc<dyn OutboxStore>,
        sinks: Arc<dyn Sinks>,
        clock: Arc<dyn Clock>,
        options: RelayOptions,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            sinks,
            clock,
            options,
            wake,
            owner: Uuid::now_v7(),
        }
    }

    /// One round over every sink.
    pub async fn round(&self) -> Round {
        let sinks = self.sinks.current().await;
        let mut round = Round::default();
        let wanted = |topic: &str| {
            sinks
                .iter()
                .filter(|s| s.wants(topic))
                .map(|s| s.id().to_owned())
                .collect::<Vec<_>>()
        };
        loop {
            match self
                .store
                .fan_out(&wanted, self.options.batch, self.clock.now())
                .await
            {
                Ok(n) => {
                    round.fanned_out += n;
                    if n < self.batch() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "fanning events out failed");
                    metrics::counter!("sesame_relay_errors_total").increment(1);
                    break;
                }
            }
        }
        let mut each = JoinSet::new();
        for sink in sinks {
            let relay = self.handle();
            each.spawn(async move { relay.drain(sink).await });
        }
        while let Some(done) = each.join_next().await {
            if let Ok((attempted, delivered)) = done {
                round.attempted += attempted;
                round.delivered += delivered;
                round.full |= attempted >= self.batch();
            }
        }
        round
    }

    fn batch(&self) -> usize {
        usize::try_from(self.options.batch).unwrap_or(usize::MAX)
    }

    fn handle(&self) -> Arc<Handle> {
        Arc::new(Handle {
            store: self.store.clone(),
            sinks: self.sinks.clone(),
            clock: self.clock.clone(),
            options: self.options.clone(),
            owner: self.owner,
        })
    }

    /// Runs until `shutdown` changes, with one last round before returning.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let round = self.round().await;
            if round.full {
                continue;
            }
            let moved = round.fanned_out > 0 || round.delivered > 0;
            tokio::select! {
                () = self.pause(moved) => {}
                _ = shutdown.changed() => {
                    self.round().await;
                    return;
                }
            }
        }
    }

    /// The wait before the next round. After a round that moved anything
    /// (an ordered sink takes a principal's next event only once the one
    /// before is delivered), the linger; otherwise until a commit wakes the
    /// relay, then the linger, or the interval. A round that filled a batch
    /// is followed at once.
    async fn pause(&self, moved: bool) {
        if !moved {
            tokio::select! {
                () = tokio::time::sleep(self.options.interval) => return,
                () = self.wake.notified() => {}
            }
        }
        tokio::time::sleep(self.options.linger).await;
    }
}

/// What a sink's drain needs, shared with its task.
struct Handle {
    store: Arc<dyn OutboxStore>,
    sinks: Arc<dyn Sinks>,
    clock: Arc<dyn Clock>,
    options: RelayOptions,
    owner: Uuid,
}

impl Handle {
    /// Leases and attempts the due deliveries of one sink; returns how many
    /// were attempted and how many delivered.
    async fn drain(self: Arc<Self>, sink: Arc<dyn Sink>) -> (usize, usize) {
        let now = self.clock.now();
        let claimed = match self
            .store
            .claim(
                sink.id(),
                sink.ordered(),
                self.owner,
                self.options.batch,
                now,
                now + self.options.lease,
            )
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(sink = sink.id(), error = %e, "claiming deliveries failed");
                metrics::counter!("sesame_relay_errors_total").increment(1);
                return (0, 0);
            }
        };
        let attempted = claimed.len();
        let mut attempts = JoinSet::new();
        for delivery in claimed {
            let sink = sink.clone();
            attempts.spawn(async move {
                let outcome = sink.deliver(&delivery).await;
                (delivery, outcome)
            });
        }
        let mut delivered = Vec::new();
        let mut gone = None;
        while let Some(done) = attempts.join_next().await {
            let Ok((delivery, outcome)) = done else {
                continue;
            };
            let counted = match &outcome {
                Outcome::Delivered => "delivered",
                Outcome::Retry { .. } => "failed",
                Outcome::Gone { .. } => "gone",
            };
            metrics::counter!(
                "sesame_event_deliveries_total",
                "sink" => sink.id().to_owned(),
                "outcome" => counted
            )
            .increment(1);
            match outcome {
                Outcome::Delivered => delivered.push(delivery.event_id),
                Outcome::Retry { error, after } => {
                    self.failed(sink.id(), &delivery, error, after).await;
                }
                Outcome::Gone { error } => {
                    self.failed(sink.id(), &delivery, error.clone(), None).await;
                    gone = Some(error);
                }
            }
        }
        let crash = format!("relay.before_mark:{}", sink.id());
        if !delivered.is_empty() && self.options.failpoints.check(&crash).is_err() {
            // As if the process died here: the deliveries stay leased, and
            // are attempted again once the lease has run out.
            return (attempted, 0);
        }
        if !delivered.is_empty()
            && let Err(e) = self
                .store
                .mark_delivered(sink.id(), self.owner, &delivered, self.clock.now())
                .await
        {
            tracing::warn!(sink = sink.id(), error = %e, "marking deliveries failed");
            metrics::counter!("sesame_relay_errors_total").increment(1);
        }
        if let Some(error) = gone {
            tracing::warn!(sink = sink.id(), %error, "the sink is gone; it gets nothing more");
            self.sinks.gone(sink.id(), &error).await;
        }
        (attempted, delivered.len())
    }

    async fn failed(
        &self,
        sink: &str,
        delivery: &Delivery,
        error: String,
        after: Option<Duration>,
    ) {
        let attempts = delivery.attempts + 1;
        let now = self.clock.now();
        let retry_at = self.options.schedule.after(attempts).map(|wait| {
            let wait = after.map_or(wait, |asked| asked.max(wait));
            now + wait
        });
        tracing::info!(
            sink,
            event_id = %delivery.event_id,
            attempts,
            %error,
            gives_up = retry_at.is_none(),
            "a delivery attempt failed"
        );
        let failure = Failure { error, retry_at };
        if let Err(e) = self
            .store
            .mark_attempt_failed(sink, self.owner, delivery.event_id, &failure)
            .await
        {
            tracing::warn!(sink, error = %e, "rescheduling a delivery failed");
            metrics::counter!("sesame_relay_errors_total").increment(1);
        }
    }
}
