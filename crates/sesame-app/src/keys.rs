//! Loading the key ring at start-up.

use crate::Stores;
use sesame_core::{Clock, Error};
use sesame_credentials::{KeyRing, MasterKey, SigningKeyRecord};

/// Loads the signing keys, generating and storing the first one on a new database.
pub(crate) async fn load_or_create(
    stores: &Stores,
    master: &MasterKey,
    clock: &dyn Clock,
    issuer: &str,
) -> Result<KeyRing, Error> {
    let mut records = stores.signing_keys.list_signing_keys().await?;
    let has_active = records
        .iter()
        .any(|r| r.retired_at.is_none() && r.activated_at.is_some());
    if !has_active {
        let record = SigningKeyRecord::generate(master, clock.now())?;
        stores.signing_keys.insert_signing_key(&record).await?;
        tracing::info!(kid = %record.kid, "generated the first signing key");
        records.push(record);
    }
    KeyRing::from_records(&records, master, issuer)
}
