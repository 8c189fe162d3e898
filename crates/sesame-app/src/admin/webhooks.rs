//! `/v1/admin/webhooks`: Standard Webhooks endpoints managed at run time.
//! Secrets are shown once (when made or rotated) and kept sealed; after a
//! rotation the previous secret signs too for a day, so receivers can move
//! over. Endpoints from the configuration file are changed there.

use super::valid_role_name as valid_name;
use crate::access::{Access, Caller};
use crate::events::webhook_context;
use crate::{App, ClientMeta};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sesame_core::{Error, ErrorCode, FieldError};
use sesame_events::webhook::{self, topic_matches};
use sesame_events::{PreviousSecret, StoredEndpoint, topics};
use time::OffsetDateTime;

/// How long a replaced secret keeps signing.
const OVERLAP: time::Duration = time::Duration::hours(24);

/// `PUT /v1/admin/webhooks/{name}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where events are posted.
    pub url: String,
    /// Topic filters (a topic, or a prefix ending in `*`); none means all.
    #[serde(default)]
    pub topics: Vec<String>,
    /// A `whsec_` secret of the caller's; one is made when a new endpoint has
    /// none, and an existing one keeps its own.
    #[serde(default)]
    pub secret: Option<String>,
}

/// An endpoint as the API shows it: never its secret.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookView {
    /// Its name; deliveries to it are listed as `webhook:<name>`.
    pub name: String,
    /// Where events are posted.
    pub url: String,
    /// Topic filters.
    pub topics: Vec<String>,
    /// Defined in the configuration file.
    pub from_config: bool,
    /// When it was disabled (it answered `410`), if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
    /// Why.
    pub disabled_reason: Option<String>,
    /// Until when the secret it replaced signs too.
    #[serde(with = "time::serde::rfc3339::option")]
    pub previous_secret_until: Option<OffsetDateTime>,
    /// When it was first stored.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl WebhookView {
    fn of(e: &StoredEndpoint) -> Self {
        Self {
            name: e.name.clone(),
            url: e.url.clone(),
            topics: e.topics.clone(),
            from_config: e.from_config,
            disabled_at: e.disabled_at,
            disabled_reason: e.disabled_reason.clone(),
            previous_secret_until: e.previous.as_ref().map(|p| p.until),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// An endpoint just stored, with its secret when it was made or rotated now.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookSaved {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: WebhookView,
    /// The signing secret, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn from_config_refused() -> Error {
    Error::problem(
        ErrorCode::Forbidden,
        "This endpoint is defined in the configuration file: change it there",
    )
}

fn not_found() -> Error {
    Error::problem(ErrorCode::NotFound, "No such webhook endpoint")
}

impl App {
    async fn webhook(&self, name: &str) -> Result<Option<StoredEndpoint>, Error> {
        let all = self.0.stores.webhooks.list_webhooks().await?;
        Ok(all.into_iter().find(|e| e.name == name))
    }

    /// `GET /v1/admin/webhooks`.
    pub async fn list_webhooks(&self, caller: &Caller) -> Result<Vec<WebhookView>, Error> {
        self.admit_read(caller, "webhooks:manage", "webhooks", None)
            .await?;
        let all = self.0.stores.webhooks.list_webhooks().await?;
        Ok(all.iter().map(WebhookView::of).collect())
    }

    /// `PUT /v1/admin/webhooks/{name}`: creates the endpoint, or replaces its
    /// URL and filters (enabling it again). Answers whether it was created.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn put_webhook(
        &self,
        caller: &Caller,
        name: &str,
        req: WebhookRequest,
        meta: &ClientMeta,
    ) -> Result<(bool, WebhookSaved), Error> {
        self.require(caller, "webhooks:manage", Access::Write)
            .await?;
        let mut errors = Vec::new();
        if !valid_name(name) {
            errors.push(FieldError::new("name", "invalid_format"));
        }
        if self.webhook_client()?.check_url(&req.url).is_err() {
            errors.push(FieldError::new("url", "invalid"));
        }
        let known = |filter: &String| {
            topics::ALL
                .iter()
                .any(|t| topic_matches(std::slice::from_ref(filter), t))
        };
        if req.topics.len() > 50 || !req.topics.iter().all(known) {
            errors.push(FieldError::new("topics", "unknown_topic"));
        }
        if req
            .secret
            .as_deref()
            .is_some_and(|s| webhook::secret_key(s).is_err())
        {
            errors.push(FieldError::new("secret", "invalid_format"));
        }
        if !errors.is_empty() {
            return Err(Error::validation(errors));
        }
        let existing = self.webhook(name).await?;
        if existing.as_ref().is_some_and(|e| e.from_config) {
            return Err(from_config_refused());
        }
        let now = self.0.clock.now();
        let (sealed, key_id, previous, shown) = match (req.secret, &existing) {
            (Some(secret), _) => {
                let sealed = self
                    .0
                    .master
                    .current()
                    .seal(secret.as_bytes(), &webhook_context(name))?;
                (sealed.blob, sealed.key_id, None, None)
            }
            (None, Some(e)) => (
                e.secret_sealed.clone(),
                e.secret_key_id.clone(),
                e.previous.clone(),
                None,
            ),
            (None, None) => {
                let secret =
                    webhook::new_secret().map_err(|e| Error::internal_from("no randomness", e))?;
                let sealed = self
                    .0
                    .master
                    .current()
                    .seal(secret.as_bytes(), &webhook_context(name))?;
                (sealed.blob, sealed.key_id, None, Some(secret))
            }
        };
        let stored = self
            .0
            .stores
            .webhooks
            .put_webhook(&StoredEndpoint {
                name: name.to_owned(),
                url: req.url,
                topics: req.topics,
                secret_sealed: sealed,
                secret_key_id: key_id,
                previous,
                from_config: false,
                disabled_at: None,
                disabled_reason: None,
                created_at: now,
                updated_at: now,
            })
            .await?;
        let data = json!({ "name": name, "url": stored.url, "topics": stored.topics });
        self.audit_admin_alone(caller, "webhook.changed", data, meta, now)
            .await?;
        let saved = WebhookSaved {
            endpoint: WebhookView::of(&stored),
            secret: shown,
        };
        Ok((existing.is_none(), saved))
    }

    /// `POST /v1/admin/webhooks/{name}/secret`: a new secret, shown once; the
    /// one it replaces signs too for a day.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn rotate_webhook_secret(
        &self,
        caller: &Caller,
        name: &str,
        meta: &ClientMeta,
    ) -> Result<WebhookSaved, Error> {
        self.require(caller, "webhooks:manage", Access::Write)
            .await?;
        let mut endpoint = self.webhook(name).await?.ok_or_else(not_found)?;
        if endpoint.from_config {
            return Err(from_config_refused());
        }
        let now = self.0.clock.now();
        let secret = webhook::new_secret().map_err(|e| Error::internal_from("no randomness", e))?;
        let sealed = self
            .0
            .master
            .current()
            .seal(secret.as_bytes(), &webhook_context(name))?;
        endpoint.previous = Some(PreviousSecret {
            sealed: std::mem::replace(&mut endpoint.secret_sealed, sealed.blob),
            key_id: std::mem::replace(&mut endpoint.secret_key_id, sealed.key_id),
            until: now + OVERLAP,
        });
        endpoint.updated_at = now;
        let stored = self.0.stores.webhooks.put_webhook(&endpoint).await?;
        let data = json!({ "name": name, "previous_secret_until": now + OVERLAP });
        self.audit_admin_alone(caller, "webhook.secret_rotated", data, meta, now)
            .await?;
        Ok(WebhookSaved {
            endpoint: WebhookView::of(&stored),
            secret: Some(secret),
        })
    }

    /// `DELETE /v1/admin/webhooks/{name}`: what it had pending fails.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn delete_webhook(
        &self,
        caller: &Caller,
        name: &str,
        meta: &ClientMeta,
    ) -> Result<(), Error> {
        self.require(caller, "webhooks:manage", Access::Write)
            .await?;
        let endpoint = self.webhook(name).await?.ok_or_else(not_found)?;
        if endpoint.from_config {
            return Err(from_config_refused());
        }
        self.0.stores.webhooks.delete_webhook(name).await?;
        let sink = webhook::sink_id(name);
        self.0
            .stores
            .outbox
            .fail_sink(&sink, "the endpoint was deleted")
            .await?;
        let now = self.0.clock.now();
        self.audit_admin_alone(
            caller,
            "webhook.deleted",
            json!({ "name": name }),
            meta,
            now,
        )
        .await
    }

    async fn audit_admin_alone(
        &self,
        caller: &Caller,
        event: &str,
        data: serde_json::Value,
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        self.audit_admin(tx.as_mut(), caller, event, data, meta, now)
            .await?;
        self.commit(tx).await
    }
}
