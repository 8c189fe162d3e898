//! Access-token claims and opaque refresh tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use sesame_core::Error;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: this Sesame's public URL.
    pub iss: String,
    /// The principal id.
    pub sub: Uuid,
    /// The principal kind (`user`, …).
    pub kind: String,
    /// The session id.
    pub sid: Uuid,
    /// Authentication assurance level: `aal1` or `aal2`.
    pub aal: String,
    /// How the session was proven (RFC 8176 names: `pwd`, `otp`, …).
    #[serde(default)]
    pub amr: Vec<String>,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// This token's own id, for revocation lists and logs.
    #[serde(default)]
    pub jti: Uuid,
    /// The names of the roles the principal held when the token was issued.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The audience, when the deployment names one (`token_audience`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// A new refresh token: the value handed to the client once, and its hash, which
/// is all that is stored.
#[derive(Debug)]
pub struct RefreshSecret {
    /// The opaque token (256 random bits, base64url).
    pub token: String,
    /// SHA-256 of the token.
    pub hash: Vec<u8>,
}

impl RefreshSecret {
    /// Draws a new refresh token from the OS CSPRNG.
    pub fn generate() -> Result<Self, Error> {
        let bytes: [u8; 32] = crate::random_bytes()?;
        let token = B64.encode(bytes);
        let hash = hash_refresh_token(&token);
        Ok(Self { token, hash })
    }
}

/// The stored form of a refresh token.
pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_are_long_random_and_hashed() {
        let a = RefreshSecret::generate().unwrap();
        let b = RefreshSecret::generate().unwrap();
        assert_ne!(a.token, b.token);
        assert_eq!(B64.decode(&a.token).unwrap().len(), 32);
        assert_eq!(a.hash, hash_refresh_token(&a.token));
        assert_eq!(a.hash.len(), 32);
        assert_ne!(a.hash, a.token.as_bytes());
    }
}
