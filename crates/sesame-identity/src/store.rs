//! Persistence of profiles.

use crate::{Profile, ProfilePatch};
use async_trait::async_trait;
use sesame_core::{PrincipalId, StoreError, Tx};
use time::OffsetDateTime;

/// Stores user profiles.
#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// Inserts a new profile.
    async fn insert_profile(&self, tx: &mut dyn Tx, profile: &Profile) -> Result<(), StoreError>;
    /// Inserts many profiles at once (bulk import).
    async fn insert_profiles(
        &self,
        tx: &mut dyn Tx,
        profiles: &[Profile],
    ) -> Result<(), StoreError>;
    /// Reads a profile.
    async fn get_profile(&self, id: PrincipalId) -> Result<Profile, StoreError>;
    /// Ids of profiles whose display name starts with `prefix`, ignoring case
    /// (ASCII letters only on SQLite, whose `lower` knows no others), in id
    /// order after `after`, at most `limit`.
    async fn find_by_display_name_prefix(
        &self,
        prefix: &str,
        after: Option<PrincipalId>,
        limit: i64,
    ) -> Result<Vec<PrincipalId>, StoreError>;
    /// Deletes a profile, committing on its own; false when there was none.
    async fn delete_profile(&self, id: PrincipalId) -> Result<bool, StoreError>;
    /// Applies a patch and returns the updated profile.
    async fn update_profile(
        &self,
        tx: &mut dyn Tx,
        id: PrincipalId,
        patch: &ProfilePatch,
        now: OffsetDateTime,
    ) -> Result<Profile, StoreError>;
}
