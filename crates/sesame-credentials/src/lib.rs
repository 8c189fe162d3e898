//! The credentials domain: how a principal proves who it is. Login methods and
//! their normalisers, passwords and the hashing pool, sessions, refresh tokens,
//! signing keys and sealed secrets, and the store traits for all of them.

pub mod access_store;
pub mod api_keys;
pub mod codes;
pub mod federation;
pub mod keys;
pub mod login;
pub mod mfa;
pub mod model;
pub mod password;
pub mod seal;
pub mod store;
pub mod tokens;

pub use access_store::{AccessStore, ErasureStore};
pub use api_keys::{ApiKeyRecord, NewApiKey, PresentedKey, looks_like_api_key, parse_api_key};
pub use codes::{CodeBook, CodePurpose, VerificationCode};
pub use federation::{FederationFlow, FederationStore, StoredConnection};
pub use keys::{KeyRing, SigningKeyRecord};
pub use login::{Login, LoginInput, LoginType, NormaliseConfig, UsernameCharset};
pub use model::{
    AuditEntry, Ceremony, CredentialSummary, LoginAttempt, LoginMethod, MfaChallenge, MfaSummary,
    PasskeyRecord, Principal, RefreshToken, Role, SecurityKeyRecord, Session, TotpFactor,
};
pub use password::{Argon2Config, HashingConfig, PasswordHasher};
pub use seal::{MasterKey, MasterKeys, Sealed};
pub use store::{
    AuditFilter, AuditStore, ImportStore, ImportedAccount, LOGIN_IDENTIFIER_UNIQUE,
    LoginAttemptStore, LoginMethodStore, MfaStore, PasskeyStore, PasswordStore, PrincipalStore,
    RetentionStore, ServerSecretStore, SessionStore, SigningKeyStore, SweepBefore, Swept,
    VerificationCodeStore,
};
pub use tokens::{AccessClaims, RefreshSecret, hash_refresh_token};

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], sesame_core::Error> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| sesame_core::Error::internal_from("no randomness", e))?;
    Ok(buf)
}
