//! Records of the credentials domain.

use crate::LoginType;
use sesame_core::{PrincipalId, SessionId};
use time::OffsetDateTime;
use uuid::Uuid;

/// Anything that authenticates, with its account-level security state.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// Shared with the profile.
    pub id: PrincipalId,
    /// `user` by default.
    pub kind: String,
    /// False when suspended.
    pub is_active: bool,
    /// Consecutive failed sign-ins.
    pub failed_attempts: i64,
    /// Locked until this instant.
    pub locked_until: Option<OffsetDateTime>,
    /// Last successful sign-in.
    pub last_login_at: Option<OffsetDateTime>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
    /// When a password set before a login was first proven was removed.
    pub password_removed_at: Option<OffsetDateTime>,
    /// When the principal was erased; the row stays as a tombstone.
    pub deleted_at: Option<OffsetDateTime>,
}

impl Principal {
    /// A new active principal.
    pub fn new(id: PrincipalId, kind: &str, now: OffsetDateTime) -> Self {
        Self {
            id,
            kind: kind.to_owned(),
            is_active: true,
            failed_attempts: 0,
            locked_until: None,
            last_login_at: None,
            created_at: now,
            updated_at: now,
            password_removed_at: None,
            deleted_at: None,
        }
    }
}

/// What a principal has to prove who they are, read at once for the account
/// view: its login methods, oldest first, and its password state.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialSummary {
    /// Every login method, oldest first.
    pub logins: Vec<LoginMethod>,
    /// Whether a password is set.
    pub has_password: bool,
    /// When a password was last removed by a reclaim.
    pub password_removed_at: Option<OffsetDateTime>,
    /// Second factors.
    pub mfa: MfaSummary,
}

impl CredentialSummary {
    /// The name people know the account by, as authenticators show it: its
    /// oldest login that is typed (not a passkey's credential id), or else the
    /// principal id.
    pub fn account_name(&self, principal: PrincipalId) -> String {
        self.logins
            .iter()
            .find(|m| m.login_type.is_typed())
            .map(|m| m.identifier.clone())
            .unwrap_or_else(|| principal.to_string())
    }
}

/// The second factors a principal has in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MfaSummary {
    /// A confirmed TOTP factor.
    pub totp: bool,
    /// Backup codes not used yet.
    pub backup_codes_left: i64,
    /// Security keys (WebAuthn credentials kept as a second factor).
    pub security_keys: i64,
}

impl MfaSummary {
    /// Whether sign-in needs a second factor.
    pub fn enrolled(&self) -> bool {
        self.totp || self.security_keys > 0
    }
}

/// A principal's TOTP factor: pending until a first code confirms it.
#[derive(Debug, Clone, PartialEq)]
pub struct TotpFactor {
    /// Owner.
    pub principal_id: PrincipalId,
    /// This enrolment: a new one replaces a pending one, and a confirmation
    /// names the one it confirms.
    pub id: Uuid,
    /// The seed, sealed under the master key (context: the principal id).
    pub secret: crate::Sealed,
    /// When a first code confirmed it; `None` while pending.
    pub confirmed_at: Option<OffsetDateTime>,
    /// The last time step accepted (confirmation included).
    pub last_step: Option<i64>,
    /// When it was made.
    pub created_at: OffsetDateTime,
}

/// A first factor proven, waiting for the second: what finishing needs.
#[derive(Debug, Clone, PartialEq)]
pub struct MfaChallenge {
    /// SHA-256 of the challenge id handed out.
    pub id_hash: Vec<u8>,
    /// Who is signing in.
    pub principal_id: PrincipalId,
    /// The login method of the first factor.
    pub login_id: Uuid,
    /// Its type.
    pub login_type: LoginType,
    /// Its identifier.
    pub identifier: String,
    /// Methods proven so far (`pwd`, `otp`, …).
    pub amr: Vec<String>,
    /// Tries claimed.
    pub attempts: i64,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When it stops being accepted.
    pub expires_at: OffsetDateTime,
    /// When a right second factor used it.
    pub consumed_at: Option<OffsetDateTime>,
}

/// One way to sign in: a `(login_type, identifier)` row owned by a principal.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginMethod {
    /// Row id.
    pub id: Uuid,
    /// Owner.
    pub principal_id: PrincipalId,
    /// Type.
    pub login_type: LoginType,
    /// Normalised identifier, unique per type.
    pub identifier: String,
    /// When the identifier was proven to belong to the principal.
    pub verified_at: Option<OffsetDateTime>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last successful sign-in with it.
    pub last_used_at: Option<OffsetDateTime>,
}

