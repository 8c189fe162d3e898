//! How every flow records a security change: an audit row and an outbox
//! event, both in the flow's transaction, so that neither exists without the
//! change nor the change without them.

use crate::work::Work;
use crate::{App, ClientMeta};
use sesame_core::{Error, PrincipalId};
use sesame_credentials::AuditEntry;
use sesame_events::{Actor, Envelope};
use time::OffsetDateTime;
use uuid::Uuid;

impl App {
    /// Writes the audit row and the outbox event of a security change.
    pub(crate) async fn announce(
        &self,
        tx: &mut Work,
        principal: PrincipalId,
        topic: &str,
        meta: &ClientMeta,
        data: serde_json::Value,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        self.announce_as(
            tx,
            principal,
            Actor::principal(principal),
            topic,
            meta,
            data,
            now,
        )
        .await
    }

    /// Writes the audit row and the outbox event of a change `actor` made to
    /// `principal`; the audit row names the actor when it is someone else.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn announce_as(
        &self,
        tx: &mut Work,
        principal: PrincipalId,
        actor: Actor,
        topic: &str,
        meta: &ClientMeta,
        data: serde_json::Value,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let mut audited = data.clone();
        if actor.kind != "principal"
            && let Some(fields) = audited.as_object_mut()
        {
            fields.insert("actor".into(), serde_json::json!(actor));
        }
        let audit = AuditEntry {
            id: Uuid::now_v7(),
            principal_id: Some(principal),
            event: topic.trim_start_matches("identity.").to_owned(),
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            data: audited,
            at: now,
        };
        self.0
            .stores
            .audit
            .append_audit(tx.as_mut(), &audit)
            .await?;
        self.0.failpoints.check("announce.audit")?;
        let envelope = Envelope::new(
            &self.0.settings.event_source,
            topic,
            principal,
            actor,
            data,
            now,
        );
        self.0.stores.outbox.enqueue(tx.as_mut(), &envelope).await?;
        tx.announces();
        Ok(())
    }
}
