//! `sesame import`: users out of a "wide table" (one row with e-mail, phone,
//! username, password hash and profile fields) into principals, login methods,
//! passwords and profiles.
//!
//! Rows are read in batches. Each batch is checked against the database with
//! two queries (which ids exist, which identifiers are taken) and written in
//! one transaction of multi-row inserts; hashes are stored as they are and
//! upgraded at each user's first sign-in. Ids are stable (the source id when it
//! is a UUID, else derived from it), so running the same file again skips what
//! is there: an interrupted import is resumed by running it again.

use serde::Serialize;
use sesame_app::Stores;
use sesame_core::{Error, PrincipalId, StoreError};
use sesame_credentials::password::legacy::{Scheme, cost_within_ceiling};
use sesame_credentials::{
    AuditEntry, ImportedAccount, LoginMethod, LoginType, NormaliseConfig, Principal,
};
use sesame_identity::{Profile, ProfilePatch};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;
use time::OffsetDateTime;
use uuid::Uuid;

/// The input's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    JsonLines,
    /// Comma-separated values with a header row.
    Csv,
}

impl Format {
    /// From the file's extension: `.csv` is CSV, anything else JSON Lines.
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("csv") => Self::Csv,
            _ => Self::JsonLines,
        }
    }
}

/// The fields Sesame reads, each with the source column it comes from.
pub const FIELDS: &[&str] = &[
    "id",
    "email",
    "email_verified",
    "phone",
    "phone_verified",
    "username",
    "password_hash",
    "display_name",
    "avatar_url",
    "bio",
    "locale",
    "created_at",
];

/// How to run an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The input file.
    pub input: PathBuf,
    /// Its format.
    pub format: Format,
    /// Field → source column, for columns named otherwise than [`FIELDS`].
    pub mapping: HashMap<String, String>,
    /// Where refused rows are listed (JSON Lines).
    pub report: PathBuf,
    /// Rows per transaction.
    pub batch: usize,
    /// Print progress to stderr every few seconds.
    pub progress: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Rows read.
    pub read: u64,
    /// Rows imported now.
    pub imported: u64,
    /// Rows whose principal was there already (an earlier run).
    pub already_present: u64,
    /// Rows refused, each listed in the report.
    pub refused: u64,
    /// Wall time.
    pub seconds: f64,
    /// Rows read per second.
    pub rows_per_second: f64,
}

/// A refused row, as written to the report.
#[derive(Debug, Serialize)]
struct Refusal {
    line: u64,
    id: Option<String>,
    reason: &'static str,
    field: Option<&'static str>,
    detail: Option<String>,
}

/// One source row, by field name.
struct Row {
    line: u64,
    values: HashMap<&'static str, String>,
}

/// A row ready to write.
struct Candidate {
    line: u64,
    source_id: Option<String>,
    account: ImportedAccount,
    profile: Profile,
}

