//! Where events go: the log (the embedded default; it also removes erased
//! profiles in split mode), NATS JetStream when configured, and every enabled
//! Standard Webhooks endpoint as stored now. Endpoints from the configuration
//! file are written to the store at start, their secrets sealed under the
//! master key.

use crate::App;
use async_trait::async_trait;
use serde::Deserialize;
use sesame_core::{Clock, Error, ErrorCode};
use sesame_credentials::{MasterKeys, Sealed};
use sesame_events::inbox::{Handled, Handler};
use sesame_events::relay::Schedule;
use sesame_events::webhook::{self, WebhookSink};
use sesame_events::{OutboxStore, Sink, Sinks, StoredEndpoint, WebhookStore};
use sesame_outbound::OutboundClient;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

/// A webhook endpoint declared in the configuration (`[[events.webhooks]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSeed {
    /// Unique name; deliveries to it are listed as `webhook:<name>`.
    pub name: String,
    /// Where events are posted.
    pub url: String,
    /// The signing secret: `whsec_` and the base64 of 24 to 64 bytes.
    pub secret: String,
    /// Topics it receives (exact, or a prefix ending in `*`); none means all.
    #[serde(default)]
    pub topics: Vec<String>,
}

/// How events are delivered.
#[derive(Debug, Clone)]
pub struct EventSettings {
    /// Endpoints from the configuration file.
    pub webhooks: Vec<WebhookSeed>,
    /// Waits between attempts; its length is the number of attempts.
    pub schedule: Schedule,
    /// How long one webhook attempt may take.
    pub attempt_timeout: Duration,
    /// Let webhooks reach private and loopback addresses.
    pub allow_private_targets: bool,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            schedule: Schedule::default(),
            attempt_timeout: Duration::from_secs(15),
            allow_private_targets: false,
        }
    }
}

/// What a webhook secret is sealed with, besides the master key.
pub fn webhook_context(name: &str) -> Vec<u8> {
    format!("webhook/{name}").into_bytes()
}

fn invalid(message: String) -> Error {
    Error::problem(ErrorCode::ValidationFailed, message)
}

impl App {
    /// Notified after every commit: the relay's cue that events may wait.
    pub fn relay_wake(&self) -> Arc<tokio::sync::Notify> {
        self.0.relay_wake.clone()
    }

    /// How long the relay waits between attempts of one delivery.
    pub fn retry_schedule(&self) -> Schedule {
        self.0.settings.events.schedule.clone()
    }

    /// The one client webhooks go through.
    pub fn webhook_client(&self) -> Result<OutboundClient, Error> {
        let events = &self.0.settings.events;
        OutboundClient::new(
            concat!("sesame-webhooks/", env!("CARGO_PKG_VERSION")),
            events.attempt_timeout,
            events.allow_private_targets,
        )
        .map_err(Error::internal)
    }

    /// Writes the configured endpoints to the store (sealing their secrets)
    /// and removes the ones the configuration no longer names.
    pub(crate) async fn seed_webhooks(&self) -> Result<(), Error> {
        let seeds = &self.0.settings.events.webhooks;
        let client = self.webhook_client()?;
        let store = &self.0.stores.webhooks;
        let now = self.0.clock.now();
        for seed in seeds {
            webhook::secret_key(&seed.secret)
                .map_err(|rule| invalid(format!("webhook {}: {rule}", seed.name)))?;
            client
                .check_url(&seed.url)
                .map_err(|e| invalid(format!("webhook {}: {e}", seed.name)))?;
            let sealed = self
                .0
                .master
                .current()
                .seal(seed.secret.as_bytes(), &webhook_context(&seed.name))?;
            store
                .put_webhook(&StoredEndpoint {
                    name: seed.name.clone(),
                    url: seed.url.clone(),
                    topics: seed.topics.clone(),
                    secret_sealed: sealed.blob,
                    secret_key_id: sealed.key_id,
                    previous: None,
                    from_config: true,
                    disabled_at: None,
                    disabled_reason: None,
                    created_at: now,
                    updated_at: now,
                })
                .await?;
        }
        for stored in store.list_webhooks().await? {
            if stored.from_config && !seeds.iter().any(|s| s.name == stored.name) {
                store.delete_webhook(&stored.name).await?;
            }
        }
        Ok(())
    }

