//! What Sesame's SQL backends share: the store statements themselves
//! ([`stamp_stores!`]), the seams each backend fills in ([`SqlBackend`]), and
//! turning a row into a model value: each driver's row type reads typed
//! columns through [`Columns`]; the mappers below are written once against it.

mod backend;
mod later;
mod stores;

pub use backend::{Conn, SqlBackend};
pub use later::{Arg, Args, Bindable, Later, Ran};

use serde_json::Value;
use sesame_core::{PrincipalId, SessionId};
use sesame_credentials::{
    ApiKeyRecord, AuditEntry, Ceremony, CodePurpose, FederationFlow, LoginMethod, LoginType,
    MfaChallenge, PasskeyRecord, Principal, RefreshToken, Role, Sealed, SecurityKeyRecord, Session,
    SigningKeyRecord, StoredConnection, TotpFactor, VerificationCode,
};
use sesame_events::{Delivery, DeliveryRow, DeliveryStatus, PreviousSecret, StoredEndpoint};
use sesame_identity::Profile;
use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

type Result<T> = std::result::Result<T, sqlx::Error>;

/// Typed columns of a driver's row.
pub trait Columns {
    /// A UUID.
    fn uuid(&self, name: &str) -> Result<Uuid>;
    /// A UUID or NULL.
    fn opt_uuid(&self, name: &str) -> Result<Option<Uuid>>;
    /// Text.
    fn text(&self, name: &str) -> Result<String>;
    /// Text or NULL.
    fn opt_text(&self, name: &str) -> Result<Option<String>>;
    /// A boolean.
    fn flag(&self, name: &str) -> Result<bool>;
    /// An integer.
    fn int(&self, name: &str) -> Result<i64>;
    /// A nullable integer.
    fn opt_int(&self, name: &str) -> Result<Option<i64>>;
    /// A timestamp.
    fn time(&self, name: &str) -> Result<OffsetDateTime>;
    /// A timestamp or NULL.
    fn opt_time(&self, name: &str) -> Result<Option<OffsetDateTime>>;
    /// Bytes.
    fn bytes(&self, name: &str) -> Result<Vec<u8>>;
    /// Bytes or NULL.
    fn opt_bytes(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// A JSON document (stored as text or as a JSON type, by driver).
    fn json(&self, name: &str) -> Result<Value>;
}

macro_rules! typed_columns {
    () => {
        fn uuid(&self, name: &str) -> Result<Uuid> {
            self.try_get(name)
        }
        fn opt_uuid(&self, name: &str) -> Result<Option<Uuid>> {
            self.try_get(name)
        }
        fn text(&self, name: &str) -> Result<String> {
            self.try_get(name)
        }
        fn opt_text(&self, name: &str) -> Result<Option<String>> {
            self.try_get(name)
        }
        fn flag(&self, name: &str) -> Result<bool> {
            self.try_get(name)
        }
        fn int(&self, name: &str) -> Result<i64> {
            self.try_get(name)
        }
        fn opt_int(&self, name: &str) -> Result<Option<i64>> {
            self.try_get(name)
        }
        fn time(&self, name: &str) -> Result<OffsetDateTime> {
            self.try_get(name)
        }
        fn opt_time(&self, name: &str) -> Result<Option<OffsetDateTime>> {
            self.try_get(name)
        }
        fn bytes(&self, name: &str) -> Result<Vec<u8>> {
            self.try_get(name)
        }
        fn opt_bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
            self.try_get(name)
        }
    };
}

impl Columns for sqlx::sqlite::SqliteRow {
    typed_columns!();
    fn json(&self, name: &str) -> Result<Value> {
        let text: String = self.try_get(name)?;
        serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(e.into()))
    }
}

impl Columns for sqlx::postgres::PgRow {
    typed_columns!();
    fn json(&self, name: &str) -> Result<Value> {
        self.try_get(name)
    }
}

fn decode_error(what: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unknown {what} {value}").into())
}

/// A driver error as a store error, without driver text for clients: a
/// missing row, a conflict named by `unique_name` (each driver names the
/// violated unique index its own way) or on a foreign key, or the store
/// unavailable with the driver's error as the cause.
pub fn store_error(
    err: sqlx::Error,
    unique_name: impl FnOnce(&dyn sqlx::error::DatabaseError) -> String,
) -> sesame_core::StoreError {
    use sesame_core::StoreError;
    match err {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
            constraint: unique_name(db.as_ref()),
        },
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::Conflict {
            constraint: "foreign_key".into(),
        },
        other => StoreError::driver(other),
    }
}

