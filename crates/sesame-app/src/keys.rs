//! Signing keys: the first one on a new database, rotation (publish first,
//! sign later, keep the old one published until its tokens have expired), and
//! re-sealing under a new master key.

use crate::Stores;
use sesame_core::{Clock, Error, Tx};
use sesame_credentials::{AuditEntry, KeyRing, MasterKeys, SigningKeyRecord};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Loads the signing keys, generating and storing the first one on a new database.
pub(crate) async fn load_or_create(
    stores: &Stores,
    master: &MasterKeys,
    clock: &dyn Clock,
    issuer: &str,
) -> Result<KeyRing, Error> {
    let now = clock.now();
    let mut records = stores.signing_keys.list_signing_keys().await?;
    let has_active = records.iter().any(|r| {
        r.retired_at.is_none_or(|at| at > now) && r.activated_at.is_some_and(|at| at <= now)
    });
    if !has_active {
        let record = SigningKeyRecord::generate(master.current(), now)?;
        let mut tx = stores.db.begin().await?;
        stores
            .signing_keys
            .insert_signing_key(tx.as_mut(), &record)
            .await?;
        audit(tx.as_mut(), stores, "signing_key.created", &record.kid, now).await?;
        stores.db.commit(tx).await?;
        tracing::info!(kid = %record.kid, "generated the first signing key");
        records.push(record);
    }
    KeyRing::from_records(&records, master, issuer, now)
}

async fn audit(
    tx: &mut dyn Tx,
    stores: &Stores,
    event: &str,
    kid: &str,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let entry = AuditEntry {
        id: Uuid::now_v7(),
        principal_id: None,
        event: event.to_owned(),
        ip: None,
        user_agent: None,
        data: serde_json::json!({ "kid": kid }),
        at: now,
    };
    stores.audit.append_audit(tx, &entry).await?;
    Ok(())
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The new key.
    pub kid: String,
    /// When it starts signing.
    pub activates_at: OffsetDateTime,
    /// Keys that stop signing, and when they stop being published.
    pub retiring: Vec<(String, OffsetDateTime)>,
}

/// Adds a signing key that is published at once and signs from `now +
/// publish_for`; every key that signs now is retired `keep_after` after that
/// (the access-token lifetime plus a margin), so tokens it signed keep
/// verifying until they expire.
pub async fn rotate_signing_key(
    stores: &Stores,
    master: &MasterKeys,
    now: OffsetDateTime,
    publish_for: Duration,
    keep_after: Duration,
) -> Result<Rotation, Error> {
    let records = stores.signing_keys.list_signing_keys().await?;
    let mut record = SigningKeyRecord::generate(master.current(), now)?;
    let activates_at = now + publish_for;
    record.activated_at = Some(activates_at);
    let retire_at = activates_at + keep_after;
    let retiring: Vec<(String, OffsetDateTime)> = records
        .iter()
        .filter(|r| r.activated_at.is_some() && r.retired_at.is_none_or(|at| at > retire_at))
        .map(|r| (r.kid.clone(), retire_at))
        .collect();
    let mut tx = stores.db.begin().await?;
    stores
        .signing_keys
        .insert_signing_key(tx.as_mut(), &record)
        .await?;
    for (kid, at) in &retiring {
        stores
            .signing_keys
            .retire_signing_key(tx.as_mut(), kid, *at)
            .await?;
    }
    audit(tx.as_mut(), stores, "signing_key.rotated", &record.kid, now).await?;
    stores.db.commit(tx).await?;
    Ok(Rotation {
        kid: record.kid,
        activates_at,
        retiring,
    })
}

/// Seals every signing key under the current master key (opening each with
/// whichever configured key sealed it); returns how many were re-sealed.
pub async fn reseal_signing_keys(
    stores: &Stores,
    master: &MasterKeys,
    now: OffsetDateTime,
) -> Result<usize, Error> {
    let records = stores.signing_keys.list_signing_keys().await?;
    let mut tx = stores.db.begin().await?;
    let mut count = 0;
    for record in &records {
        if let Some(sealed) = master.reseal(&record.private_key_sealed, record.kid.as_bytes())? {
            stores
                .signing_keys
                .reseal_signing_key(tx.as_mut(), &record.kid, &sealed)
                .await?;
            audit(
                tx.as_mut(),
                stores,
                "signing_key.resealed",
                &record.kid,
                now,
            )
            .await?;
            count += 1;
        }
    }
    stores.db.commit(tx).await?;
    Ok(count)
}
