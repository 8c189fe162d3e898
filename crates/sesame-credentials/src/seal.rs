//! Secrets at rest are sealed with XChaCha20-Poly1305 under the master key. The
//! sealed blob records which master key sealed it, so the key can be rotated.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sesame_core::Error;
use sha2::{Digest, Sha256};
use std::fmt;

const NONCE_LEN: usize = 24;

/// The 256-bit key that seals every secret at rest. Never printed.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    cipher: XChaCha20Poly1305,
    bytes: [u8; 32],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

/// A sealed secret: the id of the master key that sealed it, and nonce ‖ ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Id of the master key.
    pub key_id: String,
    /// 24-byte nonce followed by the ciphertext and tag.
    pub blob: Vec<u8>,
}

impl MasterKey {
    /// A master key from 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::digest(bytes);
        let id = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Self {
            id,
            cipher: XChaCha20Poly1305::new(&Key::from(bytes)),
            bytes,
        }
    }

    /// A fresh random master key.
    pub fn generate() -> Result<Self, Error> {
        Ok(Self::from_bytes(crate::random_bytes()?))
    }

    /// Parses the textual form (64 hex digits), as kept in a key file.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let bad = || Error::internal("the master key must be 64 hexadecimal digits");
        if text.len() != 64 || !text.is_ascii() {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self::from_bytes(bytes))
    }

    /// A short public id derived from the key (not secret).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A 256-bit key for one purpose, derived from the master key with HMAC-SHA256.
    pub fn derive(&self, label: &str) -> Result<[u8; 32], Error> {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes)
            .map_err(|_| Error::internal("bad master key"))?;
        mac.update(label.as_bytes());
        Ok(mac.finalize().into_bytes().into())
    }

    /// Seals `plaintext`; `context` is bound to the ciphertext (e.g. the row's key).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Sealed, Error> {
        let nonce_bytes: [u8; NONCE_LEN] = crate::random_bytes()?;
        let nonce = XNonce::from(nonce_bytes);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| Error::internal("sealing failed"))?;
        let mut blob = nonce_bytes.to_vec();
        blob.extend_from_slice(&ciphertext);
        Ok(Sealed {
            key_id: self.id.clone(),
            blob,
        })
    }

    /// Opens a blob sealed by this key with the same `context`.
    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<Vec<u8>, Error> {
        if sealed.key_id != self.id {
            return Err(Error::internal(format!(
                "secret sealed under master key {}, not {}",
                sealed.key_id, self.id
            )));
        }
        let (nonce, ciphertext) = sealed
            .blob
            .split_at_checked(NONCE_LEN)
            .ok_or_else(|| Error::internal("sealed blob too short"))?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| Error::internal("bad nonce"))?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| Error::internal("sealed secret failed authentication"))
    }
}

/// The master key that seals, and earlier ones that may still open what they
/// sealed while a rotation is under way.
#[derive(Clone)]
pub struct MasterKeys {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeys")
            .field("current", &self.current.id())
            .field(
                "previous",
                &self.previous.iter().map(MasterKey::id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl MasterKeys {
    /// `current` seals; `previous` only open.
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        Self { current, previous }
    }

    /// The key that seals.
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// Opens a blob sealed under any of these keys, chosen by the id beside it.
    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<Vec<u8>, Error> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id() == sealed.key_id)
            .ok_or_else(|| {
                Error::internal(format!(
                    "secret sealed under master key {}, which is not configured",
                    sealed.key_id
                ))
            })?
            .open(sealed, context)
    }

    /// Seals under the current key again a blob sealed under any of these keys;
    /// `None` when it already is.
    pub fn reseal(&self, sealed: &Sealed, context: &[u8]) -> Result<Option<Sealed>, Error> {
        if sealed.key_id == self.current.id() {
            return Ok(None);
        }
        let plain = self.open(sealed, context)?;
        self.current.seal(&plain, context).map(Some)
    }
}

impl From<MasterKey> for MasterKeys {
    fn from(current: MasterKey) -> Self {
        Self::new(current, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let key = MasterKey::generate().unwrap();
        let sealed = key.seal(b"signing key seed", b"kid-1").unwrap();
        assert_eq!(sealed.key_id, key.id());
        assert_eq!(key.open(&sealed, b"kid-1").unwrap(), b"signing key seed");
        // Wrong context, flipped bit, other key: all refused.
        assert!(key.open(&sealed, b"kid-2").is_err());
        let mut flipped = sealed.clone();
        let last = flipped.blob.len() - 1;
        flipped.blob[last] ^= 1;
        assert!(key.open(&flipped, b"kid-1").is_err());
        let other = MasterKey::generate().unwrap();
        assert!(other.open(&sealed, b"kid-1").is_err());
    }

    #[test]
    fn derived_keys_depend_on_label_and_master() {
        let a = MasterKey::from_bytes([1; 32]);
        let b = MasterKey::from_bytes([2; 32]);
        assert_eq!(a.derive("codes").unwrap(), a.derive("codes").unwrap());
        assert_ne!(a.derive("codes").unwrap(), a.derive("other").unwrap());
        assert_ne!(a.derive("codes").unwrap(), b.derive("codes").unwrap());
    }

    #[test]
    fn nonces_differ() {
        let key = MasterKey::generate().unwrap();
        let a = key.seal(b"x", b"").unwrap();
        let b = key.seal(b"x", b"").unwrap();
        assert_ne!(a.blob, b.blob);
    }

    #[test]
    fn parses_hex_and_rejects_garbage() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let a = MasterKey::parse(hex).unwrap();
        let b = MasterKey::parse(&format!("  {}\n", hex.to_uppercase())).unwrap();
        assert_eq!(a.id(), b.id());
        assert!(MasterKey::parse("abc").is_err());
        assert!(MasterKey::parse(&"zz".repeat(32)).is_err());
        assert!(!format!("{a:?}").contains("0011"));
    }

    #[test]
    fn a_rotation_keeps_old_secrets_openable_and_reseals_them() {
        let old = MasterKey::generate().unwrap();
        let new = MasterKey::generate().unwrap();
        let sealed = old.seal(b"seed", b"kid").unwrap();
        let keys = MasterKeys::new(new.clone(), vec![old.clone()]);
        assert_eq!(keys.open(&sealed, b"kid").unwrap(), b"seed");
        let resealed = keys.reseal(&sealed, b"kid").unwrap().unwrap();
        assert_eq!(resealed.key_id, new.id());
        assert!(keys.reseal(&resealed, b"kid").unwrap().is_none());
        let only_new = MasterKeys::from(new);
        assert_eq!(only_new.open(&resealed, b"kid").unwrap(), b"seed");
        assert!(only_new.open(&sealed, b"kid").is_err());
        assert!(only_new.open(&resealed, b"other").is_err());
    }
}
