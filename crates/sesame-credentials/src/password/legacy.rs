//! Verifying password hashes made elsewhere: Argon2 with any variant and cost,
//! bcrypt (`$2a$`, `$2b$`, `$2x$`, `$2y$`), scrypt and PBKDF2-SHA256/512 in PHC
//! form (RustCrypto, passlib's adapted base64), Django's `pbkdf2_sha256$` and
//! Werkzeug's `pbkdf2:sha256:`. The key derivations are the RustCrypto crates';
//! only the string formats are read here.

use argon2::password_hash::PasswordVerifier as _;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use subtle::ConstantTimeEq;

/// The families of stored hashes this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Argon2i, Argon2d or Argon2id.
    Argon2,
    /// bcrypt.
    Bcrypt,
    /// scrypt.
    Scrypt,
    /// PBKDF2 with HMAC-SHA256 or HMAC-SHA512.
    Pbkdf2,
}

impl Scheme {
    /// The scheme of a stored hash, from its prefix; `None` for formats that
    /// cannot be verified.
    pub fn of(stored: &str) -> Option<Self> {
        if stored.starts_with("$argon2") {
            Some(Self::Argon2)
        } else if ["$2a$", "$2b$", "$2x$", "$2y$"]
            .iter()
            .any(|p| stored.starts_with(p))
        {
            Some(Self::Bcrypt)
        } else if stored.starts_with("$scrypt$") {
            Some(Self::Scrypt)
        } else if stored.starts_with("$pbkdf2-sha256$")
            || stored.starts_with("$pbkdf2-sha512$")
            || stored.starts_with("pbkdf2_sha256$")
            || stored.starts_with("pbkdf2:sha256:")
        {
            Some(Self::Pbkdf2)
        } else {
            None
        }
    }
}

