//! Persistence traits of the credentials domain. Writes take the caller's
//! transaction; reads use the pool.

use crate::keys::SigningKeyRecord;
use crate::seal::Sealed;
use crate::{
    AuditEntry, Ceremony, CodePurpose, CredentialSummary, LoginAttempt, LoginMethod, LoginType,
    MfaChallenge, MfaSummary, PasskeyRecord, Principal, RefreshToken, SecurityKeyRecord, Session,
    TotpFactor, VerificationCode,
};
use async_trait::async_trait;
use sesame_core::{PrincipalId, SessionId, StoreError, Tx};
use time::OffsetDateTime;
use uuid::Uuid;

/// Name of the unique index on `(login_type, identifier)`; a conflict on it means
/// the identifier is taken.
pub const LOGIN_IDENTIFIER_UNIQUE: &str = "login_methods_type_identifier";

/// Stores principals.
#[async_trait]
pub trait PrincipalStore: Send + Sync {
    /// Inserts a principal.
    async fn insert_principal(
        &self,
        tx: &mut dyn Tx,
        principal: &Principal,
    ) -> Result<(), StoreError>;
    /// Reads a principal.
    async fn get_principal(&self, id: PrincipalId) -> Result<Principal, StoreError>;
    /// Principals not erased, in id order (creation order: ids are UUIDv7)
    /// after `after`, at most `limit`, of `kind` and with `active` when given.
    async fn list_principals(
        &self,
        kind: Option<&str>,
        active: Option<bool>,
        after: Option<PrincipalId>,
        limit: i64,
    ) -> Result<Vec<Principal>, StoreError>;
    /// Suspends (`active` false) or reactivates a principal; false when it
    /// already was so (or does not exist).
    async fn set_principal_active(
        &self,
        tx: &mut dyn Tx,
        id: PrincipalId,
        active: bool,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Reads a principal's login methods and password state in one statement
    /// (one round trip on a networked database); `NotFound` when there is no
    /// such principal.
    async fn credential_summary(&self, id: PrincipalId) -> Result<CredentialSummary, StoreError>;
    /// Records a successful sign-in: clears the failure count and any lock.
    /// With `claimed` (the attempt number its claim returned), only while no
    /// other attempt reached the principal since: false, and nothing written,
    /// otherwise.
    async fn record_sign_in(
        &self,
        tx: &mut dyn Tx,
        id: PrincipalId,
        claimed: Option<i64>,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Records a sign-in without a claimed attempt: clears the failure count
    /// and any lock. Nobody reads its outcome (the session the transaction
    /// writes next fails if the principal is gone), so the backend may send
    /// it with the transaction's next statement.
    async fn record_sign_in_later(
        &self,
        tx: &mut dyn Tx,
        id: PrincipalId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Gives back a claimed attempt whose password was right without signing
    /// in (a password change): clears the count and any lock while no other
    /// attempt reached the principal since the claim; false otherwise.
    /// Commits on its own.
    async fn release_sign_in_claim(
        &self,
        id: PrincipalId,
        claimed: i64,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Gives back one claimed attempt whose first factor was right while a
    /// second is still to come: the count goes down by one (not to zero, so
    /// that guesses at the second factor keep adding up across sign-ins) and
    /// the lock goes if this claim set it, while no other attempt reached the
    /// principal since the claim; false otherwise.
    async fn give_back_sign_in_claim(
        &self,
        tx: &mut dyn Tx,
        id: PrincipalId,
        claimed: i64,
        set_lock: bool,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Claims a sign-in attempt before its password is verified: if the
    /// principal still has the failure count `seen_failures` and the lock
    /// `seen_lock` that were read, counts the attempt and sets `lock` (when
    /// given) in one statement, and returns the attempt's number; `None` when
    /// another attempt changed them first. Commits on its own: a claim counts
    /// whatever becomes of the attempt.
    async fn claim_sign_in_attempt(
        &self,
        id: PrincipalId,
        seen_failures: i64,
        seen_lock: Option<OffsetDateTime>,
        lock: Option<OffsetDateTime>,
        at: OffsetDateTime,
    ) -> Result<Option<i64>, StoreError>;
    /// Notes an attempt refused by the lock, in the caller's transaction, so
    /// that a right password being verified meanwhile does not count.
    async fn note_refused_attempt(
        &self,
        tx: &mut dyn Tx,
        id: PrincipalId,
    ) -> Result<(), StoreError>;
}

/// Records sign-in attempts.
#[async_trait]
pub trait LoginAttemptStore: Send + Sync {
    /// Appends an attempt in the caller's transaction.
    async fn record_attempt(
        &self,
        tx: &mut dyn Tx,
        attempt: &LoginAttempt,
    ) -> Result<(), StoreError>;
}

/// Stores login methods.
#[async_trait]
pub trait LoginMethodStore: Send + Sync {
    /// Inserts a login method; `Conflict { constraint: LOGIN_IDENTIFIER_UNIQUE }`
    /// when the identifier is taken.
    async fn insert_login_method(
        &self,
        tx: &mut dyn Tx,
        method: &LoginMethod,
    ) -> Result<(), StoreError>;
    /// Finds the login method for an identifier.
    async fn find_login_method(
        &self,
        login_type: LoginType,
        identifier: &str,
    ) -> Result<Option<LoginMethod>, StoreError>;
    /// Every login method of a principal, oldest first.
    async fn list_login_methods(
        &self,
        principal: PrincipalId,
    ) -> Result<Vec<LoginMethod>, StoreError>;
    /// Every login method of a principal, read inside the caller's transaction
    /// and locked against concurrent changes until it ends.
    async fn list_login_methods_for_update(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
    ) -> Result<Vec<LoginMethod>, StoreError>;
    /// Marks a login method verified.
    async fn mark_login_verified(
        &self,
        tx: &mut dyn Tx,
        id: Uuid,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Deletes a login method of `principal`; false when it has no such method.
    async fn delete_login_method(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
        id: Uuid,
    ) -> Result<bool, StoreError>;
    /// Marks a login method as just used.
    async fn touch_login_method(
        &self,
        tx: &mut dyn Tx,
        id: Uuid,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
}

/// Stores password hashes (0..1 per principal).
#[async_trait]
pub trait PasswordStore: Send + Sync {
    /// Sets (or replaces) the password hash.
    async fn set_password(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
        phc: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Replaces the hash `old` by `new` (the same password, re-hashed) in the
    /// password and its history; false when the password changed meanwhile.
    async fn upgrade_hash(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
        old: &str,
        new: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Removes the password (its history stays, for the reuse rule) and notes
    /// when, for the owner to see; false when there was none.
    async fn remove_password(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// The password hash, if the principal has one.
    async fn get_password(&self, principal: PrincipalId) -> Result<Option<String>, StoreError>;
    /// Forgets all but the `keep` most recent password hashes of the history.
    async fn prune_password_history(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
        keep: i64,
    ) -> Result<(), StoreError>;
    /// The `limit` most recent password hashes, newest first (the current one included).
    async fn password_history(
        &self,
        principal: PrincipalId,
        limit: i64,
    ) -> Result<Vec<String>, StoreError>;
}

/// Stores sessions and their refresh tokens.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Inserts a session.
    async fn insert_session(&self, tx: &mut dyn Tx, session: &Session) -> Result<(), StoreError>;
    /// Reads a session.
    async fn get_session(&self, id: SessionId) -> Result<Session, StoreError>;
    /// Sessions of a principal that are active at `now`, newest first, with
    /// `last_seen_at` taken from the newest refresh.
    async fn list_active_sessions(
        &self,
        principal: PrincipalId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError>;
    /// Revokes every active session of a principal except `keep`; returns the
    /// ids it revoked.
    async fn revoke_sessions_of(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
        keep: Option<SessionId>,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<Vec<SessionId>, StoreError>;
    /// Notes that an active session proved itself again at `at`; false when
    /// it is revoked or gone. Commits on its own.
    async fn mark_session_proven(
        &self,
        id: SessionId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Raises an active session to `aal` with `amr`, proven at `at` (a second
    /// factor on the session in use); false when it is revoked or gone.
    async fn upgrade_session(
        &self,
        tx: &mut dyn Tx,
        id: SessionId,
        aal: &str,
        amr: &[String],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Revokes the oldest active sessions of a principal beyond the newest
    /// `keep`, in the caller's transaction; returns the ids it revoked.
    async fn revoke_sessions_beyond(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
        keep: i64,
        at: OffsetDateTime,
    ) -> Result<Vec<SessionId>, StoreError>;
    /// Revokes a session; false if it was already revoked.
    async fn revoke_session(
        &self,
        tx: &mut dyn Tx,
        id: SessionId,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Inserts a refresh token.
    async fn insert_refresh_token(
        &self,
        tx: &mut dyn Tx,
        token: &RefreshToken,
    ) -> Result<(), StoreError>;
    /// Finds a refresh token by its hash, with its session, in one read.
    async fn find_refresh_token(
        &self,
        hash: &[u8],
    ) -> Result<Option<(RefreshToken, Session)>, StoreError>;
    /// The token that replaced `parent`, if any.
    async fn find_successor(&self, parent: Uuid) -> Result<Option<RefreshToken>, StoreError>;
    /// Atomically marks the refresh token `used` as used and stores `next` in its
    /// place, in a transaction of its own; false (and nothing written) when `used`
    /// was already used, which is a reuse.
    async fn rotate_refresh_token(
        &self,
        used: Uuid,
        next: &RefreshToken,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

/// Stores verification codes: a few live flows per purpose and login.
#[async_trait]
pub trait VerificationCodeStore: Send + Sync {
    /// Stores a new code (a flow of its own), keeping only the newest
    /// `keep` codes of its purpose, login and subject. Commits on its own.
    async fn insert_code(&self, code: &VerificationCode, keep: i64) -> Result<(), StoreError>;
    /// The newest code for a purpose, login and subject, if any.
    async fn find_code(
        &self,
        purpose: CodePurpose,
        login_type: LoginType,
        identifier: &str,
        subject: &str,
    ) -> Result<Option<VerificationCode>, StoreError>;
    /// Claims one of a code's tries before its guess is looked at: in one
    /// statement, counts a try on the live code and returns it as it is after
    /// the count; `None` when there is no such code, it was used or its tries
    /// are gone. With `flow`, the code of that flow and its own tries; without,
    /// the newest code and the tries of guesses that name no flow. However many
    /// guesses race, at most `max_attempts` of each kind are claimed. Commits
    /// on its own: a try is spent whatever the guess.
    async fn claim_code_try(
        &self,
        purpose: CodePurpose,
        login_type: LoginType,
        identifier: &str,
        subject: &str,
        flow: Option<&str>,
        max_attempts: i64,
    ) -> Result<Option<VerificationCode>, StoreError>;
    /// Marks a code used in the caller's transaction, unless it already was or
    /// more tries were claimed than `max_attempts`; false then. Every other
    /// live code of its purpose, login and subject ends with it.
    async fn consume_code(
        &self,
        tx: &mut dyn Tx,
        id: Uuid,
        max_attempts: i64,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

/// What a sweep removes: everything that ended before these instants.
#[derive(Debug, Clone, Copy)]
pub struct SweepBefore {
    /// Codes that expired before this.
    pub expired_codes: OffsetDateTime,
    /// Refresh tokens used before this (past the reuse horizon).
    pub used_refresh_tokens: OffsetDateTime,
    /// Sessions revoked or expired before this, with their tokens.
    pub ended_sessions: OffsetDateTime,
    /// Sign-in attempts made before this.
    pub login_attempts: OffsetDateTime,
}

/// Rows one sweep removed, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Verification codes.
    pub codes: u64,
    /// Refresh tokens.
    pub refresh_tokens: u64,
    /// Sessions.
    pub sessions: u64,
    /// Sign-in attempts.
    pub login_attempts: u64,
    /// Ended cooldowns and failure counters.
    pub counters: u64,
    /// Second-factor challenges and WebAuthn ceremonies.
    pub mfa_challenges: u64,
    /// Events every sink has had (and their deliveries).
    pub events: u64,
    /// Federation flows past their expiry.
    pub federation_flows: u64,
}

/// Deletes what has outlived its use. Each statement stands alone, so that
/// sweepers on several instances may run at once.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// One sweep.
    async fn sweep(&self, before: SweepBefore) -> Result<Swept, StoreError>;
}

/// Stores signing keys.
#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Inserts a key.
    async fn insert_signing_key(
        &self,
        tx: &mut dyn Tx,
        key: &SigningKeyRecord,
    ) -> Result<(), StoreError>;
    /// Sets when a key stops being published (and verifying).
    async fn retire_signing_key(
        &self,
        tx: &mut dyn Tx,
        kid: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Replaces a key's sealed private half (after a master-key rotation).
    async fn reseal_signing_key(
        &self,
        tx: &mut dyn Tx,
        kid: &str,
        sealed: &Sealed,
    ) -> Result<(), StoreError>;
    /// Every key, oldest first.
    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
}

/// Second factors: the TOTP factor, backup codes and sign-in challenges.
#[async_trait]
pub trait MfaStore: Send + Sync {
    /// Stores a pending TOTP factor, replacing a pending one; false, and
    /// nothing written, when a confirmed one exists. Commits on its own.
    async fn put_pending_totp(&self, factor: &TotpFactor) -> Result<bool, StoreError>;
    /// The principal's TOTP factor, pending or confirmed.
    async fn get_totp(&self, principal: PrincipalId) -> Result<Option<TotpFactor>, StoreError>;
    /// Confirms the pending factor `id` with the time step its first code
    /// matched; false when it is no longer the pending one.
    async fn confirm_totp(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
        id: Uuid,
        step: i64,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Accepts `step` on the confirmed factor by compare-and-set: true only if
    /// no step as late was accepted before, so a code works once.
    async fn accept_totp_step(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
        step: i64,
    ) -> Result<bool, StoreError>;
    /// Removes the TOTP factor; false when there was none.
    async fn delete_totp(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
    ) -> Result<bool, StoreError>;
    /// Every TOTP factor's sealed seed (for a master-key rotation).
    async fn list_totp_seals(&self) -> Result<Vec<(PrincipalId, Sealed)>, StoreError>;
    /// Replaces a factor's sealed seed, if it is still sealed by `old_key_id`.
    async fn reseal_totp(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
        old_key_id: &str,
        sealed: &Sealed,
    ) -> Result<(), StoreError>;
    /// Replaces all of a principal's backup codes by `hashes`.
    async fn replace_backup_codes(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
        hashes: &[Vec<u8>],
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Uses the backup code with this hash: true once, false ever after.
    async fn use_backup_code(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
        hash: &[u8],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// The principal's second factors in force.
    async fn mfa_summary(&self, principal: PrincipalId) -> Result<MfaSummary, StoreError>;
    /// Stores a challenge in the caller's transaction.
    async fn insert_mfa_challenge(
        &self,
        tx: &mut dyn Tx,
        challenge: &MfaChallenge,
    ) -> Result<(), StoreError>;
    /// A live, unused challenge, without claiming a try (to offer its
    /// factors).
    async fn find_mfa_challenge(
        &self,
        id_hash: &[u8],
        now: OffsetDateTime,
    ) -> Result<Option<MfaChallenge>, StoreError>;
    /// Claims a try on a live challenge before the factor is evaluated:
    /// counts it and returns the challenge in one statement, only while it is
    /// unused, unexpired and below `max_attempts`. Commits on its own.
    async fn claim_mfa_try(
        &self,
        id_hash: &[u8],
        max_attempts: i64,
        now: OffsetDateTime,
    ) -> Result<Option<MfaChallenge>, StoreError>;
    /// Marks a challenge used; false when another try used it first.
    async fn consume_mfa_challenge(
        &self,
        tx: &mut dyn Tx,
        id_hash: &[u8],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

/// WebAuthn credentials and ceremonies.
#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// Stores a passkey in the caller's transaction (its login method first).
    async fn insert_passkey(
        &self,
        tx: &mut dyn Tx,
        passkey: &PasskeyRecord,
    ) -> Result<(), StoreError>;
    /// A principal's passkeys, oldest first.
    async fn list_passkeys(&self, principal: PrincipalId)
    -> Result<Vec<PasskeyRecord>, StoreError>;
    /// The passkey of a login method.
    async fn get_passkey(&self, login_id: Uuid) -> Result<Option<PasskeyRecord>, StoreError>;
    /// Renames one of the principal's passkeys; false when it has none by that id.
    async fn rename_passkey(
        &self,
        principal: PrincipalId,
        login_id: Uuid,
        name: &str,
    ) -> Result<bool, StoreError>;
    /// Records a use by compare-and-set on the counter: only while it still
    /// has `seen_counter`; false when another use got there first.
    async fn record_passkey_use(
        &self,
        tx: &mut dyn Tx,
        login_id: Uuid,
        seen_counter: i64,
        used: &PasskeyRecord,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Stores a security key in the caller's transaction.
    async fn insert_security_key(
        &self,
        tx: &mut dyn Tx,
        key: &SecurityKeyRecord,
    ) -> Result<(), StoreError>;
    /// A principal's security keys, oldest first.
    async fn list_security_keys(
        &self,
        principal: PrincipalId,
    ) -> Result<Vec<SecurityKeyRecord>, StoreError>;
    /// Records a use by compare-and-set on the counter, as for passkeys.
    async fn record_security_key_use(
        &self,
        tx: &mut dyn Tx,
        id: Uuid,
        seen_counter: i64,
        used: &SecurityKeyRecord,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Removes one of the principal's security keys; false when it has none
    /// by that id.
    async fn delete_security_key(
        &self,
        tx: &mut dyn Tx,
        principal: PrincipalId,
        id: Uuid,
    ) -> Result<bool, StoreError>;
    /// Stores a ceremony. Commits on its own.
    async fn insert_ceremony(&self, ceremony: &Ceremony) -> Result<(), StoreError>;
    /// Takes a live ceremony of `purpose` (and of `principal`, for one begun
    /// signed in) out of the store: each is taken once. Commits on its own.
    async fn take_ceremony(
        &self,
        id_hash: &[u8],
        purpose: &str,
        principal: Option<PrincipalId>,
        now: OffsetDateTime,
    ) -> Result<Option<Ceremony>, StoreError>;
}

/// Secrets of the server itself (keys that outlive master-key rotations),
/// sealed under the master key.
#[async_trait]
pub trait ServerSecretStore: Send + Sync {
    /// Stores `sealed` under `name` unless one is there; returns the one that
    /// is there now. Commits on its own, so instances starting together agree.
    async fn ensure_server_secret(
        &self,
        name: &str,
        sealed: &Sealed,
        at: OffsetDateTime,
    ) -> Result<Sealed, StoreError>;
    /// Every secret, by name.
    async fn list_server_secrets(&self) -> Result<Vec<(String, Sealed)>, StoreError>;
    /// Replaces a secret's sealed form (after a master-key rotation).
    async fn reseal_server_secret(
        &self,
        tx: &mut dyn Tx,
        name: &str,
        sealed: &Sealed,
    ) -> Result<(), StoreError>;
}

/// Appends to the audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an entry in the caller's transaction.
    async fn append_audit(&self, tx: &mut dyn Tx, entry: &AuditEntry) -> Result<(), StoreError>;
    /// Entries newest first (ids are UUIDv7) before `before`, at most
    /// `limit`, matching every filter given.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError>;
}

/// Which audit entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only about this principal.
    pub principal: Option<PrincipalId>,
    /// Only this event (`user.signed_in`, …).
    pub event: Option<String>,
    /// At or after this instant.
    pub from: Option<OffsetDateTime>,
    /// Before this instant.
    pub to: Option<OffsetDateTime>,
}

/// An account arriving from another system, ready to store.
#[derive(Debug, Clone)]
pub struct ImportedAccount {
    /// The principal.
    pub principal: Principal,
    /// Its login methods.
    pub logins: Vec<LoginMethod>,
    /// Its password hash, as the other system stored it.
    pub password_hash: Option<String>,
}

/// Bulk paths for `sesame import`.
#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Which of `ids` exist already.
    async fn existing_principals(
        &self,
        ids: &[PrincipalId],
    ) -> Result<std::collections::HashSet<PrincipalId>, StoreError>;
    /// Who owns each of `logins` that is taken.
    async fn login_owners(
        &self,
        logins: &[(LoginType, String)],
    ) -> Result<Vec<(LoginType, String, PrincipalId)>, StoreError>;
    /// Inserts principals, login methods and passwords (with their history)
    /// in multi-row statements.
    async fn insert_accounts(
        &self,
        tx: &mut dyn Tx,
        accounts: &[ImportedAccount],
    ) -> Result<(), StoreError>;
}
