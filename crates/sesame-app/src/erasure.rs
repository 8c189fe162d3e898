//! Deleting an account is erasing it: in one transaction its credentials,
//! sessions and roles go, its audit rows and events lose everything but event
//! and time, the principal stays as a tombstone so that its id never recurs,
//! and `identity.user.deleted` tells other services to erase theirs. The
//! profile goes in the same transaction, or, when the identity domain has a
//! database of its own, when the relay delivers that event ([`ProfileEraser`]).

use crate::access::{Access, Caller};
use crate::{App, AuthContext, ClientMeta};
use async_trait::async_trait;
use serde_json::json;
use sesame_core::{Error, ErrorCode, PrincipalId};
use sesame_events::{Actor, Delivery, Outcome, Sink, topics};
use sesame_identity::ProfileStore;
use std::sync::Arc;

impl App {
    /// `DELETE /v1/admin/users/{id}`.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %principal))]
    pub async fn admin_delete_user(
        &self,
        caller: &Caller,
        principal: PrincipalId,
    ) -> Result<(), Error> {
        self.require(caller, "users:delete", Access::Write).await?;
        self.erase(principal, caller.actor()).await
    }

    /// `DELETE /v1/me`: needs a recent proof, as every sensitive change does.
    #[tracing::instrument(skip_all, err(level = "debug"), fields(principal_id = %auth.principal_id))]
    pub async fn delete_me(&self, auth: &AuthContext) -> Result<(), Error> {
        self.require_recent_proof(auth).await?;
        self.erase(auth.principal_id, Actor::principal(auth.principal_id))
            .await
    }

    async fn erase(&self, principal: PrincipalId, actor: Actor) -> Result<(), Error> {
        let now = self.0.clock.now();
        let mut tx = self.begin().await?;
        let sessions = self
            .0
            .stores
            .erasure
            .erase_principal(tx.as_mut(), principal, now)
            .await?
            .ok_or_else(|| Error::problem(ErrorCode::NotFound, "No such user"))?;
        // No address or agent: the audit row outlives the account it is about.
        self.announce_as(
            &mut tx,
            principal,
            actor,
            topics::USER_DELETED,
            &ClientMeta::default(),
            json!({ "principal_id": principal }),
            now,
        )
        .await?;
        tx.ends(&sessions);
        tx.touches(principal);
        self.commit(tx).await?;
        self.0.caches.roles.invalidate(&principal);
        Ok(())
    }
}

/// A sink that removes the profile of an erased principal before handing
/// `identity.user.deleted` on: an error leaves the delivery pending, so the
/// removal is retried until it holds.
pub struct ProfileEraser {
    profiles: Arc<dyn ProfileStore>,
    inner: Arc<dyn Sink>,
}

impl ProfileEraser {
    /// Wraps `inner`.
    pub fn new(profiles: Arc<dyn ProfileStore>, inner: Arc<dyn Sink>) -> Self {
        Self { profiles, inner }
    }
}

#[async_trait]
impl Sink for ProfileEraser {
    fn id(&self) -> &str {
        self.inner.id()
    }

    fn ordered(&self) -> bool {
        self.inner.ordered()
    }

    async fn deliver(&self, delivery: &Delivery) -> Outcome {
        if delivery.topic == topics::USER_DELETED {
            let Some(subject) = delivery.principal.parse().ok().map(PrincipalId) else {
                return Outcome::Retry {
                    error: "an identity.user.deleted event without a subject".into(),
                    after: None,
                };
            };
            if let Err(e) = self.profiles.delete_profile(subject).await {
                return Outcome::Retry {
                    error: e.to_string(),
                    after: None,
                };
            }
        }
        self.inner.deliver(delivery).await
    }
}
