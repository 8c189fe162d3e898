//! Request bodies and response views of the self-service flows.

use serde::{Deserialize, Serialize};
use sesame_core::{PrincipalId, SessionId};
use sesame_credentials::{LoginInput, LoginMethod, Session};
use sesame_identity::{NewProfile, Profile};
use time::OffsetDateTime;
use uuid::Uuid;

/// `POST /v1/registrations`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The first login method.
    pub login: LoginInput,
    /// The password, when signing up with one.
    pub password: Option<String>,
    /// A verification code, for passwordless sign-up.
    pub code: Option<String>,
    /// The flow the code was sent for.
    pub verification_id: Option<String>,
    /// Initial profile fields.
    pub profile: Option<NewProfile>,
}

/// `POST /v1/sessions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    /// The login to sign in with.
    pub login: LoginInput,
    /// The password.
    pub password: Option<String>,
    /// A verification code, for passwordless sign-in.
    pub code: Option<String>,
    /// The flow the code was sent for.
    pub verification_id: Option<String>,
}

/// `POST /v1/sessions/refresh`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The current refresh token.
    pub refresh_token: String,
}

/// A principal as named in a session object.
#[derive(Debug, Clone, Serialize)]
pub struct PrincipalRef {
    /// Its id.
    pub id: PrincipalId,
    /// Its kind.
    pub kind: String,
}

/// The session object returned by every call that signs someone in.
#[derive(Debug, Clone, Serialize)]
pub struct SessionGrant {
    /// The JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The opaque refresh token; shown once. Absent when a session already
    /// held by the client was raised in place (its refresh token stays).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The session.
    pub session_id: SessionId,
    /// Who is signed in.
    pub principal: PrincipalRef,
}

/// Response of a registration: the session and the account view.
#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    /// The new session.
    #[serde(flatten)]
    pub session: SessionGrant,
    /// The new account.
    pub user: MeView,
}

/// A login method as the owner sees it.
#[derive(Debug, Clone, Serialize)]
pub struct LoginView {
    /// Row id, used to unbind it.
    pub id: Uuid,
    /// Login type.
    #[serde(rename = "type")]
    pub login_type: &'static str,
    /// Normalised identifier.
    pub identifier: String,
    /// When it was verified.
    #[serde(with = "time::serde::rfc3339::option")]
    pub verified_at: Option<OffsetDateTime>,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<LoginMethod> for LoginView {
    fn from(m: LoginMethod) -> Self {
        Self {
            id: m.id,
            login_type: m.login_type.as_str(),
            identifier: m.identifier,
            verified_at: m.verified_at,
            created_at: m.created_at,
        }
    }
}

/// MFA state of the account.
#[derive(Debug, Clone, Serialize)]
pub struct MfaView {
    /// Whether TOTP is enrolled (confirmed).
    pub totp: bool,
    /// Backup codes not used yet.
    pub backup_codes_left: i64,
    /// Security keys enrolled.
    pub security_keys: i64,
}

/// What a first factor earns: a session, or, when a second factor is
/// enrolled, a challenge to finish with it.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum SignedIn {
    /// Signed in.
    Session(SessionGrant),
    /// A second factor is needed (`POST /v1/sessions/mfa`).
    Mfa(MfaChallengeView),
}

/// `200 {"mfa_required": true, "challenge_id", "factors"}`.
#[derive(Debug, Clone, Serialize)]
pub struct MfaChallengeView {
    /// Always true.
    pub mfa_required: bool,
    /// Names the challenge; shown once.
    pub challenge_id: String,
    /// Second factors that can finish it (`totp`, `webauthn`, `backup_code`).
    pub factors: Vec<&'static str>,
    /// Seconds until it expires.
    pub expires_in: i64,
}

/// `POST /v1/sessions/mfa`: a challenge and one second factor, or, with the
/// session's access token and no challenge, a second factor that raises the
/// session itself to `aal2`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaVerify {
    /// The challenge a first factor earned.
    pub challenge_id: Option<String>,
    /// A TOTP code.
    pub code: Option<String>,
    /// A backup code.
    pub backup_code: Option<String>,
    /// A security key's ceremony (`POST /v1/sessions/mfa/webauthn`).
    pub ceremony_id: Option<String>,
    /// The security key's assertion (`navigator.credentials.get()`).
    pub credential: Option<serde_json::Value>,
}

/// `POST /v1/me/mfa/totp`: what an authenticator app needs.
#[derive(Debug, Clone, Serialize)]
pub struct TotpEnrolment {
    /// The seed in base32.
    pub secret: String,
    /// The `otpauth://` URI.
    pub otpauth_uri: String,
    /// The same URI as an SVG QR code.
    pub qr_svg: String,
}

/// A TOTP code (confirming or removing the factor).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    /// The code.
    pub code: String,
}

/// Backup codes, shown once.
#[derive(Debug, Clone, Serialize)]
pub struct BackupCodes {
    /// Ten codes.
    pub backup_codes: Vec<String>,
}

/// `GET /v1/me`.
#[derive(Debug, Clone, Serialize)]
pub struct MeView {
    /// Principal id.
    pub id: PrincipalId,
    /// Principal kind.
    pub kind: String,
    /// The profile; `null` for a credentials-only kind, whose profile lives
    /// in another service under the same id.
    pub profile: Option<Profile>,
    /// Every login method.
    pub logins: Vec<LoginView>,
    /// Whether a password is set.
    pub has_password: bool,
    /// When a password set before a login's first proof was removed (account
    /// pre-hijacking closed): the owner should set one again.
    #[serde(with = "time::serde::rfc3339::option")]
    pub password_removed_at: Option<OffsetDateTime>,
    /// MFA state.
    pub mfa: MfaView,
    /// When the account was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One entry of `GET /v1/me/sessions`.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    /// Session id.
    pub id: SessionId,
    /// Whether it is the caller's own session.
    pub current: bool,
    /// The device, when known.
    pub device: Option<serde_json::Value>,
    /// User agent at sign-in.
    pub user_agent: Option<String>,
    /// Client IP at sign-in.
    pub ip: Option<String>,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last refresh.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// When it ends at the latest.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Assurance level.
    pub aal: String,
}

impl SessionView {
    /// The view of `s` for the caller whose session is `current`.
    pub fn of(s: Session, current: SessionId) -> Self {
        Self {
            id: s.id,
            current: s.id == current,
            device: None,
            user_agent: s.user_agent,
            ip: s.ip,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
            aal: s.aal,
        }
    }
}
