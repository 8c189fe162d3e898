//! Service API keys: `ses_live_` (or `ses_test_`), a key id of 22 base62
//! characters, a secret of 43 (256 bits) and a CRC-32 of everything before it
//! in 6 base62 characters. The prefix lets secret scanners match a leaked key;
//! `_` keeps a double-click selecting the whole key; the checksum rejects a
//! mistyped key without a lookup. Only the key id and a SHA-256 of the secret
//! are stored: a 256-bit random secret needs no slow hash.

use crate::random_bytes;
use sesame_core::{Error, PrincipalId};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use uuid::Uuid;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const LIVE: &str = "ses_live_";
const TEST: &str = "ses_test_";
const ID_LEN: usize = 22;
const SECRET_LEN: usize = 43;
const CHECK_LEN: usize = 6;
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// A permission a key may carry, and that roles grant: `resource:action`.
pub type Scope = String;

/// A key as stored: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Row id.
    pub id: Uuid,
    /// The public part of the key, between the prefix and the secret.
    pub key_id: String,
    /// SHA-256 of the secret.
    pub secret_hash: Vec<u8>,
    /// A name for people.
    pub name: String,
    /// What the key may do.
    pub scopes: Vec<Scope>,
    /// Who created it, when a principal did (the CLI creates keys with none).
    pub created_by: Option<PrincipalId>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it stops working, if ever.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was last presented and accepted.
    pub last_used_at: Option<OffsetDateTime>,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
}

impl ApiKeyRecord {
    /// Whether the key works at `now`.
    pub fn is_usable(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }

    /// Whether `secret` is this key's secret (in constant time).
    pub fn matches(&self, secret: &str) -> bool {
        hash_secret(secret).ct_eq(&self.secret_hash).into()
    }
}

/// A new key: the full text, shown once, and its parts.
#[derive(Debug)]
pub struct NewApiKey {
    /// `ses_live_…`, to hand to the caller once.
    pub key: String,
    /// The public part, stored and shown in lists.
    pub key_id: String,
    /// SHA-256 of the secret, stored.
    pub secret_hash: Vec<u8>,
}

impl NewApiKey {
    /// Draws a new live key.
    pub fn generate() -> Result<Self, Error> {
        let key_id = random_base62(ID_LEN)?;
        let secret = random_base62(SECRET_LEN)?;
        let body = format!("{LIVE}{key_id}{secret}");
        let key = format!("{body}{}", checksum(&body));
        Ok(Self {
            key,
            key_id,
            secret_hash: hash_secret(&secret),
        })
    }
}

/// A presented key, well formed and with a valid checksum.
#[derive(Debug, PartialEq, Eq)]
pub struct PresentedKey<'a> {
    /// The key id, to look the key up by.
    pub key_id: &'a str,
    /// The secret, to compare with the stored hash.
    pub secret: &'a str,
}

/// Whether `text` has the shape of a Sesame key (its prefix), so that a bearer
/// credential can be told from an access token before it is checked.
pub fn looks_like_api_key(text: &str) -> bool {
    text.starts_with(LIVE) || text.starts_with(TEST)
}

/// Splits a presented key; `None` for a wrong shape or checksum, which needs
/// no lookup to refuse.
pub fn parse_api_key(text: &str) -> Option<PresentedKey<'_>> {
    let rest = text
        .strip_prefix(LIVE)
        .or_else(|| text.strip_prefix(TEST))?;
    if rest.len() != ID_LEN + SECRET_LEN + CHECK_LEN || !rest.bytes().all(|b| ALPHABET.contains(&b))
    {
        return None;
    }
    let (body, check) = text.split_at(text.len() - CHECK_LEN);
    if checksum(body) != check {
        return None;
    }
    Some(PresentedKey {
        key_id: &rest[..ID_LEN],
        secret: &rest[ID_LEN..ID_LEN + SECRET_LEN],
    })
}

/// The stored form of a key's secret.
pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// CRC-32 of `body` in six base62 digits, most significant first.
fn checksum(body: &str) -> String {
    let mut n = u64::from(CRC.checksum(body.as_bytes()));
    let mut digits = [b'0'; CHECK_LEN];
    for d in digits.iter_mut().rev() {
        *d = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8_lossy(&digits).into_owned()
}

/// `len` uniformly random base62 characters (bytes of 248 and above are
/// drawn again, so that no character is likelier than another).
fn random_base62(len: usize) -> Result<String, Error> {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes::<64>()? {
            if b < 248 && out.len() < len {
                out.push(ALPHABET[usize::from(b % 62)] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_parses_back_to_its_parts() {
        let new = NewApiKey::generate().unwrap();
        assert!(new.key.starts_with("ses_live_"));
        assert_eq!(new.key.len(), LIVE.len() + ID_LEN + SECRET_LEN + CHECK_LEN);
        let parsed = parse_api_key(&new.key).unwrap();
        assert_eq!(parsed.key_id, new.key_id);
        assert_eq!(hash_secret(parsed.secret), new.secret_hash);
        assert!(looks_like_api_key(&new.key));
        assert_ne!(
            NewApiKey::generate().unwrap().key_id,
            new.key_id,
            "two keys share an id"
        );
    }

    #[test]
    fn every_single_character_change_fails_the_checksum() {
        let key = NewApiKey::generate().unwrap().key;
        for i in LIVE.len()..key.len() {
            for &c in ALPHABET {
                let mut typo = key.clone().into_bytes();
                if typo[i] == c {
                    continue;
                }
                typo[i] = c;
                let typo = String::from_utf8(typo).unwrap();
                assert_eq!(parse_api_key(&typo), None, "{typo} passed");
            }
        }
    }

    #[test]
    fn wrong_shapes_are_refused() {
        let key = NewApiKey::generate().unwrap().key;
        for bad in [
            "",
            "ses_live_",
            &key[..key.len() - 1],
            &format!("{key}0"),
            &key.replace("ses_live_", "ses_prod_"),
            &key.replacen('_', "-", 2),
            &format!("{}!{}", &key[..20], &key[21..]),
        ] {
            assert_eq!(parse_api_key(bad), None, "{bad:?} passed");
        }
    }

    #[test]
    fn the_checksum_is_crc32_in_base62() {
        // The standard check value: CRC-32("123456789") = 0xCBF43926.
        assert_eq!(CRC.checksum(b"123456789"), 0xCBF4_3926);
        assert_eq!(checksum("123456789"), "3jZRME");
    }

    #[test]
    fn usability_follows_revocation_and_expiry() {
        let now = time::macros::datetime!(2026-06-01 12:00 UTC);
        let mut key = ApiKeyRecord {
            id: Uuid::now_v7(),
            key_id: "k".into(),
            secret_hash: hash_secret("s"),
            name: "n".into(),
            scopes: vec![],
            created_by: None,
            created_at: now,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        };
        assert!(key.is_usable(now) && key.matches("s") && !key.matches("t"));
        key.expires_at = Some(now);
        assert!(!key.is_usable(now));
        key.expires_at = None;
        key.revoked_at = Some(now);
        assert!(!key.is_usable(now));
    }
}
