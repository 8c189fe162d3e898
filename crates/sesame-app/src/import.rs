//! The import flow behind `sesame import`: a row of a "wide table" (e-mail,
//! phone, username, password hash and profile fields) checked and normalised
//! into a principal, its login methods, password and profile, or refused with
//! a reason; then written a batch at a time.
//!
//! Each batch is checked against the database with two queries (which ids
//! exist, which identifiers are taken) and written in one transaction of
//! multi-row inserts; hashes are stored as they are and upgraded at each
//! user's first sign-in. Ids are stable (the source id when it is a UUID, else
//! derived from it), so importing the same rows again skips what is there.

use crate::Stores;
use serde::Serialize;
use sesame_core::{Error, PrincipalId, StoreError};
use sesame_credentials::password::legacy::{Scheme, cost_within_ceiling};
use sesame_credentials::{
    AuditEntry, ImportedAccount, LoginMethod, LoginType, NormaliseConfig, Principal,
};
use sesame_identity::{Profile, ProfilePatch};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use time::OffsetDateTime;
use uuid::Uuid;

/// Why a row was refused, as the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The line could not be read.
    Unreadable,
    /// The line is not a JSON object.
    InvalidJson,
    /// The CSV record is malformed.
    InvalidCsv,
    /// `created_at` is not RFC 3339.
    InvalidCreatedAt,
    /// The e-mail address does not normalise.
    InvalidEmail,
    /// The phone number does not normalise.
    InvalidPhone,
    /// The username does not normalise.
    InvalidUsername,
    /// No e-mail, phone or username.
    NoLogin,
    /// A password hash in a format Sesame does not verify.
    UnknownHashFormat,
    /// A password hash whose cost exceeds what Sesame verifies.
    HashCostTooHigh,
    /// A username alone, without a password.
    NoWayToSignIn,
    /// A profile field Sesame refuses.
    InvalidProfile,
    /// An id an earlier row of the same input had.
    DuplicateId,
    /// A login another principal has.
    IdentifierTaken,
}

/// A refused row, as written to the report.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    /// Its line in the input.
    pub line: u64,
    /// Its source id, if it had one.
    pub id: Option<String>,
    /// Why.
    pub reason: RefusalReason,
    /// The field at fault, if one is.
    pub field: Option<&'static str>,
    /// More about it.
    pub detail: Option<String>,
}

impl Refusal {
    /// A refusal of the row at `line`.
    pub fn new(
        line: u64,
        id: Option<&String>,
        reason: RefusalReason,
        field: Option<&'static str>,
        detail: Option<String>,
    ) -> Self {
        Self {
            line,
            id: id.cloned(),
            reason,
            field,
            detail,
        }
    }
}

/// One source row, by field name.
#[derive(Debug, Clone)]
pub struct ImportRow {
    /// Its line in the input.
    pub line: u64,
    /// Field → value.
    pub values: HashMap<&'static str, String>,
}

/// A row ready to write.
#[derive(Debug, Clone)]
pub struct Candidate {
    line: u64,
    source_id: Option<String>,
    account: ImportedAccount,
    profile: Profile,
}

impl Candidate {
    /// Its line in the input.
    pub fn line(&self) -> u64 {
        self.line
    }
}

fn refuse(
    line: u64,
    id: Option<&String>,
    reason: RefusalReason,
    field: Option<&'static str>,
    detail: Option<String>,
) -> Refusal {
    Refusal::new(line, id, reason, field, detail)
}

/// The principal id of a row: its source id when that is a UUID, else a
/// UUID derived from it (or, without a source id, from its first login), so
/// that the same row always gets the same id.
fn principal_id(source_id: Option<&String>, first_login: &(LoginType, String)) -> PrincipalId {
    if let Some(id) = source_id
        && let Ok(uuid) = Uuid::parse_str(id.trim())
    {
        return PrincipalId(uuid);
    }
    let name = match source_id {
        Some(id) => format!("id:{id}"),
        None => format!("{}:{}", first_login.0.as_str(), first_login.1),
    };
    let digest = Sha256::digest(format!("sesame-import:{name}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    PrincipalId(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

fn truthy(value: Option<&String>) -> bool {
    value.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "true" | "t" | "1" | "yes" | "y"
        )
    })
}

