//! Sign-in through other identity providers: the flows in progress, the
//! connections managed at run time and the provider tokens kept for a login.

use crate::seal::Sealed;
use async_trait::async_trait;
use sesame_core::{PrincipalId, StoreError, Tx};
use time::OffsetDateTime;
use uuid::Uuid;

/// A flow begun at `/v1/federation/{connection}/begin`: single use at the
/// callback (by `state`), then single use at the exchange (by `login_code`).
#[derive(Debug, Clone, PartialEq)]
pub struct FederationFlow {
    /// Its id, handed to the app.
    pub id: Uuid,
    /// The connection (its login type).
    pub connection: String,
    /// SHA-256 of the `state` sent to the provider.
    pub state_hash: Vec<u8>,
    /// `sign_in` or `link`.
    pub intent: String,
    /// Who links (for `link`).
    pub principal_id: Option<PrincipalId>,
    /// The `nonce` sent to the provider.
    pub nonce: String,
    /// The PKCE verifier of the provider leg, sealed (context: the flow id).
    pub pkce_verifier: Sealed,
    /// The app's own PKCE challenge (S256), checked at the exchange.
    pub app_challenge: String,
    /// Where the app is sent back to.
    pub return_to: String,
    /// SHA-256 of the login code handed to the app at the callback.
    pub login_code_hash: Option<Vec<u8>>,
    /// When that login code stops being accepted.
    pub login_code_expires_at: Option<OffsetDateTime>,
    /// What the provider said, sealed (context: the flow id), once verified.
    pub result: Option<Sealed>,
    /// When it began.
    pub created_at: OffsetDateTime,
    /// When the callback stops being accepted.
    pub expires_at: OffsetDateTime,
    /// When the callback used it.
    pub consumed_at: Option<OffsetDateTime>,
    /// When the exchange used it.
    pub exchanged_at: Option<OffsetDateTime>,
}

/// A connection managed through the admin API (or seeded from the config).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConnection {
    /// Its name (the login type).
    pub name: String,
    /// Its settings, as JSON.
    pub settings: serde_json::Value,
    /// The client secret, sealed (context: `connection:` + name).
    pub secret: Option<Sealed>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
}

/// Flows, connections and provider tokens.
#[async_trait]
pub trait FederationStore: Send + Sync {
    /// Stores a new flow. Commits on its own.
    async fn insert_flow(&self, flow: &FederationFlow) -> Result<(), StoreError>;
    /// Uses a flow at its callback: only once, only for `connection`, only
    /// before it expires. Commits on its own.
    async fn claim_flow(
        &self,
        connection: &str,
        state_hash: &[u8],
        now: OffsetDateTime,
    ) -> Result<Option<FederationFlow>, StoreError>;
    /// Records the verified result and the login code of a claimed flow.
    async fn finish_flow(
        &self,
        id: Uuid,
        login_code_hash: &[u8],
        code_expires_at: OffsetDateTime,
        result: &Sealed,
    ) -> Result<(), StoreError>;
    /// Uses a finished flow at the exchange: only once, only with its login
    /// code, only before the code expires. Commits on its own.
    async fn take_flow(
        &self,
        id: Uuid,
        login_code_hash: &[u8],
        now: OffsetDateTime,
    ) -> Result<Option<FederationFlow>, StoreError>;
    /// Every stored connection, by name.
    async fn list_connections(&self) -> Result<Vec<StoredConnection>, StoreError>;
    /// One stored connection.
    async fn get_connection(&self, name: &str) -> Result<Option<StoredConnection>, StoreError>;
    /// Creates or replaces a connection in the caller's transaction.
    async fn put_connection(
        &self,
        tx: &mut dyn Tx,
        connection: &StoredConnection,
    ) -> Result<(), StoreError>;
    /// Deletes a connection; false when there was none.
    async fn delete_connection(&self, tx: &mut dyn Tx, name: &str) -> Result<bool, StoreError>;
    /// Keeps a login's provider tokens (sealed, context: the login id),
    /// replacing what was kept.
    async fn put_provider_tokens(
        &self,
        tx: &mut dyn Tx,
        login_id: Uuid,
        sealed: &Sealed,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Every login's provider tokens, for re-sealing.
    async fn list_provider_tokens(&self) -> Result<Vec<(Uuid, Sealed)>, StoreError>;
    /// A login's provider tokens.
    async fn get_provider_tokens(&self, login_id: Uuid) -> Result<Option<Sealed>, StoreError>;
    /// Deletes flows that expired before `before`; how many.
    async fn delete_expired_flows(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}