/// A row of `principals`.
pub fn principal(row: &impl Columns) -> Result<Principal> {
    Ok(Principal {
        id: PrincipalId(row.uuid("id")?),
        kind: row.text("kind")?,
        is_active: row.flag("is_active")?,
        failed_attempts: row.int("failed_attempts")?,
        locked_until: row.opt_time("locked_until")?,
        last_login_at: row.opt_time("last_login_at")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        password_removed_at: row.opt_time("password_removed_at")?,
        deleted_at: row.opt_time("deleted_at")?,
    })
}

/// A row of `login_methods`.
pub fn login_method(row: &impl Columns) -> Result<LoginMethod> {
    let login_type = row.text("login_type")?;
    Ok(LoginMethod {
        id: row.uuid("id")?,
        principal_id: PrincipalId(row.uuid("principal_id")?),
        login_type: LoginType::parse(&login_type)
            .ok_or_else(|| decode_error("login type", &login_type))?,
        identifier: row.text("identifier")?,
        verified_at: row.opt_time("verified_at")?,
        created_at: row.time("created_at")?,
        last_used_at: row.opt_time("last_used_at")?,
    })
}

/// A row of `sessions`.
pub fn session(row: &impl Columns) -> Result<Session> {
    let created_at = row.time("created_at")?;
    Ok(Session {
        id: SessionId(row.uuid("id")?),
        principal_id: PrincipalId(row.uuid("principal_id")?),
        principal_kind: row.text("principal_kind")?,
        aal: row.text("aal")?,
        amr: serde_json::from_value(row.json("amr")?).unwrap_or_default(),
        ip: row.opt_text("ip")?,
        user_agent: row.opt_text("user_agent")?,
        created_at,
        last_seen_at: row.time("last_seen_at")?,
        expires_at: row.time("expires_at")?,
        revoked_at: row.opt_time("revoked_at")?,
        revoke_reason: row.opt_text("revoke_reason")?,
        proven_at: row.opt_time("proven_at")?.unwrap_or(created_at),
    })
}

/// A refresh token from columns prefixed `r_`, beside its session's.
pub fn refresh_token(row: &impl Columns) -> Result<RefreshToken> {
    Ok(RefreshToken {
        id: row.uuid("r_id")?,
        session_id: SessionId(row.uuid("id")?),
        token_hash: row.bytes("r_token_hash")?,
        parent_id: row.opt_uuid("r_parent_id")?,
        used_at: row.opt_time("r_used_at")?,
        created_at: row.time("r_created_at")?,
        expires_at: row.time("r_expires_at")?,
        secret_sealed: match (
            row.opt_bytes("r_secret_sealed")?,
            row.opt_text("r_secret_key_id")?,
        ) {
            (Some(blob), Some(key_id)) => Some(Sealed { key_id, blob }),
            _ => None,
        },
    })
}

/// A row of `verification_codes`.
pub fn verification_code(row: &impl Columns) -> Result<VerificationCode> {
    let purpose = row.text("purpose")?;
    let login_type = row.text("login_type")?;
    Ok(VerificationCode {
        id: row.uuid("id")?,
        purpose: CodePurpose::parse(&purpose).ok_or_else(|| decode_error("purpose", &purpose))?,
        login_type: LoginType::parse(&login_type)
            .ok_or_else(|| decode_error("login type", &login_type))?,
        identifier: row.text("identifier")?,
        subject: row.text("subject")?,
        code_hash: row.bytes("code_hash")?,
        flow_id: row.opt_text("flow_id")?.unwrap_or_default(),
        attempts: row.int("attempts")?,
        anonymous_attempts: row.int("anonymous_attempts")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
        consumed_at: row.opt_time("consumed_at")?,
    })
}

/// A row of `signing_keys`.
pub fn signing_key(row: &impl Columns) -> Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: row.text("kid")?,
        alg: row.text("alg")?,
        private_key_sealed: Sealed {
            key_id: row.text("master_key_id")?,
            blob: row.bytes("private_key_sealed")?,
        },
        public_jwk: row.json("public_jwk")?,
        created_at: row.time("created_at")?,
        activated_at: row.opt_time("activated_at")?,
        retired_at: row.opt_time("retired_at")?,
    })
}