fn refuse(
    line: u64,
    id: Option<&String>,
    reason: &'static str,
    field: Option<&'static str>,
    detail: Option<String>,
) -> Refusal {
    Refusal {
        line,
        id: id.cloned(),
        reason,
        field,
        detail,
    }
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
fn prepare(
    row: Row,
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
                        "invalid_created_at",
                        Some("created_at"),
                        None,
                    )
                })?
        }
        None => now,
    };
    let mut logins = Vec::new();
    for (field, login_type, verified) in [
        ("email", LoginType::Email, "email_verified"),
        ("phone", LoginType::Phone, "phone_verified"),
        ("username", LoginType::Username, ""),
    ] {
        if let Some(raw) = get(field) {
            let identifier = sesame_credentials::login::normalise(login_type, raw, normalise)
                .map_err(|code| {
                    let reason = match login_type {
                        LoginType::Email => "invalid_email",
                        LoginType::Phone => "invalid_phone",
                        LoginType::Username => "invalid_username",
                    };
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
        return Err(refuse(row.line, source_id.as_ref(), "no_login", None, None));
    };
    let password_hash = get("password_hash").map(|h| h.trim().to_owned());
    if let Some(hash) = &password_hash
        && Scheme::of(hash).is_none()
    {
        let prefix: String = hash.chars().take(8).collect();
        return Err(refuse(
            row.line,
            source_id.as_ref(),
            "unknown_hash_format",
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
            "hash_cost_too_high",
            Some("password_hash"),
            Some("its cost exceeds what Sesame verifies (see the README)".into()),
        ));
    }
    if password_hash.is_none() && logins.iter().all(|l| l.0 == LoginType::Username) {
        // A username without a password is no way in.
        return Err(refuse(
            row.line,
            source_id.as_ref(),
            "no_way_to_sign_in",
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
            "invalid_profile",
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

/// Reads rows from the input, mapping source columns to fields.
struct Reader {
    rows: Box<dyn Iterator<Item = Result<Row, Refusal>>>,
}

impl Reader {
    fn open(options: &ImportOptions) -> Result<Self, String> {
        let file = std::fs::File::open(&options.input)
            .map_err(|e| format!("{}: {e}", options.input.display()))?;
        // source column → field
        let column_of = |field: &'static str| -> String {
            options
                .mapping
                .get(field)
                .cloned()
                .unwrap_or_else(|| field.to_owned())
        };
        let columns: Vec<(String, &'static str)> =
            FIELDS.iter().map(|f| (column_of(f), *f)).collect();
        match options.format {
            Format::JsonLines => {
                let lines = std::io::BufReader::new(file).lines();
                let rows = lines.enumerate().filter_map(move |(i, line)| {
                    let line_no = i as u64 + 1;
                    let text = match line {
                        Ok(t) => t,
                        Err(e) => {
                            return Some(Err(refuse(
                                line_no,
                                None,
                                "unreadable",
                                None,
                                Some(e.to_string()),
                            )));
                        }
                    };
                    if text.trim().is_empty() {
                        return None;
                    }
                    let object: serde_json::Map<String, serde_json::Value> =
                        match serde_json::from_str(&text) {
                            Ok(serde_json::Value::Object(o)) => o,
                            _ => {
                                return Some(Err(refuse(
                                    line_no,
                                    None,
                                    "invalid_json",
                                    None,
                                    None,
                                )));
                            }
                        };
                    let mut values = HashMap::new();
                    for (column, field) in &columns {
                        let value = match object.get(column) {
                            Some(serde_json::Value::String(s)) => s.clone(),
                            Some(serde_json::Value::Null) | None => continue,
                            Some(other) => other.to_string(),
                        };
                        values.insert(*field, value);
                    }
                    Some(Ok(Row {
                        line: line_no,
                        values,
                    }))
                });
                Ok(Self {
                    rows: Box::new(rows),
                })
            }
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(file);
                let headers = reader
                    .headers()
                    .map_err(|e| format!("{}: {e}", options.input.display()))?
                    .clone();
                let index: Vec<(usize, &'static str)> = columns
                    .iter()
                    .filter_map(|(column, field)| {
                        headers
                            .iter()
                            .position(|h| h == column)
                            .map(|i| (i, *field))
                    })
                    .collect();
                let rows = reader.into_records().enumerate().map(move |(i, record)| {
                    // Line 1 is the header.
                    let line_no = i as u64 + 2;
                    let record = record.map_err(|e| {
                        refuse(line_no, None, "invalid_csv", None, Some(e.to_string()))
                    })?;
                    let values = index
                        .iter()
                        .filter_map(|(i, field)| record.get(*i).map(|v| (*field, v.to_owned())))
                        .collect();
                    Ok(Row {
                        line: line_no,
                        values,
                    })
                });
                Ok(Self {
                    rows: Box::new(rows),
                })
            }
        }
    }
}

/// Runs an import; refused rows go to the report, progress to stderr.
pub async fn run(
    stores: &Stores,
    normalise: &NormaliseConfig,
    options: &ImportOptions,
) -> Result<Summary, String> {
    let started = Instant::now();
    let mut reader = Reader::open(options)?;
    let report_file = std::fs::File::create(&options.report)
        .map_err(|e| format!("{}: {e}", options.report.display()))?;
    let mut report = std::io::BufWriter::new(report_file);
    let mut summary = Summary::default();
    let mut seen_ids: HashSet<PrincipalId> = HashSet::new();
    let mut last_progress = Instant::now();
    let now = sesame_core::Clock::now(&sesame_core::SystemClock);
    loop {
        let batch: Vec<_> = reader.rows.by_ref().take(options.batch.max(1)).collect();
        if batch.is_empty() {
            break;
        }
        summary.read += batch.len() as u64;
        let mut refusals = Vec::new();
        let mut candidates = Vec::new();
        for row in batch {
            match row.and_then(|row| prepare(row, normalise, now)) {
                Ok(c) => candidates.push(c),
                Err(r) => refusals.push(r),
            }
        }
        let last_line = candidates.last().map_or(0, |c| c.line);
        let (written, present) = write_batch(stores, candidates, &mut seen_ids, &mut refusals)
            .await
            .map_err(|e| {
                format!(
                    "stopped at line {last_line}: {e}; every batch before it is committed: run the same import again to resume"
                )
            })?;
        summary.imported += written;
        summary.already_present += present;
        summary.refused += refusals.len() as u64;
        for r in &refusals {
            let line = serde_json::to_string(r).map_err(|e| e.to_string())?;
            writeln!(report, "{line}").map_err(|e| e.to_string())?;
        }
        if options.progress && last_progress.elapsed().as_secs() >= 2 {
            last_progress = Instant::now();
            eprintln!(
                "sesame import: {} rows read, {} imported, {} already present, {} refused ({:.0} rows/s)",
                summary.read,
                summary.imported,
                summary.already_present,
                summary.refused,
                summary.read as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    report.flush().map_err(|e| e.to_string())?;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.rows_per_second = summary.read as f64 / summary.seconds.max(1e-9);
    Ok(summary)
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
                "duplicate_id",
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
            let field = match m.login_type {
                LoginType::Email => "email",
                LoginType::Phone => "phone",
                LoginType::Username => "username",
            };
            refusals.push(refuse(
                c.line,
                c.source_id.as_ref(),
                "identifier_taken",
                Some(field),
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
                        "identifier_taken",
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

    fn row(values: &[(&'static str, &str)]) -> Row {
        Row {
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
            (vec![("email", "not an address")], "invalid_email"),
            (vec![("phone", "12")], "invalid_phone"),
            (vec![("display_name", "x")], "no_login"),
            (
                vec![("username", "ada"), ("password_hash", "md5:abc")],
                "unknown_hash_format",
            ),
            (
                vec![
                    ("username", "ada"),
                    (
                        "password_hash",
                        "$2b$31$DkdSOSUeeG9Se/9XN5UcW.dKHE5il84Xij30rLlY5i/mJIia6V2Kq",
                    ),
                ],
                "hash_cost_too_high",
            ),
            (vec![("username", "ada")], "no_way_to_sign_in"),
            (
                vec![("email", "a@b.co"), ("created_at", "yesterday")],
                "invalid_created_at",
            ),
            (
                vec![("email", "a@b.co"), ("avatar_url", "ftp://x")],
                "invalid_profile",
            ),
        ] {
            let refused = prepare(row(&values), &cfg, now).err().map(|r| r.reason);
            assert_eq!(refused, Some(reason), "{values:?}");
        }
    }
}