    /// The sinks of this deployment: `fixed` ones and the stored webhooks.
    pub fn event_sinks(&self, fixed: Vec<Arc<dyn Sink>>) -> Result<Arc<EventSinks>, Error> {
        Ok(Arc::new(EventSinks {
            fixed,
            webhooks: self.0.stores.webhooks.clone(),
            outbox: self.0.stores.outbox.clone(),
            master: self.0.master.clone(),
            client: self.webhook_client()?,
            clock: self.0.clock.clone(),
            built: Mutex::default(),
        }))
    }
}

/// Webhook sinks built for a set of stored endpoints.
#[derive(Default)]
struct Built {
    /// Name, last change and whether a previous secret still signs, of each
    /// endpoint they were built from.
    from: Vec<(String, OffsetDateTime, bool)>,
    sinks: Vec<Arc<dyn Sink>>,
}

/// The relay's view of the sinks: fixed ones, and the enabled webhook
/// endpoints re-read every round (rebuilt only when one changed).
pub struct EventSinks {
    fixed: Vec<Arc<dyn Sink>>,
    webhooks: Arc<dyn WebhookStore>,
    outbox: Arc<dyn OutboxStore>,
    master: MasterKeys,
    client: OutboundClient,
    clock: Arc<dyn Clock>,
    built: Mutex<Built>,
}

impl EventSinks {
    /// The HMAC key of a sealed `whsec_` secret.
    fn open_key(&self, name: &str, blob: &[u8], key_id: &str) -> Result<Vec<u8>, String> {
        let sealed = Sealed {
            key_id: key_id.to_owned(),
            blob: blob.to_vec(),
        };
        let secret = self
            .master
            .open(&sealed, &webhook_context(name))
            .map_err(|e| e.to_string())?;
        let secret = String::from_utf8(secret).map_err(|e| e.to_string())?;
        Ok(webhook::secret_key(&secret)?)
    }

    /// The endpoint's sink, signing with its secret and, until its time is
    /// up, the one it replaced.
    fn webhook_sink(
        &self,
        endpoint: &StoredEndpoint,
        now: OffsetDateTime,
    ) -> Result<Arc<dyn Sink>, String> {
        let name = &endpoint.name;
        let mut keys =
            vec![self.open_key(name, &endpoint.secret_sealed, &endpoint.secret_key_id)?];
        if let Some(previous) = endpoint.previous.as_ref().filter(|p| p.until > now) {
            keys.push(self.open_key(name, &previous.sealed, &previous.key_id)?);
        }
        Ok(Arc::new(WebhookSink::new(
            name,
            endpoint.url.clone(),
            endpoint.topics.clone(),
            keys,
            self.client.clone(),
            self.clock.clone(),
        )))
    }

    fn cached(&self) -> Vec<Arc<dyn Sink>> {
        let built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        built.sinks.clone()
    }
}

#[async_trait]
impl Sinks for EventSinks {
    async fn current(&self) -> Vec<Arc<dyn Sink>> {
        let mut sinks = self.fixed.clone();
        let endpoints = match self.webhooks.list_webhooks().await {
            Ok(endpoints) => endpoints,
            Err(e) => {
                tracing::warn!(error = %e, "reading webhook endpoints failed");
                sinks.extend(self.cached());
                return sinks;
            }
        };
        let enabled: Vec<_> = endpoints
            .into_iter()
            .filter(|e| e.disabled_at.is_none())
            .collect();
        let now = self.clock.now();
        let from: Vec<_> = enabled
            .iter()
            .map(|e| {
                let previous = e.previous.as_ref().is_some_and(|p| p.until > now);
                (e.name.clone(), e.updated_at, previous)
            })
            .collect();
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if built.from != from {
            let mut webhooks = Vec::with_capacity(enabled.len());
            for endpoint in &enabled {
                match self.webhook_sink(endpoint, now) {
                    Ok(sink) => webhooks.push(sink),
                    Err(error) => {
                        tracing::error!(endpoint = %endpoint.name, %error, "a webhook secret cannot be opened");
                    }
                }
            }
            *built = Built {
                from,
                sinks: webhooks,
            };
        }
        sinks.extend(built.sinks.iter().cloned());
        sinks
    }