/// Base64 with or without padding, standard or passlib's adapted alphabet
/// (`.` for `+`).
fn b64(text: &str) -> Option<Vec<u8>> {
    let text = text.replace('.', "+");
    STANDARD_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
        .or_else(|| STANDARD.decode(&text).ok())
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The largest cost a stored hash may ask for: beyond it, a hash is a CPU or
/// memory bomb for whoever verifies it, and is refused on import and never
/// verified.
pub mod ceiling {
    /// Argon2 memory, KiB (1 GiB).
    pub const ARGON2_MEMORY_KIB: u64 = 1 << 20;
    /// Argon2 passes.
    pub const ARGON2_ITERATIONS: u64 = 16;
    /// Argon2 lanes.
    pub const ARGON2_PARALLELISM: u64 = 16;
    /// bcrypt's log2 cost.
    pub const BCRYPT_COST: u32 = 14;
    /// scrypt memory, bytes (1 GiB: 128 · N · r).
    pub const SCRYPT_MEMORY_BYTES: u64 = 1 << 30;
    /// scrypt parallelism.
    pub const SCRYPT_PARALLELISM: u32 = 16;
    /// PBKDF2 rounds.
    pub const PBKDF2_ROUNDS: u32 = 5_000_000;
}

/// Whether a stored hash's cost is within [`ceiling`]; `None` when it is not
/// a hash this module can read.
pub fn cost_within_ceiling(stored: &str) -> Option<bool> {
    Some(match Scheme::of(stored)? {
        Scheme::Argon2 => {
            let parsed = PasswordHash::new(stored).ok()?;
            let get = |name: &str| parsed.params.get_decimal(name).map(u64::from);
            get("m")? <= ceiling::ARGON2_MEMORY_KIB
                && get("t")? <= ceiling::ARGON2_ITERATIONS
                && get("p")? <= ceiling::ARGON2_PARALLELISM
        }
        Scheme::Bcrypt => stored.get(4..6)?.parse::<u32>().ok()? <= ceiling::BCRYPT_COST,
        Scheme::Scrypt => {
            let (log_n, r, p) = scrypt_params(stored)?;
            let memory = 128u64
                .checked_shl(u32::from(log_n))?
                .checked_mul(u64::from(r))?;
            log_n < 64 && memory <= ceiling::SCRYPT_MEMORY_BYTES && p <= ceiling::SCRYPT_PARALLELISM
        }
        Scheme::Pbkdf2 => parse_pbkdf2(stored)?.1 <= ceiling::PBKDF2_ROUNDS,
    })
}

/// Whether `password` matches `stored`; `None` when `stored` is not a hash
/// this module can read, or asks for more than [`ceiling`] allows.
pub fn verify(password: &[u8], stored: &str) -> Option<bool> {
    if !cost_within_ceiling(stored)? {
        return None;
    }
    match Scheme::of(stored)? {
        Scheme::Argon2 => {
            let parsed = PasswordHash::new(stored).ok()?;
            // The variant, version and cost come from the hash itself.
            Some(Argon2::default().verify_password(password, &parsed).is_ok())
        }
        Scheme::Bcrypt => {
            // bcrypt reads 72 bytes at most; other implementations truncate too.
            let password = &password[..password.len().min(72)];
            bcrypt::verify(password, stored).ok()
        }
        Scheme::Scrypt => verify_scrypt(password, stored),
        Scheme::Pbkdf2 => verify_pbkdf2(password, stored),
    }
}

/// `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>`.
fn verify_scrypt(password: &[u8], stored: &str) -> Option<bool> {
    let mut parts = stored.split('$').skip(3);
    let salt = b64(parts.next()?)?;
    let expected = b64(parts.next()?)?;
    let (log_n, r, p) = scrypt_params(stored)?;
    if expected.is_empty() || expected.len() > 1024 {
        return None;
    }
    let params = scrypt::Params::new(log_n, r, p).ok()?;
    let mut out = vec![0u8; expected.len()];
    scrypt::scrypt(password, &salt, &params, &mut out).ok()?;
    Some(same(&out, &expected))
}

/// `ln`, `r` and `p` of an scrypt hash.
fn scrypt_params(stored: &str) -> Option<(u8, u32, u32)> {
    let params = stored.split('$').nth(2)?;
    let (mut log_n, mut r, mut p) = (None, None, None);
    for kv in params.split(',') {
        let (k, v) = kv.split_once('=')?;
        match k {
            "ln" => log_n = v.parse::<u8>().ok(),
            "r" => r = v.parse::<u32>().ok(),
            "p" => p = v.parse::<u32>().ok(),
            _ => return None,
        }
    }
    Some((log_n?, r?, p?))
}

/// Which HMAC a PBKDF2 hash uses.
#[derive(Clone, Copy)]
enum Prf {
    Sha256,
    Sha512,
}

/// PBKDF2 in its four common spellings.
fn verify_pbkdf2(password: &[u8], stored: &str) -> Option<bool> {
    let (prf, rounds, salt, expected) = parse_pbkdf2(stored)?;
    if rounds == 0 || expected.is_empty() || expected.len() > 1024 {
        return None;
    }
    let mut out = vec![0u8; expected.len()];
    match prf {
        Prf::Sha256 => {
            pbkdf2::pbkdf2_hmac::<pbkdf2::sha2::Sha256>(password, &salt, rounds, &mut out)
        }
        Prf::Sha512 => {
            pbkdf2::pbkdf2_hmac::<pbkdf2::sha2::Sha512>(password, &salt, rounds, &mut out)
        }
    }
    Some(same(&out, &expected))
}

/// The function, rounds, salt and expected output of a PBKDF2 hash.
fn parse_pbkdf2(stored: &str) -> Option<(Prf, u32, Vec<u8>, Vec<u8>)> {
    Some(if let Some(rest) = stored.strip_prefix("pbkdf2_sha256$") {
        // Django: pbkdf2_sha256$<rounds>$<salt text>$<base64>
        let mut parts = rest.split('$');
        let rounds = parts.next()?.parse().ok()?;
        let salt = parts.next()?.as_bytes().to_vec();
        (
            Prf::Sha256,
            rounds,
            salt,
            STANDARD.decode(parts.next()?).ok()?,
        )
    } else if let Some(rest) = stored.strip_prefix("pbkdf2:sha256:") {
        // Werkzeug: pbkdf2:sha256:<rounds>$<salt text>$<hex>
        let mut parts = rest.split('$');
        let rounds = parts.next()?.parse().ok()?;
        let salt = parts.next()?.as_bytes().to_vec();
        (Prf::Sha256, rounds, salt, hex(parts.next()?)?)
    } else {
        // PHC: $pbkdf2-sha256$i=<rounds>,l=<len>$<salt>$<hash> (RustCrypto), or
        // passlib: $pbkdf2-sha256$<rounds>$<salt>$<hash>, both base64.
        let mut parts = stored.split('$').skip(1);
        let prf = match parts.next()? {
            "pbkdf2-sha256" => Prf::Sha256,
            "pbkdf2-sha512" => Prf::Sha512,
            _ => return None,
        };
        let params = parts.next()?;
        let rounds = match params.parse::<u32>() {
            Ok(n) => n,
            Err(_) => params
                .split(',')
                .find_map(|kv| kv.strip_prefix("i="))
                .and_then(|n| n.parse().ok())?,
        };
        (prf, rounds, b64(parts.next()?)?, b64(parts.next()?)?)
    })
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Whether `stored` is Argon2id, version 0x13, with exactly `params`' cost:
/// anything else is re-hashed on the next successful sign-in.
pub fn is_current(stored: &str, params: &Params) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident()
        || parsed.version != Some(u32::from(Version::V0x13))
    {
        return false;
    }
    let get = |name: &str| parsed.params.get_decimal(name);
    get("m") == Some(params.m_cost())
        && get("t") == Some(params.t_cost())
        && get("p") == Some(params.p_cost())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_beyond_the_cost_ceiling_are_refused() {
        let bombs = [
            "$argon2id$v=19$m=4194304,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=65536,t=100,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$2b$15$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
            "$scrypt$ln=24,r=8,p=1$c2FsdA$aGFzaA",
            "$pbkdf2-sha256$i=100000000,l=32$c2FsdA$aGFzaA",
            "pbkdf2_sha256$90000000$salt$aGFzaA==",
        ];
        for bomb in bombs {
            assert_eq!(cost_within_ceiling(bomb), Some(false), "{bomb}");
            assert_eq!(verify(b"password", bomb), None, "{bomb}");
        }
        let fine = [
            "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
            "$scrypt$ln=17,r=8,p=1$c2FsdA$aGFzaA",
            "pbkdf2_sha256$870000$salt$aGFzaA==",
        ];
        for hash in fine {
            assert_eq!(cost_within_ceiling(hash), Some(true), "{hash}");
        }
    }

    #[test]
    fn known_vectors_of_each_scheme() {
        // RFC 6070-style PBKDF2-HMAC-SHA256 vector, Django spelling.
        let password = b"password";
        let mut dk = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<pbkdf2::sha2::Sha256>(password, b"salt", 1, &mut dk);
        let django = format!("pbkdf2_sha256$1$salt${}", STANDARD.encode(dk));
        assert_eq!(verify(password, &django), Some(true));
        assert_eq!(verify(b"Password", &django), Some(false));
        let werkzeug = format!(
            "pbkdf2:sha256:1$salt${}",
            dk.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        assert_eq!(verify(password, &werkzeug), Some(true));
    }

    #[test]
    fn unreadable_hashes_are_not_errors() {
        for stored in [
            "",
            "plaintext",
            "$md5$abc",
            "$1$salt$hash",
            "$scrypt$ln=99,r=8,p=1$AAAA$AAAA",
            "$scrypt$ln=10$AAAA",
            "$pbkdf2-sha256$0$AAAA$AAAA",
            "$pbkdf2-sha1$1000$AAAA$AAAA",
            "pbkdf2:sha256:1000$salt$zz",
            "$2b$04$short",
            "$argon2id$v=19$m=1,t=1,p=1$$",
        ] {
            assert_ne!(verify(b"x", stored), Some(true), "{stored}");
        }
        assert_eq!(Scheme::of("$md5$abc"), None);
    }

    #[test]
    fn only_argon2id_with_the_current_cost_is_current() {
        let params = Params::new(256, 1, 2, None).unwrap();
        assert!(is_current(
            "$argon2id$v=19$m=256,t=1,p=2$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            &params
        ));
        assert!(!is_current(
            "$argon2id$v=19$m=512,t=1,p=2$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            &params
        ));
        assert!(!is_current(
            "$argon2i$v=19$m=256,t=1,p=2$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            &params
        ));
        assert!(!is_current(
            "$2b$04$DkdSOSUeeG9Se/9XN5UcW.dKHE5il84Xij30rLlY5i/mJIia6V2Kq",
            &params
        ));
    }
}

#[cfg(test)]
mod fixtures {
    use super::*;

    /// Hashes written by other implementations (see `tests/support/legacy_hashes.py`).
    const FIXTURES: &str = include_str!("../../../../tests/fixtures/legacy-hashes.json");

    #[test]
    fn every_fixture_verifies_and_only_with_its_password() {
        let fixtures: serde_json::Value = serde_json::from_str(FIXTURES).unwrap();
        let password = fixtures["password"].as_str().unwrap().as_bytes();
        let cases = fixtures["hashes"].as_array().unwrap();
        assert!(cases.len() >= 14);
        for case in cases {
            let (name, hash) = (
                case["name"].as_str().unwrap(),
                case["hash"].as_str().unwrap(),
            );
            assert_eq!(verify(password, hash), Some(true), "{name}");
            assert_eq!(verify(b"wrong", hash), Some(false), "{name}");
            let params = Params::new(256, 1, 2, None).unwrap();
            assert!(!is_current(hash, &params), "{name}");
        }
    }
}
