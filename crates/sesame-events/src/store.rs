//! The outbox's tables: events as written, their deliveries (one per sink),
//! and the webhook endpoints.

use crate::Envelope;
use async_trait::async_trait;
use serde::Serialize;
use sesame_core::{StoreError, Tx};
use time::OffsetDateTime;
use uuid::Uuid;

/// A delivery claimed by a relay: its event and where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The event's id (the envelope's `id`).
    pub event_id: Uuid,
    /// The sink, e.g. `log`, `nats` or `webhook:<name>`.
    pub sink: String,
    /// The topic.
    pub topic: String,
    /// The envelope as it is sent, `aggseq` included.
    pub payload: serde_json::Value,
    /// The principal the event is about.
    pub principal: String,
    /// The event's place among its principal's events.
    pub aggseq: i64,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// Taken by the sink.
    Delivered,
    /// Given up on after its last attempt (or its endpoint was disabled).
    Failed,
}

impl DeliveryStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// The stored form read back.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One delivery as listed to an operator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRow {
    /// The event's id.
    pub event_id: Uuid,
    /// The sink.
    pub sink: String,
    /// The topic.
    pub topic: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (pending ones).
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    /// The last attempt's error.
    pub last_error: Option<String>,
}

/// How a failed attempt ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The attempt's error, kept for operators.
    pub error: String,
    /// When to try again; `None` gives up (the delivery becomes `failed`).
    pub retry_at: Option<OffsetDateTime>,
}

/// The sinks that take events of a topic.
pub type SinksFor<'a> = dyn for<'t> Fn(&'t str) -> Vec<String> + Send + Sync + 'a;

/// Stores events until every sink has them.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Writes an event in the caller's transaction.
    async fn enqueue(&self, tx: &mut dyn Tx, envelope: &Envelope) -> Result<(), StoreError>;

    /// Takes up to `limit` committed events not yet fanned out, oldest first,
    /// gives each the next `aggseq` of its principal (written into the
    /// envelope too), and creates one pending delivery, due `now`, for each
    /// sink `sinks` names for its topic. Returns how many events it took.
    /// Commits on its own; on a shared database concurrent callers take
    /// different events.
    async fn fan_out(
        &self,
        sinks: &SinksFor<'_>,
        limit: i64,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError>;

    /// Leases up to `limit` pending deliveries of `sink` that are due and not
    /// leased to anyone, to `owner` until `lease_until`, oldest due first.
    /// With `ordered`, only the earliest pending delivery of each principal
    /// on the sink can be taken, so a principal's events go out in `aggseq`
    /// order. Commits on its own.
    async fn claim(
        &self,
        sink: &str,
        ordered: bool,
        owner: Uuid,
        limit: i64,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Marks deliveries of `sink` leased to `owner` delivered.
    async fn mark_delivered(
        &self,
        sink: &str,
        owner: Uuid,
        events: &[Uuid],
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Counts a failed attempt of a delivery leased to `owner` and schedules
    /// the next one, or gives up.
    async fn mark_attempt_failed(
        &self,
        sink: &str,
        owner: Uuid,
        event: Uuid,
        failure: &Failure,
    ) -> Result<(), StoreError>;

    /// Gives up on every pending delivery of `sink` (its endpoint is gone).
    async fn fail_sink(&self, sink: &str, error: &str) -> Result<u64, StoreError>;

    /// Deliveries, newest event first: all of them, or only the failed.
    async fn list_deliveries(
        &self,
        failed_only: bool,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError>;

    /// Makes failed deliveries pending again, due `now` with their attempts
    /// reset: those of `event`, or every one. Returns how many.
    async fn retry_failed(
        &self,
        event: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// When the oldest event some sink still waits for was written (events
    /// not yet fanned out included); `None` when none waits.
    async fn oldest_undelivered(&self) -> Result<Option<OffsetDateTime>, StoreError>;

    /// Removes deliveries made before `before`, and the events whose every
    /// delivery is gone. Returns how many events went.
    async fn prune_delivered(&self, before: OffsetDateTime) -> Result<u64, StoreError>;

    /// Records a consumed message's id in the caller's transaction; false
    /// when it was recorded before (a redelivery: change nothing).
    async fn note_message(
        &self,
        tx: &mut dyn Tx,
        msg_id: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

/// A Standard Webhooks endpoint as stored: its secret sealed under the
/// master key.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEndpoint {
    /// Unique name; the sink is `webhook:<name>`.
    pub name: String,
    /// Where events are posted.
    pub url: String,
    /// Topic filters; empty means every topic.
    pub topics: Vec<String>,
    /// The sealed `whsec_` secret: nonce and ciphertext.
    pub secret_sealed: Vec<u8>,
    /// The master key that sealed it.
    pub secret_key_id: String,
    /// The secret it replaced, which signs too until its time is up.
    pub previous: Option<PreviousSecret>,
    /// Defined in the configuration file (re-written at every start).
    pub from_config: bool,
    /// When the endpoint stopped receiving (it answered `410 Gone`).
    pub disabled_at: Option<OffsetDateTime>,
    /// Why.
    pub disabled_reason: Option<String>,
    /// When it was first stored.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// A replaced webhook secret, still signing for a while after a rotation.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviousSecret {
    /// Sealed as the current one is.
    pub sealed: Vec<u8>,
    /// The master key that sealed it.
    pub key_id: String,
    /// When it stops signing.
    pub until: OffsetDateTime,
}

/// Stores webhook endpoints.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Creates or replaces the endpoint named `endpoint.name` (its previous
    /// secret included). An endpoint from the API is enabled again by it; one
    /// from the configuration only when its URL changed. Returns it as
    /// stored. Commits on its own.
    async fn put_webhook(&self, endpoint: &StoredEndpoint) -> Result<StoredEndpoint, StoreError>;
    /// Every endpoint, by name.
    async fn list_webhooks(&self) -> Result<Vec<StoredEndpoint>, StoreError>;
    /// Stops deliveries to an endpoint; false when there is no such endpoint.
    async fn disable_webhook(
        &self,
        name: &str,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Removes an endpoint; false when there was none.
    async fn delete_webhook(&self, name: &str) -> Result<bool, StoreError>;
    /// Replaces an endpoint's sealed secrets (after a master-key rotation):
    /// the current one, and the previous one when given.
    async fn reseal_webhook(
        &self,
        tx: &mut dyn Tx,
        name: &str,
        current: (&[u8], &str),
        previous: Option<(&[u8], &str)>,
    ) -> Result<(), StoreError>;
}