/// A signed-in session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Session id (the `sid` claim).
    pub id: SessionId,
    /// Who is signed in.
    pub principal_id: PrincipalId,
    /// The principal's kind, copied for token issuance.
    pub principal_kind: String,
    /// `aal1` or `aal2`.
    pub aal: String,
    /// Methods used to authenticate (`pwd`, `otp`, …).
    pub amr: Vec<String>,
    /// Client IP at sign-in.
    pub ip: Option<String>,
    /// Client user agent at sign-in.
    pub user_agent: Option<String>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last refresh.
    pub last_seen_at: OffsetDateTime,
    /// Absolute end of the session.
    pub expires_at: OffsetDateTime,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// Why it was revoked.
    pub revoke_reason: Option<String>,
    /// When the session last proved itself: at sign-in, or by
    /// re-authentication.
    pub proven_at: OffsetDateTime,
}

impl Session {
    /// Usable at `now`: not revoked and not expired.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// A refresh token as stored (hash only).
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshToken {
    /// Row id.
    pub id: Uuid,
    /// The session it refreshes.
    pub session_id: SessionId,
    /// SHA-256 of the token.
    pub token_hash: Vec<u8>,
    /// The token it replaced.
    pub parent_id: Option<Uuid>,
    /// When it was exchanged; a second use is a reuse.
    pub used_at: Option<OffsetDateTime>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// End of validity.
    pub expires_at: OffsetDateTime,
    /// The token itself, sealed, when it replaced another: a retry of that
    /// refresh within the grace window gets it again.
    pub secret_sealed: Option<crate::Sealed>,
}

/// One row of the audit log. `data` never holds a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Row id.
    pub id: Uuid,
    /// Whose security changed, when known.
    pub principal_id: Option<PrincipalId>,
    /// Event name, e.g. `user.signed_up`.
    pub event: String,
    /// Client IP.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Details.
    pub data: serde_json::Value,
    /// When.
    pub at: OffsetDateTime,
}

/// One sign-in attempt, successful or not.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginAttempt {
    /// Row id.
    pub id: Uuid,
    /// The login type given.
    pub login_type: LoginType,
    /// The identifier given, normalised.
    pub identifier: String,
    /// The principal, when the identifier belongs to one.
    pub principal_id: Option<PrincipalId>,
    /// Client IP.
    pub ip: Option<String>,
    /// Whether it signed in.
    pub success: bool,
    /// Why it failed: `invalid_credentials`, `account_locked`, `rate_limited`, …
    pub reason: Option<String>,
    /// When.
    pub at: OffsetDateTime,
}

/// A WebAuthn credential of a principal: its login method (type `passkey`,
/// identifier = the credential id) and what verifying it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct PasskeyRecord {
    /// The login method's id.
    pub login_id: Uuid,
    /// Owner.
    pub principal_id: PrincipalId,
    /// What the owner calls it.
    pub name: String,
    /// The credential as the WebAuthn library keeps it (public key, counter,
    /// flags), as JSON.
    pub credential: serde_json::Value,
    /// The last signature counter accepted (0 for credentials that do not
    /// count, as synced passkeys).
    pub counter: i64,
    /// Whether it may be synced to other devices.
    pub backup_eligible: bool,
    /// Whether it was backed up (synced) when last seen.
    pub backed_up: bool,
    /// When it was registered.
    pub created_at: OffsetDateTime,
    /// When it last signed in.
    pub last_used_at: Option<OffsetDateTime>,
}

/// A WebAuthn ceremony begun and not yet finished: its state, server side,
/// used once.
#[derive(Debug, Clone, PartialEq)]
pub struct Ceremony {
    /// SHA-256 of the ceremony id handed out.
    pub id_hash: Vec<u8>,
    /// `register` or `sign_in`.
    pub purpose: String,
    /// The principal registering; `None` for a sign-in.
    pub principal_id: Option<PrincipalId>,
    /// The WebAuthn library's state, as JSON.
    pub state: serde_json::Value,
    /// When it began.
    pub created_at: OffsetDateTime,
    /// When it stops being accepted.
    pub expires_at: OffsetDateTime,
}

/// A security key: a WebAuthn credential kept as a second factor (not a way
/// in on its own, so not a login method).
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityKeyRecord {
    /// Its id.
    pub id: Uuid,
    /// Owner.
    pub principal_id: PrincipalId,
    /// What the owner calls it.
    pub name: String,
    /// The credential as the WebAuthn library keeps it, as JSON.
    pub credential: serde_json::Value,
    /// The last signature counter accepted.
    pub counter: i64,
    /// When it was registered.
    pub created_at: OffsetDateTime,
    /// When it last proved a sign-in.
    pub last_used_at: Option<OffsetDateTime>,
}

/// A named set of `resource:action` permissions. The built-in `admin` role
/// holds every permission whatever its stored list says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Role {
    /// Unique name, as tokens carry it.
    pub name: String,
    /// What holders may do.
    pub permissions: Vec<String>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}
