//! Signing keys: the first one on a new database, rotation (publish first,
//! sign later, keep the old one published until its tokens have expired), and
//! re-sealing under a new master key.

use crate::Stores;
use sesame_core::{Clock, Error, Tx};
use sesame_credentials::{AuditEntry, KeyRing, MasterKeys, Sealed, SigningKeyRecord};
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
        audit(
            tx.as_mut(),
            stores,
            "signing_key.created",
            serde_json::json!({ "kid": record.kid }),
            now,
        )
        .await?;
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
    data: serde_json::Value,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let entry = AuditEntry {
        id: Uuid::now_v7(),
        principal_id: None,
        event: event.to_owned(),
        ip: None,
        user_agent: None,
        data,
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
    audit(
        tx.as_mut(),
        stores,
        "signing_key.rotated",
        serde_json::json!({ "kid": record.kid }),
        now,
    )
    .await?;
    stores.db.commit(tx).await?;
    Ok(Rotation {
        kid: record.kid,
        activates_at,
        retiring,
    })
}

/// What a master-key rotation sealed again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Signing keys.
    pub signing_keys: usize,
    /// Secrets of the server (the backup-code hash key).
    pub server_secrets: usize,
    /// TOTP seeds.
    pub totp_seeds: usize,
    /// Webhook signing secrets.
    pub webhook_secrets: usize,
    /// Client secrets of identity-provider connections.
    pub connection_secrets: usize,
    /// Provider tokens kept for federated logins.
    pub provider_tokens: usize,
}

/// Seals every secret at rest under the current master key (opening each with
/// whichever configured key sealed it), in one transaction: signing keys,
/// server secrets, TOTP seeds, webhook secrets, connection secrets and
/// provider tokens.
pub async fn reseal_secrets(
    stores: &Stores,
    master: &MasterKeys,
    now: OffsetDateTime,
) -> Result<Resealed, Error> {
    let records = stores.signing_keys.list_signing_keys().await?;
    let secrets = stores.secrets.list_server_secrets().await?;
    let seeds = stores.mfa.list_totp_seals().await?;
    let endpoints = stores.webhooks.list_webhooks().await?;
    let connections = stores.federation.list_connections().await?;
    let provider_tokens = stores.federation.list_provider_tokens().await?;
    let mut tx = stores.db.begin().await?;
    let mut done = Resealed::default();
    for record in &records {
        if let Some(sealed) = master.reseal(&record.private_key_sealed, record.kid.as_bytes())? {
            stores
                .signing_keys
                .reseal_signing_key(tx.as_mut(), &record.kid, &sealed)
                .await?;
            let data = serde_json::json!({ "kid": record.kid });
            audit(tx.as_mut(), stores, "signing_key.resealed", data, now).await?;
            done.signing_keys += 1;
        }
    }
    for (name, sealed) in &secrets {
        if let Some(resealed) = master.reseal(sealed, &crate::totp::secret_context(name))? {
            stores
                .secrets
                .reseal_server_secret(tx.as_mut(), name, &resealed)
                .await?;
            let data = serde_json::json!({ "name": name });
            audit(tx.as_mut(), stores, "server_secret.resealed", data, now).await?;
            done.server_secrets += 1;
        }
    }
    for (principal, sealed) in &seeds {
        if let Some(resealed) = master.reseal(sealed, principal.0.as_bytes())? {
            stores
                .mfa
                .reseal_totp(tx.as_mut(), *principal, &sealed.key_id, &resealed)
                .await?;
            done.totp_seeds += 1;
        }
    }
    for endpoint in &endpoints {
        let sealed = Sealed {
            key_id: endpoint.secret_key_id.clone(),
            blob: endpoint.secret_sealed.clone(),
        };
        let context = crate::events::webhook_context(&endpoint.name);
        let current = master.reseal(&sealed, &context)?;
        let previous = match &endpoint.previous {
            Some(p) => {
                let sealed = Sealed {
                    key_id: p.key_id.clone(),
                    blob: p.sealed.clone(),
                };
                master.reseal(&sealed, &context)?
            }
            None => None,
        };
        if current.is_some() || previous.is_some() {
            let current = current.unwrap_or(sealed);
            stores
                .webhooks
                .reseal_webhook(
                    tx.as_mut(),
                    &endpoint.name,
                    (&current.blob, &current.key_id),
                    previous
                        .as_ref()
                        .map(|p| (p.blob.as_slice(), p.key_id.as_str())),
                )
                .await?;
            let data = serde_json::json!({ "name": endpoint.name });
            audit(tx.as_mut(), stores, "webhook_secret.resealed", data, now).await?;
            done.webhook_secrets += 1;
        }
    }
    for connection in connections {
        let context = crate::federation::connection_context(&connection.name);
        let Some(sealed) = &connection.secret else {
            continue;
        };
        if let Some(resealed) = master.reseal(sealed, context.as_bytes())? {
            let name = connection.name.clone();
            let updated = sesame_credentials::StoredConnection {
                secret: Some(resealed),
                ..connection
            };
            stores
                .federation
                .put_connection(tx.as_mut(), &updated)
                .await?;
            let data = serde_json::json!({ "name": name });
            audit(tx.as_mut(), stores, "connection_secret.resealed", data, now).await?;
            done.connection_secrets += 1;
        }
    }
    for (login_id, sealed) in &provider_tokens {
        if let Some(resealed) = master.reseal(sealed, login_id.as_bytes())? {
            stores
                .federation
                .put_provider_tokens(tx.as_mut(), *login_id, &resealed, now)
                .await?;
            done.provider_tokens += 1;
        }
    }
    if done.provider_tokens > 0 {
        let data = serde_json::json!({ "count": done.provider_tokens });
        audit(tx.as_mut(), stores, "provider_tokens.resealed", data, now).await?;
    }
    if done.totp_seeds > 0 {
        let data = serde_json::json!({ "count": done.totp_seeds });
        audit(tx.as_mut(), stores, "totp_seeds.resealed", data, now).await?;
    }
    stores.db.commit(tx).await?;
    Ok(done)
}