/// Checks and normalises one row.
pub fn prepare(
    row: ImportRow,
    normalise: &NormaliseConfig,
    now: OffsetDateTime,
) -> Result<Candidate, Refusal> {
    let get = |field: &str| row.values.get(field).filter(|v| !v.trim().is_empty());
    let source_id = get("id").cloned();
    let created_at = match get("created_at") {
        Some(text) => {
            OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    refuse(
                        row.line,
                        source_id.as_ref(),
                        RefusalReason::InvalidCreatedAt,
                        Some("created_at"),
                        None,
                    )
                })?
        }
        None => now,
    };
    let mut logins = Vec::new();
    for (field, login_type, verified, reason) in [
        (
            "email",
            LoginType::Email,
            "email_verified",
            RefusalReason::InvalidEmail,
        ),
        (
            "phone",
            LoginType::Phone,
            "phone_verified",
            RefusalReason::InvalidPhone,
        ),
        (
            "username",
            LoginType::Username,
            "",
            RefusalReason::InvalidUsername,
        ),
    ] {
        if let Some(raw) = get(field) {
            let identifier = sesame_credentials::login::normalise(login_type, raw, normalise)
                .map_err(|code| {
                    refuse(
                        row.line,
                        source_id.as_ref(),
                        reason,
                        Some(field),
                        Some(code.into()),
                    )
                })?;
            logins.push((login_type, identifier, truthy(get(verified))));
        }
    }
    let Some(first) = logins.first() else {
        return Err(refuse(
            row.line,
            source_id.as_ref(),
            RefusalReason::NoLogin,
            None,
            None,
        ));
    };
    let password_hash = get("password_hash").map(|h| h.trim().to_owned());
    if let Some(hash) = &password_hash
        && Scheme::of(hash).is_none()
    {
        let prefix: String = hash.chars().take(8).collect();
        return Err(refuse(
            row.line,
            source_id.as_ref(),
            RefusalReason::UnknownHashFormat,
            Some("password_hash"),
            Some(format!("starts with {prefix:?}")),
        ));
    }
    if let Some(hash) = &password_hash
        && cost_within_ceiling(hash) != Some(true)
    {
        return Err(refuse(
            row.line,
            source_id.as_ref(),
            RefusalReason::HashCostTooHigh,
            Some("password_hash"),
            Some("its cost exceeds what Sesame verifies (see the README)".into()),
        ));
    }
    if password_hash.is_none() && logins.iter().all(|l| l.0 == LoginType::Username) {
        // A username without a password is no way in.
        return Err(refuse(
            row.line,
            source_id.as_ref(),
            RefusalReason::NoWayToSignIn,
            None,
            None,
        ));
    }
    let id = principal_id(source_id.as_ref(), &(first.0, first.1.clone()));
    let patch = ProfilePatch {
        display_name: Some(get("display_name").cloned()),
        avatar_url: Some(get("avatar_url").cloned()),
        bio: Some(get("bio").cloned()),
        locale: Some(get("locale").cloned()),
    }
    .validated("")
    .map_err(|e| {
        let detail = match &e {
            Error::Invalid { errors, .. } => errors
                .iter()
                .map(|f| format!("{}: {}", f.field, f.code))
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        refuse(
            row.line,
            source_id.as_ref(),
            RefusalReason::InvalidProfile,
            None,
            Some(detail),
        )
    })?;
    let profile = Profile {
        id,
        display_name: patch.display_name.flatten(),
        avatar_url: patch.avatar_url.flatten(),
        bio: patch.bio.flatten(),
        locale: patch.locale.flatten(),
        status: "active".into(),
        metadata: serde_json::json!({}),
        created_at,
        updated_at: created_at,
    };
    let logins = logins
        .into_iter()
        .map(|(login_type, identifier, verified)| LoginMethod {
            id: Uuid::now_v7(),
            principal_id: id,
            login_type,
            identifier,
            verified_at: verified.then_some(created_at),
            created_at,
            last_used_at: None,
        })
        .collect();
    Ok(Candidate {
        line: row.line,
        source_id,
        account: ImportedAccount {
            principal: Principal::new(id, "user", created_at),
            logins,
            password_hash,
        },
        profile,
    })
}