    async fn gone(&self, sink: &str, error: &str) {
        let Some(name) = sink.strip_prefix("webhook:") else {
            return;
        };
        let now = self.clock.now();
        if let Err(e) = self.webhooks.disable_webhook(name, error, now).await {
            tracing::warn!(endpoint = name, error = %e, "disabling a webhook endpoint failed");
            return;
        }
        let why = format!("the endpoint was disabled: {error}");
        if let Err(e) = self.outbox.fail_sink(sink, &why).await {
            tracing::warn!(endpoint = name, error = %e, "failing a disabled endpoint's deliveries failed");
        }
    }
}

/// `accounts.user.role_required` as Sesame reads it: a CloudEvent (or any
/// JSON object) naming the principal in `data.principal_id` (else in
/// `subject`) and the role in `data.role`.
#[derive(Debug, Deserialize)]
struct RoleRequired {
    #[serde(default)]
    subject: Option<String>,
    data: RoleRequiredData,
}

#[derive(Debug, Deserialize)]
struct RoleRequiredData {
    #[serde(default)]
    principal_id: Option<String>,
    role: String,
}

/// Grants the roles other services ask for, once per message.
pub struct RoleRequests {
    app: App,
    counts: Arc<dyn Fn(&'static str) + Send + Sync>,
}

impl RoleRequests {
    /// Handles requests with `app`; `counts` is told of malformed messages
    /// and consumer errors.
    pub fn new(app: App, counts: Arc<dyn Fn(&'static str) + Send + Sync>) -> Self {
        Self { app, counts }
    }
}

#[async_trait]
impl Handler for RoleRequests {
    async fn handle(&self, msg_id: &str, body: &[u8]) -> Handled {
        match self.app.grant_required_role(msg_id, body).await {
            Ok(_) => Handled::Done,
            Err(e @ (Error::Problem { .. } | Error::Invalid { .. })) => {
                Handled::Malformed(e.to_string())
            }
            Err(e) => Handled::Retry(e.to_string()),
        }
    }

    fn count(&self, what: &'static str) {
        (self.counts)(what);
    }
}

impl App {
    /// Grants the role a `role_required` message asks for, recording the
    /// message id in the same transaction: a redelivered or duplicated
    /// message grants nothing twice. True when the role was granted now.
    /// A message that can never be handled is a `Problem`.
    pub async fn grant_required_role(&self, msg_id: &str, body: &[u8]) -> Result<bool, Error> {
        let malformed = |why: &str| Error::problem(ErrorCode::ValidationFailed, why.to_owned());
        let request: RoleRequired = serde_json::from_slice(body)
            .map_err(|e| malformed(&format!("not a role request: {e}")))?;
        let principal = request
            .data
            .principal_id
            .or(request.subject)
            .and_then(|id| id.parse().ok())
            .map(sesame_core::PrincipalId)
            .ok_or_else(|| malformed("no principal id in data.principal_id or subject"))?;
        let role = request.data.role;
        self.existing_principal(principal).await?;
        let now = self.0.clock.now();
        let stores = &self.0.stores;
        let mut tx = self.begin().await?;
        if !stores.outbox.note_message(tx.as_mut(), msg_id, now).await? {
            return Ok(false);
        }
        let granted = stores
            .access
            .assign_role(tx.as_mut(), principal, &role, None, now)
            .await
            .map_err(crate::access::no_such_role)?;
        if granted {
            let actor = sesame_events::Actor {
                kind: "service".into(),
                id: sesame_events::inbox::ROLE_REQUIRED.into(),
            };
            let data = serde_json::json!({ "role": role, "message_id": msg_id });
            self.announce_as(
                &mut tx,
                principal,
                actor,
                sesame_events::topics::ROLE_ASSIGNED,
                &crate::ClientMeta::default(),
                data,
                now,
            )
            .await?;
        }
        self.commit(tx).await?;
        self.0.caches.roles.invalidate(&principal);
        Ok(granted)
    }
}
