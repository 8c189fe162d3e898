//! Persistence of who may do what (roles, their assignments, service API
//! keys) and of erasure. Writes take the caller's transaction; reads use the
//! pool.

use crate::Role;
use crate::api_keys::ApiKeyRecord;
use async_trait::async_trait;
use sesame_core::{PrincipalId, SessionId, StoreError, Tx};
use time::OffsetDateTime;
use uuid::Uuid;

/// Roles, their assignments and service API keys.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Creates a role or replaces its permissions (an existing role keeps its
    /// creation time); the role as stored.
    async fn put_role(&self, tx: &mut dyn Tx, role: &Role) -> Result<Role, StoreError>;
    /// Deletes a role and every assignment of it; false when there was none.
    async fn delete_role(&self, tx: &mut dyn Tx, name: &str) -> Result<bool, StoreError>;
    /// Every role, by name.
    async fn list_roles(&self) -> Result<Vec<Role>, StoreError>;
    /// Assigns a role (which must exist: else `Conflict` on the foreign key);
    /// false when the principal already held it.
    async fn assign_role(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
        role: &str,
        by: Option<PrincipalId>,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Takes a role away; false when the principal did not hold it.
    async fn revoke_role(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
        role: &str,
    ) -> Result<bool, StoreError>;
    /// The roles a principal holds, with their permissions, by name.
    async fn roles_of(&self, principal: PrincipalId) -> Result<Vec<Role>, StoreError>;
    /// Stores a new API key.
    async fn insert_api_key(&self, tx: &mut dyn Tx, key: &ApiKeyRecord) -> Result<(), StoreError>;
    /// The key with this key id, revoked or not.
    async fn find_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Every key, newest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Revokes a key; false when there is no such live key.
    async fn revoke_api_key(
        &self,
        tx: &mut dyn Tx,
        id: Uuid,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Records that a key was used at `at`, unless a use at or after
    /// `unless_since` is already recorded (so a busy key is written at most
    /// once a period). Commits on its own.
    async fn touch_api_key(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        unless_since: OffsetDateTime,
    ) -> Result<(), StoreError>;
}

/// Erasure: everything a principal proved itself with or left behind.
#[async_trait]
pub trait ErasureStore: Send + Sync {
    /// Erases a live principal in `tx`: its login methods, password and
    /// history, second factors, passkeys, security keys, ceremonies, sessions
    /// (with their refresh tokens), role assignments and its profile where it
    /// shares the transaction (elsewhere the relay removes it); its audit rows
    /// keep event and time but lose address, agent and details, its sign-in
    /// attempts go, and its events lose their data. The principal row stays
    /// as a tombstone. Returns the sessions it deleted; `None` when there is
    /// no live principal.
    async fn erase_principal(
        &self,
        tx: &mut dyn Tx,
        id: PrincipalId,
        at: OffsetDateTime,
    ) -> Result<Option<Vec<SessionId>>, StoreError>;
}