/// Writes batches of candidates, remembering the ids it has seen so that a
/// repeated id later in the input is refused.
pub struct BatchWriter<'a> {
    stores: &'a Stores,
    seen_ids: HashSet<PrincipalId>,
}

impl<'a> BatchWriter<'a> {
    /// A writer into `stores`.
    pub fn new(stores: &'a Stores) -> Self {
        Self {
            stores,
            seen_ids: HashSet::new(),
        }
    }

    /// Writes what can be written of one batch, each refused row added to
    /// `refusals`; returns (imported, already present).
    pub async fn write(
        &mut self,
        candidates: Vec<Candidate>,
        refusals: &mut Vec<Refusal>,
    ) -> Result<(u64, u64), Error> {
        write_batch(self.stores, candidates, &mut self.seen_ids, refusals).await
    }
}

/// Writes what can be written of one batch; returns (imported, already present).
async fn write_batch(
    stores: &Stores,
    candidates: Vec<Candidate>,
    seen_ids: &mut HashSet<PrincipalId>,
    refusals: &mut Vec<Refusal>,
) -> Result<(u64, u64), Error> {
    let ids: Vec<PrincipalId> = candidates.iter().map(|c| c.account.principal.id).collect();
    let existing = stores.import.existing_principals(&ids).await?;
    let logins: Vec<(LoginType, String)> = candidates
        .iter()
        .flat_map(|c| {
            c.account
                .logins
                .iter()
                .map(|m| (m.login_type, m.identifier.clone()))
        })
        .collect();
    let mut owners: HashMap<(LoginType, String), PrincipalId> = stores
        .import
        .login_owners(&logins)
        .await?
        .into_iter()
        .map(|(t, i, p)| ((t, i), p))
        .collect();
    let mut present = 0;
    let mut ready = Vec::new();
    for c in candidates {
        let id = c.account.principal.id;
        if !seen_ids.insert(id) {
            refusals.push(refuse(
                c.line,
                c.source_id.as_ref(),
                RefusalReason::DuplicateId,
                Some("id"),
                None,
            ));
            continue;
        }
        if existing.contains(&id) {
            present += 1;
            continue;
        }
        let taken = c.account.logins.iter().find(|m| {
            owners
                .get(&(m.login_type, m.identifier.clone()))
                .is_some_and(|owner| *owner != id)
        });
        if let Some(m) = taken {
            refusals.push(refuse(
                c.line,
                c.source_id.as_ref(),
                RefusalReason::IdentifierTaken,
                Some(m.login_type.as_str()),
                None,
            ));
            continue;
        }
        for m in &c.account.logins {
            owners.insert((m.login_type, m.identifier.clone()), id);
        }
        ready.push(c);
    }
    if ready.is_empty() {
        return Ok((0, present));
    }
    match insert(stores, &ready).await {
        Ok(()) => Ok((ready.len() as u64, present)),
        // Someone else wrote one of these identifiers meanwhile: row by row,
        // so that only the rows in conflict are refused.
        Err(e) if is_conflict(&e) => {
            let mut written = 0;
            for c in ready {
                match insert(stores, std::slice::from_ref(&c)).await {
                    Ok(()) => written += 1,
                    Err(e) if is_conflict(&e) => refusals.push(refuse(
                        c.line,
                        c.source_id.as_ref(),
                        RefusalReason::IdentifierTaken,
                        None,
                        None,
                    )),
                    Err(e) => return Err(e),
                }
            }
            Ok((written, present))
        }
        Err(e) => Err(e),
    }
}

fn is_conflict(e: &Error) -> bool {
    matches!(e.store_cause(), Some(StoreError::Conflict { .. }))
}