/// A row of `totp_factors`.
pub fn totp_factor(row: &impl Columns) -> Result<TotpFactor> {
    Ok(TotpFactor {
        principal_id: PrincipalId(row.uuid("principal_id")?),
        id: row.uuid("id")?,
        secret: Sealed {
            key_id: row.text("master_key_id")?,
            blob: row.bytes("secret_sealed")?,
        },
        confirmed_at: row.opt_time("confirmed_at")?,
        last_step: row.opt_int("last_step")?,
        created_at: row.time("created_at")?,
    })
}

/// A row of `mfa_challenges`.
pub fn mfa_challenge(row: &impl Columns) -> Result<MfaChallenge> {
    let login_type = row.text("login_type")?;
    Ok(MfaChallenge {
        id_hash: row.bytes("id_hash")?,
        principal_id: PrincipalId(row.uuid("principal_id")?),
        login_id: row.uuid("login_id")?,
        login_type: LoginType::parse(&login_type)
            .ok_or_else(|| decode_error("login type", &login_type))?,
        identifier: row.text("identifier")?,
        amr: serde_json::from_value(row.json("amr")?)
            .map_err(|e| decode_error("amr", &e.to_string()))?,
        attempts: row.int("attempts")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
        consumed_at: row.opt_time("consumed_at")?,
    })
}

/// A row of `audit_log`.
pub fn audit_entry(row: &impl Columns) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: row.uuid("id")?,
        principal_id: row.opt_uuid("principal_id")?.map(PrincipalId),
        event: row.text("event")?,
        ip: row.opt_text("ip")?,
        user_agent: row.opt_text("user_agent")?,
        data: row.json("data")?,
        at: row.time("at")?,
    })
}

/// A row of `roles`.
pub fn role(row: &impl Columns) -> Result<Role> {
    Ok(Role {
        name: row.text("name")?,
        permissions: serde_json::from_value(row.json("permissions")?)
            .map_err(|e| decode_error("permissions", &e.to_string()))?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

/// A row of `api_keys`.
pub fn api_key(row: &impl Columns) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.uuid("id")?,
        key_id: row.text("key_id")?,
        secret_hash: row.bytes("secret_hash")?,
        name: row.text("name")?,
        scopes: serde_json::from_value(row.json("scopes")?)
            .map_err(|e| decode_error("scopes", &e.to_string()))?,
        created_by: row.opt_uuid("created_by")?.map(PrincipalId),
        created_at: row.time("created_at")?,
        expires_at: row.opt_time("expires_at")?,
        last_used_at: row.opt_time("last_used_at")?,
        revoked_at: row.opt_time("revoked_at")?,
    })
}

/// A row of `passkeys`.
pub fn passkey(row: &impl Columns) -> Result<PasskeyRecord> {
    Ok(PasskeyRecord {
        login_id: row.uuid("login_id")?,
        principal_id: PrincipalId(row.uuid("principal_id")?),
        name: row.text("name")?,
        credential: row.json("credential")?,
        counter: row.int("counter")?,
        backup_eligible: row.flag("backup_eligible")?,
        backed_up: row.flag("backed_up")?,
        created_at: row.time("created_at")?,
        last_used_at: row.opt_time("last_used_at")?,
    })
}

/// A row of `security_keys`.
pub fn security_key(row: &impl Columns) -> Result<SecurityKeyRecord> {
    Ok(SecurityKeyRecord {
        id: row.uuid("id")?,
        principal_id: PrincipalId(row.uuid("principal_id")?),
        name: row.text("name")?,
        credential: row.json("credential")?,
        counter: row.int("counter")?,
        created_at: row.time("created_at")?,
        last_used_at: row.opt_time("last_used_at")?,
    })
}

/// A row of `webauthn_ceremonies`.
pub fn ceremony(row: &impl Columns) -> Result<Ceremony> {
    Ok(Ceremony {
        id_hash: row.bytes("id_hash")?,
        purpose: row.text("purpose")?,
        principal_id: row.opt_uuid("principal_id")?.map(PrincipalId),
        state: row.json("state")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
    })
}