async fn insert(stores: &Stores, batch: &[Candidate]) -> Result<(), Error> {
    let profiles: Vec<Profile> = batch.iter().map(|c| c.profile.clone()).collect();
    let accounts: Vec<ImportedAccount> = batch.iter().map(|c| c.account.clone()).collect();
    let mut tx = stores.db.begin().await?;
    stores
        .profiles
        .insert_profiles(tx.as_mut(), &profiles)
        .await?;
    stores
        .import
        .insert_accounts(tx.as_mut(), &accounts)
        .await?;
    let audit = AuditEntry {
        id: Uuid::now_v7(),
        principal_id: None,
        event: "users.imported".into(),
        ip: None,
        user_agent: None,
        data: serde_json::json!({
            "count": batch.len(),
            "first_line": batch.first().map(|c| c.line),
            "last_line": batch.last().map(|c| c.line),
        }),
        at: sesame_core::Clock::now(&sesame_core::SystemClock),
    };
    stores.audit.append_audit(tx.as_mut(), &audit).await?;
    stores.db.commit(tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[(&'static str, &str)]) -> ImportRow {
        ImportRow {
            line: 7,
            values: values.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        }
    }

    #[test]
    fn rows_are_normalised_or_refused_with_a_reason() {
        let cfg = NormaliseConfig::default();
        let now = OffsetDateTime::UNIX_EPOCH;
        let ok = prepare(
            row(&[
                ("id", "42"),
                ("email", " Ada@Example.COM "),
                ("email_verified", "true"),
                ("phone", "+49 30 901820"),
                (
                    "password_hash",
                    "$2b$04$DkdSOSUeeG9Se/9XN5UcW.dKHE5il84Xij30rLlY5i/mJIia6V2Kq",
                ),
                ("display_name", "Ada"),
            ]),
            &cfg,
            now,
        )
        .map_err(|r| r.reason)
        .unwrap();
        assert_eq!(ok.account.logins[0].identifier, "ada@example.com");
        assert!(ok.account.logins[0].verified_at.is_some());
        assert_eq!(ok.account.logins[1].identifier, "+4930901820");
        assert!(ok.account.logins[1].verified_at.is_none());
        assert_eq!(ok.profile.display_name.as_deref(), Some("Ada"));
        // The same source id always maps to the same principal.
        let again = prepare(row(&[("id", "42"), ("email", "x@example.com")]), &cfg, now)
            .map_err(|r| r.reason)
            .unwrap();
        assert_eq!(again.account.principal.id, ok.account.principal.id);
        let uuid = "01a20b17-c70b-7780-b734-feeda62053fb";
        let kept = prepare(row(&[("id", uuid), ("email", "u@example.com")]), &cfg, now)
            .map_err(|r| r.reason)
            .unwrap();
        assert_eq!(kept.account.principal.id.0.to_string(), uuid);

        for (values, reason) in [
            (
                vec![("email", "not an address")],
                RefusalReason::InvalidEmail,
            ),
            (vec![("phone", "12")], RefusalReason::InvalidPhone),
            (vec![("display_name", "x")], RefusalReason::NoLogin),
            (
                vec![("username", "ada"), ("password_hash", "md5:abc")],
                RefusalReason::UnknownHashFormat,
            ),
            (
                vec![
                    ("username", "ada"),
                    (
                        "password_hash",
                        "$2b$31$DkdSOSUeeG9Se/9XN5UcW.dKHE5il84Xij30rLlY5i/mJIia6V2Kq",
                    ),
                ],
                RefusalReason::HashCostTooHigh,
            ),
            (vec![("username", "ada")], RefusalReason::NoWayToSignIn),
            (
                vec![("email", "a@b.co"), ("created_at", "yesterday")],
                RefusalReason::InvalidCreatedAt,
            ),
            (
                vec![("email", "a@b.co"), ("avatar_url", "ftp://x")],
                RefusalReason::InvalidProfile,
            ),
        ] {
            let refused = prepare(row(&values), &cfg, now).err().map(|r| r.reason);
            assert_eq!(refused, Some(reason), "{values:?}");
        }
    }
}