/// A row of `users` (the identity domain).
pub fn profile(row: &impl Columns) -> Result<Profile> {
    Ok(Profile {
        id: PrincipalId(row.uuid("id")?),
        display_name: row.opt_text("display_name")?,
        avatar_url: row.opt_text("avatar_url")?,
        bio: row.opt_text("bio")?,
        locale: row.opt_text("locale")?,
        status: row.text("status")?,
        metadata: row.json("metadata")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

/// A login method's type, identifier and owner; `None` for a type this build
/// does not know.
pub fn login_owner(row: &impl Columns) -> Result<Option<(LoginType, String, PrincipalId)>> {
    let Some(login_type) = LoginType::parse(&row.text("login_type")?) else {
        return Ok(None);
    };
    Ok(Some((
        login_type,
        row.text("identifier")?,
        PrincipalId(row.uuid("principal_id")?),
    )))
}

/// A delivery leased to a relay (`deliveries` joined with its `outbox` row).
pub fn delivery(row: &impl Columns) -> Result<Delivery> {
    Ok(Delivery {
        event_id: row.uuid("event_id")?,
        sink: row.text("sink")?,
        topic: row.text("topic")?,
        payload: row.json("payload")?,
        principal: row.text("principal_id")?,
        aggseq: row.int("aggseq")?,
        attempts: row.int("attempts")?,
    })
}

/// A delivery as listed (`deliveries` joined with its event's topic).
pub fn delivery_row(row: &impl Columns) -> Result<DeliveryRow> {
    let status = row.text("status")?;
    Ok(DeliveryRow {
        event_id: row.uuid("event_id")?,
        sink: row.text("sink")?,
        topic: row.text("topic")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| decode_error("delivery status", &status))?,
        attempts: row.int("attempts")?,
        next_attempt_at: row.time("next_attempt_at")?,
        last_error: row.opt_text("last_error")?,
    })
}

/// A row of `webhook_endpoints`.
pub fn webhook_endpoint(row: &impl Columns) -> Result<StoredEndpoint> {
    Ok(StoredEndpoint {
        name: row.text("name")?,
        url: row.text("url")?,
        topics: serde_json::from_value(row.json("topics")?)
            .map_err(|e| sqlx::Error::Decode(e.into()))?,
        secret_sealed: row.bytes("secret_sealed")?,
        secret_key_id: row.text("secret_key_id")?,
        previous: match (
            row.opt_bytes("previous_secret_sealed")?,
            row.opt_text("previous_secret_key_id")?,
            row.opt_time("previous_until")?,
        ) {
            (Some(sealed), Some(key_id), Some(until)) => Some(PreviousSecret {
                sealed,
                key_id,
                until,
            }),
            _ => None,
        },
        from_config: row.flag("from_config")?,
        disabled_at: row.opt_time("disabled_at")?,
        disabled_reason: row.opt_text("disabled_reason")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

fn sealed(blob: Option<Vec<u8>>, key_id: Option<String>) -> Option<Sealed> {
    Some(Sealed {
        blob: blob?,
        key_id: key_id?,
    })
}

/// A row of `federation_flows`.
pub fn federation_flow(row: &impl Columns) -> Result<FederationFlow> {
    Ok(FederationFlow {
        id: row.uuid("id")?,
        connection: row.text("connection")?,
        state_hash: row.bytes("state_hash")?,
        intent: row.text("intent")?,
        principal_id: row.opt_uuid("principal_id")?.map(PrincipalId),
        nonce: row.text("nonce")?,
        pkce_verifier: Sealed {
            blob: row.bytes("pkce_verifier_sealed")?,
            key_id: row.text("pkce_key_id")?,
        },
        app_challenge: row.text("app_challenge")?,
        return_to: row.text("return_to")?,
        login_code_hash: row.opt_bytes("login_code_hash")?,
        login_code_expires_at: row.opt_time("login_code_expires_at")?,
        result: sealed(
            row.opt_bytes("result_sealed")?,
            row.opt_text("result_key_id")?,
        ),
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
        consumed_at: row.opt_time("consumed_at")?,
        exchanged_at: row.opt_time("exchanged_at")?,
    })
}

/// A row of `federation_connections`.
pub fn stored_connection(row: &impl Columns) -> Result<StoredConnection> {
    Ok(StoredConnection {
        name: row.text("name")?,
        settings: row.json("settings")?,
        secret: sealed(
            row.opt_bytes("secret_sealed")?,
            row.opt_text("secret_key_id")?,
        ),
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}
